"""Compute the map of a file: clip -> centre -> embeddings -> neighbour lists -> ``/map``.

This is the engine behind ``pylogmap map``, the viewer and the demo. Results are written to
``/map`` of the same file in one atomic commit (store.MapFile.update_map) together with a
``rows_hash`` that identifies the scored rows they were computed from (labels, status and the
bytes of their log-likelihoods, plus the text-set hash). ``compute_map`` does nothing when the
stored hash matches and the requested results are present, so calling it on every viewer start
is cheap; scoring another model changes the hash and the map is recomputed.

Clipping threshold: the first map of a file computes ``tau`` from the rows in use; later maps
reuse the stored tau (method.md: "when models are added to an existing map, the existing tau
is reused"), unless ``new_tau=True``.

What ``/map`` holds after a run (rows not used get NaN / -1):
``used`` bool [M], ``mean_loglik`` float64 [M], ``text_variance`` float64 [N],
``tsne``/``pca``/``umap`` float32 [M, 2] (attrs: the parameters used),
``neighbors/index`` int64 [M, k] (file rows), ``neighbors/kl_nats``, ``neighbors/se_nats``
float64 [M, k] (attrs: index kind, k, recall for approximate indexes);
attributes ``tau``, ``tau_source``, ``rows_hash``, ``n_used``, ``n_texts``, ``mean_bytes``,
``clip_quantile``, ``excluded`` (JSON: row -> reason), ``created_by``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from pylogmap.mapping import geometry
from pylogmap.mapping.families import default_families
from pylogmap.errors import MapFileError, PylogmapError

MIN_MODELS = 3
DEFAULT_EMBEDDINGS = ("tsne", "pca")


def rows_hash(mf, rows: np.ndarray, L_used: np.ndarray | None = None, *, block_rows: int = 1024) -> str:
    """Hash of the rows a map is computed from: text-set hash, labels, and the float32 bytes
    of their log-likelihoods (blake2b-128)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(mf.text_hash.encode())
    labels = mf.labels()
    h.update(json.dumps([labels[i] for i in rows]).encode())
    if L_used is not None:
        for start in range(0, L_used.shape[0], block_rows):
            h.update(np.ascontiguousarray(L_used[start : start + block_rows], dtype=np.float32).tobytes())
    else:
        for start in range(0, rows.size, block_rows):
            h.update(np.ascontiguousarray(mf.loglik(rows[start : start + block_rows]), dtype=np.float32).tobytes())
    return "blake2b:" + h.hexdigest()


@dataclass
class MapResult:
    """What compute_map did: the rows used, excluded rows, tau, timings, and whether it ran."""

    path: str
    computed: bool
    n_models: int
    n_used: int
    n_texts: int
    tau: float
    tau_source: str
    rows_hash: str
    mean_bytes: float
    excluded: dict[int, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    embeddings: list[str] = field(default_factory=list)
    k: int = 0
    index: str = ""
    recall: float | None = None

    def to_dict(self, labels: list[str] | None = None) -> dict:
        out = {
            "path": self.path,
            "computed": self.computed,
            "n_models": self.n_models,
            "n_used": self.n_used,
            "n_texts": self.n_texts,
            "tau": self.tau,
            "tau_source": self.tau_source,
            "rows_hash": self.rows_hash,
            "mean_bytes": self.mean_bytes,
            "embeddings": self.embeddings,
            "k": self.k,
            "index": self.index,
            "recall": self.recall,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "excluded": [
                {"row": int(r), "model": labels[r] if labels else None, "reason": why} for r, why in self.excluded.items()
            ],
        }
        return out


class _Steps:
    """Progress lines on stderr ("[map] clip + centre ... 0.41 s")."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.timings: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        if self.enabled:
            print(f"[map] {name} ...", end="", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        dt = time.perf_counter() - t0
        self.timings[name] = dt
        if self.enabled:
            print(f" {dt:.2f} s", file=sys.stderr, flush=True)
        return out


def _usable(mf, L, status):
    if mf.n_models == 0:
        raise MapFileError(
            f"{mf.path.name} has no scored models yet; score some with 'pylogmap score' "
            "(or build a map from a matrix with 'pylogmap import')."
        )
    selection = geometry.select_rows(L, status)
    if selection.n_used < MIN_MODELS:
        labels = mf.labels()
        why = selection.describe(labels)
        raise MapFileError(
            f"{mf.path.name} has {selection.n_used} model(s) with complete scores; a map needs at least "
            f"{MIN_MODELS}. {why}. Score more models (or rerun failed ones with 'pylogmap score')."
        )
    return selection


def load_geometry(mf, *, new_tau: bool = False, dtype=None) -> tuple[geometry.Geometry, str]:
    """Read L from an open map file and build the geometry (Q of the usable rows).

    Uses the stored tau of ``/map`` when there is one (unless ``new_tau``). Returns the
    Geometry and where tau came from (``"map"`` or ``"computed"``).
    """
    L = mf.loglik()
    status = mf.status()
    _usable(mf, L, status)
    attrs = mf.map_attrs()
    tau = None if new_tau else attrs.get("tau")
    source = "map" if tau is not None else "computed"
    geo = geometry.build_geometry(L, status=status, tau=tau, text_bytes=mf.text_bytes(), dtype=dtype)
    return geo, source


def is_fresh(mf, embeddings=DEFAULT_EMBEDDINGS, k: int = 0) -> bool:
    """Whether ``/map`` was computed from the file's current rows and has what is asked."""
    attrs = mf.map_attrs()
    if "rows_hash" not in attrs:
        return False
    L = mf.loglik()
    selection = geometry.select_rows(L, mf.status())
    rows = np.flatnonzero(selection.used)
    if rows_hash(mf, rows, L[rows]) != attrs["rows_hash"]:
        return False
    names = set(mf.derived_names())
    if any(e not in names for e in embeddings):
        return False
    if k:
        stored = mf.read_derived("neighbors/index")
        if stored is None or stored[0].shape[1] < k:
            return False
    return True


def compute_map(
    path,
    *,
    embeddings=DEFAULT_EMBEDDINGS,
    k: int = 10,
    index: str = "exact",
    gpu="auto",
    force: bool = False,
    new_tau: bool = False,
    perplexity: float = 30.0,
    tsne_iter: int = 1000,
    seed: int = 42,
    progress: bool = True,
    measure_recall: bool = True,
) -> MapResult:
    """Compute (or confirm up to date) the map of a file; see the module docstring."""
    from pylogmap.mapping import embedding, neighbors
    from pylogmap.store import open_map

    embeddings = list(dict.fromkeys(embeddings))
    for name in embeddings:
        if name not in embedding.EMBEDDINGS:
            raise PylogmapError(f"unknown embedding {name!r}; choose from {', '.join(embedding.EMBEDDINGS)}.")
    if "umap" in embeddings and not embedding.umap_available():
        raise PylogmapError("UMAP needs the optional package umap-learn; run 'pip install umap-learn' or drop --umap.")
    steps = _Steps(progress)
    mf = open_map(path, mode="a")
    try:
        M, N = mf.n_models, mf.n_texts
        L = steps.run("read scores", mf.loglik) if M else np.zeros((0, N), np.float32)
        status = mf.status()
        selection = _usable(mf, L, status)
        rows = np.flatnonzero(selection.used)
        Lu = L[rows] if rows.size != M else L
        digest = steps.run("hash rows", rows_hash, mf, rows, Lu)
        attrs = mf.map_attrs()
        names = set(mf.derived_names())
        k_eff = int(min(k, rows.size - 1))
        stored_nb = mf.read_derived("neighbors/index")
        up_to_date = (
            not force
            and not new_tau
            and attrs.get("rows_hash") == digest
            and all(e in names for e in embeddings)
            and (k_eff == 0 or (stored_nb is not None and stored_nb[0].shape[1] >= k_eff))
        )
        if up_to_date:
            if progress:
                print(f"[map] {mf.path.name}: up to date ({rows.size} models); use --force to recompute.", file=sys.stderr)
            return MapResult(
                path=str(mf.path), computed=False, n_models=M, n_used=int(rows.size), n_texts=N,
                tau=float(attrs["tau"]), tau_source=str(attrs.get("tau_source", "map")), rows_hash=digest,
                mean_bytes=float(attrs.get("mean_bytes", float(np.mean(mf.text_bytes())))),
                excluded=selection.excluded, embeddings=[e for e in embedding.EMBEDDINGS if e in names],
                k=int(stored_nb[0].shape[1]) if stored_nb is not None else 0,
                index=str((stored_nb[1] if stored_nb is not None else {}).get("index", "")),
                recall=(stored_nb[1] if stored_nb is not None else {}).get("recall"),
            )
        # Results stored before but not asked now would go stale when rows change: redo them.
        if attrs.get("rows_hash") != digest:
            embeddings += [e for e in embedding.EMBEDDINGS if e in names and e not in embeddings]
            if k_eff == 0 and stored_nb is not None:
                k_eff = int(min(stored_nb[0].shape[1], rows.size - 1))
        tau_prev = None if new_tau else attrs.get("tau")
        tau_source = "map" if tau_prev is not None else "computed"
        text_bytes = mf.text_bytes()
        mean_bytes = float(np.mean(text_bytes))
        mean_ll = steps.run("mean log-likelihood", geometry.mean_loglik, L)
        # L was read from the file, so it is ours to clip and centre in place (one [M, N] copy)
        Lc = np.asarray(Lu, dtype=np.float32)
        del L, Lu
        Lc, tau = steps.run("clip", geometry.clip, Lc, tau_prev, out=Lc)
        Q = steps.run("double centre", geometry.double_center, Lc, out=Lc)
        tv = geometry.text_variance(Q)

        def full(coords):
            out = np.full((M, coords.shape[1]), np.nan, dtype=np.float32)
            out[rows] = coords
            return out

        arrays: dict[str, tuple[np.ndarray, dict]] = {
            "used": (selection.used, {}),
            "mean_loglik": (mean_ll, {"units": "nats per text", "clipped": False}),
            "text_variance": (tv, {"units": "nats^2", "of": "row-centred clipped log-likelihood across used models"}),
        }
        for name in embeddings:
            if name == "tsne":
                coords, params = steps.run(
                    "t-SNE", embedding.tsne, Q, seed=seed, perplexity=perplexity, max_iter=tsne_iter, return_params=True
                )
            elif name == "pca":
                coords, params = steps.run("PCA", embedding.pca, Q, return_params=True)
            else:
                coords, params = steps.run("UMAP", embedding.umap, Q, seed=seed, return_params=True)
            arrays[name] = (full(coords), params)
        recall_value = None
        if k_eff:
            idx, _ = steps.run(
                f"neighbours ({index})", neighbors.nearest_neighbors, Q, k_eff, index=index, gpu=gpu,
                progress=progress and rows.size >= 20_000,
            )
            table = steps.run("KL and SE of neighbours", neighbors.with_kl, Q, np.arange(rows.size), idx, mean_bytes)
            nb_attrs = {"index": index, "k": k_eff, "units": "nats per text", "mean_bytes": mean_bytes}
            if index == "ivf-pca" and measure_recall:
                rep = steps.run("recall of ivf-pca", neighbors.measure_recall, Q, k_eff, gpu=gpu)
                recall_value = float(rep["recall"])
                nb_attrs.update({f"ivf_{key}": value for key, value in rep.items()})
                nb_attrs["recall"] = recall_value
            file_idx = np.full((M, k_eff), -1, dtype=np.int64)
            file_idx[rows] = rows[idx]
            kl = np.full((M, k_eff), np.nan)
            se = np.full((M, k_eff), np.nan)
            kl[rows] = table.kl_nats
            se[rows] = table.se_nats
            arrays["neighbors/index"] = (file_idx, nb_attrs)
            arrays["neighbors/kl_nats"] = (kl, nb_attrs)
            arrays["neighbors/se_nats"] = (se, nb_attrs)
        del Q, Lc
        from pylogmap import __version__

        map_attrs = {
            "tau": float(tau),
            "tau_source": tau_source,
            "clip_quantile": geometry.CLIP_QUANTILE,
            "rows_hash": digest,
            "n_used": int(rows.size),
            "n_texts": int(N),
            "mean_bytes": mean_bytes,
            "excluded": json.dumps({str(r): why for r, why in selection.excluded.items()}),
            "created_by": f"pylogmap {__version__}",
        }
        steps.run("write /map", mf.update_map, arrays, map_attrs)
        if "family" not in mf.annotations():
            table_ = mf.models_table()
            fam = default_families(table_["name"], table_["architecture"])
            mf.set_annotations({"family": np.array(fam, dtype=object)})
        return MapResult(
            path=str(mf.path), computed=True, n_models=M, n_used=int(rows.size), n_texts=N, tau=float(tau),
            tau_source=tau_source, rows_hash=digest, mean_bytes=mean_bytes, excluded=selection.excluded,
            timings=steps.timings, embeddings=list(embeddings), k=k_eff, index=index if k_eff else "",
            recall=recall_value,
        )
    finally:
        mf.close()


# --------------------------------------------------------------------------------------------
# Queries on one file (used by `pylogmap kl`, `pylogmap neighbors` and the viewer)
# --------------------------------------------------------------------------------------------


def _usable_row(mf, query: str, L_row: np.ndarray | None = None) -> int:
    """The file row of a model given by label or name; an error if it is not on the map."""
    row = mf.find_row(query)
    status = mf.status()[row]
    label = mf.labels()[row]
    if status != "ok":
        err = mf.models_table()["error"][row]
        raise MapFileError(f"{label} failed when it was scored ({err or 'no error recorded'}); rescore it with 'pylogmap score'.")
    vec = mf.loglik([row])[0] if L_row is None else L_row
    n_nan = int(np.isnan(vec).sum())
    if n_nan:
        raise MapFileError(
            f"{label} has {n_nan} of {vec.size} texts without a score (NaN); finish scoring it with 'pylogmap score'."
        )
    n_inf = int(np.isinf(vec).sum())
    if n_inf:
        raise MapFileError(
            f"{label} has {n_inf} of {vec.size} texts with log-likelihood -inf (texts it gave zero probability, "
            "e.g. a float16 overflow), so it is not on the map; rescore it (in float32), or replace -inf by a "
            "finite floor in the matrix before importing it."
        )
    return row


def _tau_for(mf) -> tuple[float, str]:
    attrs = mf.map_attrs()
    if "tau" in attrs:
        return float(attrs["tau"]), "map"
    L = mf.loglik()
    selection = _usable(mf, L, mf.status())
    rows = np.flatnonzero(selection.used)
    return geometry.clip_threshold(L[rows] if rows.size != L.shape[0] else L), "computed"


def kl_between(mf, a: str, b: str) -> dict:
    """KL estimate (and SE) between two models of a file, in nats per text and bits per byte.

    Clipping uses the map's stored tau, or the tau ``pylogmap map`` would compute.
    """
    ra = _usable_row(mf, a)
    rb = _usable_row(mf, b)
    tau, source = _tau_for(mf)
    rows = mf.loglik([ra, rb]).astype(np.float64)
    rows = np.maximum(rows, tau)
    kl, se = geometry.kl_estimate(rows[0], rows[1])
    B = float(np.mean(mf.text_bytes()))
    labels = mf.labels()
    return {
        "a": labels[ra],
        "b": labels[rb],
        "kl_nats": kl,
        "se_nats": se,
        "kl_bits_per_byte": geometry.to_bits_per_byte(kl, B),
        "se_bits_per_byte": geometry.to_bits_per_byte(se, B),
        "n_texts": int(mf.n_texts),
        "mean_bytes": B,
        "tau": tau,
        "tau_source": source,
        "estimator": "Var_k(L_ak - L_bk)/2 on clipped L; SE = sqrt((m4 - m2^2)/N)/2 (delta method)",
    }


def neighbors_for(mf, query: str, k: int = 10) -> dict:
    """The k nearest models of one model (exact, float64), with KL estimates and SEs."""
    from pylogmap.mapping import neighbors

    row = _usable_row(mf, query)
    geo, source = load_geometry(mf)
    pos = int(np.searchsorted(geo.rows, row))
    if k > geo.rows.size - 1:
        raise PylogmapError(
            f"-k {k} asks for more neighbours than the map has other models ({geo.rows.size - 1}); use -k {geo.rows.size - 1}."
        )
    table = neighbors.neighbors_of(geo.Q, pos, k, geo.mean_bytes)
    labels = mf.labels()
    items = []
    for rank, (j, kl, se) in enumerate(zip(table.idx[0], table.kl_nats[0], table.se_nats[0]), start=1):
        file_row = int(geo.rows[j])
        items.append({
            "rank": rank,
            "model": labels[file_row],
            "row": file_row,
            "kl_nats": float(kl),
            "se_nats": float(se),
            "kl_bits_per_byte": float(geometry.to_bits_per_byte(kl, geo.mean_bytes)),
            "se_bits_per_byte": float(geometry.to_bits_per_byte(se, geo.mean_bytes)),
        })
    return {
        "model": labels[row],
        "row": int(row),
        "k": int(k),
        "n_used": int(geo.rows.size),
        "n_texts": int(geo.n_texts),
        "mean_bytes": geo.mean_bytes,
        "tau": geo.tau,
        "tau_source": source,
        "excluded": len(geo.selection.excluded),
        "neighbors": items,
    }
