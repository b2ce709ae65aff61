"""Compute the map of a file: clip -> centre -> neighbour lists -> embeddings -> ``/map``.

This is the engine behind ``pylogmap map``, the viewer and the demo. Results are written to
``/map`` of the same file in one atomic commit (store.MapFile.update_map) together with a
``rows_hash`` that identifies the scored rows they were computed from (labels, status and the
bytes of their log-likelihoods, plus the text-set hash). ``compute_map`` does nothing when the
stored hash matches and the requested results are present, so calling it on every viewer start
is cheap; scoring another model changes the hash and the map is recomputed.

Clipping threshold: the first map of a file computes ``tau`` from the rows in use; later maps
reuse the stored tau (method.md: "when models are added to an existing map, the existing tau
is reused"), unless ``new_tau=True``.

Scale: Q is built by prepare.MapRows, in memory up to ``memory_budget`` bytes and out of core
above (a temporary file read a block of rows at a time); one neighbour search
(neighbors.map_neighbors) gives the stored lists, their KL estimates and SEs, and, for the FFT
t-SNE of large maps, the 3 x perplexity nearest of every model its affinities are built from.
The t-SNE method ("sklearn", the published call, or "fft", openTSNE) is chosen by size unless
asked (embedding.tsne_method), said in the progress output and stored with the coordinates.

What ``/map`` holds after a run (rows not used get NaN / -1):
``used`` bool [M], ``mean_loglik`` float64 [M], ``text_variance`` float64 [N],
``tsne``/``pca``/``umap`` float32 [M, 2] (attrs: the parameters used; ``tsne`` says its
``method``),
``neighbors/index`` int64 [M, k] (file rows), ``neighbors/kl_nats``, ``neighbors/se_nats``
float64 [M, k] (attrs: index kind, k, recall for approximate indexes);
attributes ``tau``, ``tau_source``, ``rows_hash``, ``n_used``, ``n_texts``, ``mean_bytes``,
``clip_quantile``, ``excluded`` (JSON: row -> reason), ``created_by``, ``tsne_method`` (when
t-SNE ran: "sklearn" or "fft").
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from pylogmap import __version__
from pylogmap.errors import MapFileError, PylogmapError
from pylogmap.mapping import embedding, geometry, gram_bf16, neighbors
from pylogmap.mapping.families import default_families
from pylogmap.mapping.prepare import (
    DEFAULT_MEMORY_BUDGET,
    MapRows,
    check_usable,
    rows_hash,
)
from pylogmap.store import open_map

DEFAULT_EMBEDDINGS = ("tsne", "pca")


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
    tsne_method: str = ""
    out_of_core: bool = False
    backend: str = ""  # the neighbour search's (neighbors.SearchResult.backend), "" when none ran

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
            "tsne_method": self.tsne_method,
            "out_of_core": self.out_of_core,
            "backend": self.backend,
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
    selection = geometry.select_rows(L, status) if mf.n_models else geometry.RowSelection(np.zeros(0, dtype=bool))
    check_usable(mf, selection)
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
    tsne_iter: int | None = None,
    tsne: str = "auto",
    seed: int = 42,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    workdir=None,
    progress: bool = True,
    measure_recall: bool = True,
) -> MapResult:
    """Compute (or confirm up to date) the map of a file; see the module docstring.

    ``tsne``: "auto", "sklearn" or "fft" (embedding.tsne_method); ``tsne_iter``: iterations
    (default 1000 for scikit-learn, the published setting; for the FFT t-SNE 650 below 20,000
    models and 1000 from there, tsne_fft.default_iterations);
    ``memory_budget``: the largest Q (bytes) kept in memory; ``workdir``: where an out-of-core Q
    goes (default: the system's temporary folder).
    """
    embeddings = list(dict.fromkeys(embeddings))
    for name in embeddings:
        if name not in embedding.EMBEDDINGS:
            raise PylogmapError(f"unknown embedding {name!r}; choose from {', '.join(embedding.EMBEDDINGS)}.")
    if "umap" in embeddings and not embedding.umap_available():
        raise PylogmapError("UMAP needs the optional package umap-learn; run 'pip install umap-learn' or drop --umap.")
    gram_bf16.gemm_mode()  # a bad PYLOGMAP_GEMM fails here, before any work
    if tsne_iter is not None and int(tsne_iter) < 250:  # checked before any work (each method checks its own)
        raise PylogmapError(f"t-SNE needs at least 250 iterations (its exaggeration phase); got --tsne-iter "
                            f"{tsne_iter}.")
    steps = _Steps(progress)
    mf = open_map(path, mode="a")
    try:
        attrs = mf.map_attrs()
        tau_prev = None if new_tau else attrs.get("tau")
        tau_source = "map" if tau_prev is not None else "computed"
        source = MapRows(mf, tau=tau_prev, memory_budget=memory_budget, workdir=workdir, steps=steps)
        try:
            return _compute(mf, source, steps, embeddings=embeddings, k=k, index=index, gpu=gpu, force=force,
                            new_tau=new_tau, tau_source=tau_source, perplexity=perplexity, tsne_iter=tsne_iter,
                            tsne=tsne, seed=seed, progress=progress, measure_recall=measure_recall)
        finally:
            source.close()
    finally:
        mf.close()


def _compute(mf, source: MapRows, steps: _Steps, *, embeddings, k, index, gpu, force, new_tau, tau_source, perplexity,
             tsne_iter, tsne, seed, progress, measure_recall) -> MapResult:
    M, N = mf.n_models, mf.n_texts
    selection, rows, digest = source.selection, source.rows, source.digest
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
        stored_tsne = mf.read_derived("tsne")
        return MapResult(
            path=str(mf.path), computed=False, n_models=M, n_used=int(rows.size), n_texts=N,
            tau=float(attrs["tau"]), tau_source=str(attrs.get("tau_source", "map")), rows_hash=digest,
            mean_bytes=float(attrs.get("mean_bytes", float(np.mean(mf.text_bytes())))),
            excluded=selection.excluded, embeddings=[e for e in embedding.EMBEDDINGS if e in names],
            k=int(stored_nb[0].shape[1]) if stored_nb is not None else 0,
            index=str((stored_nb[1] if stored_nb is not None else {}).get("index", "")),
            recall=(stored_nb[1] if stored_nb is not None else {}).get("recall"),
            tsne_method=str(stored_tsne[1].get("method", "sklearn")) if stored_tsne is not None else "",
        )
    # Results stored before but not asked now would go stale when rows change: redo them.
    if attrs.get("rows_hash") != digest:
        embeddings += [e for e in embedding.EMBEDDINGS if e in names and e not in embeddings]
        if k_eff == 0 and stored_nb is not None:
            k_eff = int(min(stored_nb[0].shape[1], rows.size - 1))
    method = embedding.tsne_method(rows.size, tsne, out_of_core=source.out_of_core) if "tsne" in embeddings else ""
    if method and progress:
        why = "asked" if tsne != "auto" else (
            "out-of-core map" if source.out_of_core else
            f"{'>=' if method == 'fft' else '<'} {embedding.FFT_FROM_MODELS:,} models")
        print(f"[map] t-SNE: {'openTSNE FFT' if method == 'fft' else 'scikit-learn (published settings)'} ({why})",
              file=sys.stderr)
    mean_bytes = float(np.mean(mf.text_bytes()))
    Q, tv = source.build()
    tau = source.tau

    def full(coords):
        out = np.full((M, coords.shape[1]), np.nan, dtype=np.float32)
        out[rows] = coords
        return out

    arrays: dict[str, tuple[np.ndarray, dict]] = {
        "used": (selection.used, {}),
        "mean_loglik": (source.mean_loglik, {"units": "nats per text", "clipped": False}),
        "text_variance": (tv, {"units": "nats^2", "of": "row-centred clipped log-likelihood across used models"}),
    }
    n_wide = 0
    if method == "fft":
        perp = embedding.effective_perplexity(rows.size, perplexity)
        n_wide = min(rows.size - 1, embedding.neighbours_needed(perp))
    search = None
    recall_value = None
    if k_eff or n_wide:
        k_search = max(k_eff, 1)
        search = steps.run(
            f"neighbours ({index}) + KL and SE", neighbors.map_neighbors, Q, k_search, index=index, gpu=gpu,
            n_wide=n_wide, mean_bytes=mean_bytes, progress=progress and rows.size >= 20_000,
        )
    if k_eff:
        table = search.table
        nb_attrs = {"index": index, "backend": search.backend, "k": k_eff, "units": "nats per text",
                    "mean_bytes": mean_bytes}
        if index == "ivf-pca" and measure_recall:
            rep = steps.run("recall of ivf-pca", neighbors.measure_recall, Q, k_eff, gpu=gpu)
            recall_value = float(rep["recall"])
            nb_attrs.update({f"ivf_{key}": value for key, value in rep.items()})
            nb_attrs["recall"] = recall_value
        file_idx = np.full((M, k_eff), -1, dtype=np.int64)
        file_idx[rows] = rows[table.idx[:, :k_eff]]
        kl = np.full((M, k_eff), np.nan)
        se = np.full((M, k_eff), np.nan)
        kl[rows] = table.kl_nats[:, :k_eff]
        se[rows] = table.se_nats[:, :k_eff]
        arrays["neighbors/index"] = (file_idx, nb_attrs)
        arrays["neighbors/kl_nats"] = (kl, nb_attrs)
        arrays["neighbors/se_nats"] = (se, nb_attrs)
    pca_coords = None
    if "pca" in embeddings or method == "fft":
        # the FFT t-SNE starts from the PCA; both use the blockwise PCA so that a map gives the same
        # coordinates in memory and out of core; the published small-map regime keeps scikit-learn's
        large = method == "fft" or source.out_of_core or rows.size >= embedding.PCA_BLOCKS_FROM
        pca_coords, params = steps.run("PCA", embedding.pca, Q, method="blocks" if large else "sklearn",
                                       return_params=True)
        if "pca" in embeddings:
            arrays["pca"] = (full(pca_coords), params)
    for name in embeddings:
        if name == "tsne":
            if method == "fft":
                coords, params = steps.run(
                    "t-SNE (openTSNE FFT)", embedding.tsne_fft, search.wide_idx, search.wide_sqdist, pca_coords,
                    perplexity=embedding.effective_perplexity(rows.size, perplexity), seed=seed,
                    max_iter=None if tsne_iter is None else int(tsne_iter),  # None: tsne_fft.default_iterations
                )
                params["perplexity_requested"] = float(perplexity)
            else:
                coords, params = steps.run(
                    "t-SNE (scikit-learn)", embedding.tsne, Q, seed=seed, perplexity=perplexity,
                    max_iter=1000 if tsne_iter is None else int(tsne_iter), return_params=True,
                )
                params["method"] = "sklearn"
            arrays["tsne"] = (full(coords), params)
        elif name == "umap":
            if source.out_of_core:
                raise PylogmapError("UMAP needs the whole map in memory and this one is kept out of core; drop --umap or raise --memory.")
            coords, params = steps.run("UMAP", embedding.umap, Q, seed=seed, return_params=True)
            arrays["umap"] = (full(coords), params)
    backend = search.backend if search is not None else ""
    del Q, search

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
    if method:
        map_attrs["tsne_method"] = method
    steps.run("write /map", mf.update_map, arrays, map_attrs)
    if "family" not in mf.annotations():
        table_ = mf.models_table()
        fam = default_families(table_["name"], table_["architecture"])
        mf.set_annotations({"family": np.array(fam, dtype=object)})
    return MapResult(
        path=str(mf.path), computed=True, n_models=M, n_used=int(rows.size), n_texts=N, tau=float(tau),
        tau_source=tau_source, rows_hash=digest, mean_bytes=mean_bytes, excluded=selection.excluded,
        timings=steps.timings, embeddings=list(embeddings), k=k_eff, index=index if k_eff else "",
        recall=recall_value, tsne_method=method, out_of_core=source.out_of_core,
        backend=backend,
    )


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
