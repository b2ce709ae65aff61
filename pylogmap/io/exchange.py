"""Import and export: maps to CSV/Parquet, the matrix to .npy/AnnData, matrices into map files.

Export (``pylogmap export``):
- ``.csv`` / ``.parquet``: one row per model with its label, name, revision, layer, status,
  architecture, parameter count, whether it is on the map, mean log-likelihood, the 2-D
  coordinates (``tsne_x``, ``tsne_y``, ``pca_x`` ...) and every annotation column. Rows scored
  after the last ``pylogmap map`` are exported too, without coordinates (``on_map`` false), and
  the report lists them (``unplaced``) and says whether the map is stale (``stale``).
- ``.npy``: the log-likelihood matrix (float32 ``[models, texts]``, NaN = not scored, or Q with
  ``what="q"``), plus ``<stem>.models.txt`` (one row key per line: name, or
  ``name<TAB>revision<TAB>layer``) and ``<stem>.texts.jsonl``, so that ``pylogmap import``
  rebuilds the same map.
- ``.h5ad``: an AnnData object (models = observations, texts = variables) with the model table,
  annotations and mean log-likelihood in ``obs``, the embeddings in ``obsm`` (``X_tsne`` ...),
  text lengths and sources in ``var`` and the map attributes in ``uns``.
Every output is written atomically (`pylogmap.files.atomic_write`): on any error nothing is
left behind, and an existing file is replaced only by a complete new one.

Import (``pylogmap import``):
- ``MATRIX.npy --models NAMES.txt --texts TEXTS.jsonl``: rows in the order of the names file.
- the published ``log-likelihood_1018.pkl`` (a pickled dict: model name -> vector over the
  texts, in the order of ``texts-10k-pile.jsonl``) with that jsonl. The pickle is read as data
  only (`pylogmap.files.load_data_pickle`): a file that asks to run anything is refused unread.

pandas/pyarrow (Parquet) and anndata (h5ad) are optional and imported only when used.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from pylogmap import mapping
from pylogmap.errors import PylogmapError
from pylogmap.files import atomic_open, atomic_write, check_target, iter_lines, load_data_pickle, require_file
from pylogmap.mapping import geometry
from pylogmap.store import MapFile, RowKey, open_map
from pylogmap.texts import load_texts

MAP_FORMATS = (".csv", ".parquet")
MATRIX_FORMATS = (".npy", ".h5ad")
EMBEDDINGS = ("tsne", "pca", "umap")


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def _per_row(values: np.ndarray, n_rows: int, fill) -> np.ndarray:
    """A per-row result of the last `pylogmap map` (computed for its rows, the first ones of the
    file) extended to the file's `n_rows` rows with `fill` for rows scored since."""
    if len(values) >= n_rows:
        return values[:n_rows]
    out = np.full((n_rows,) + values.shape[1:], fill, dtype=np.result_type(values.dtype, np.asarray(fill).dtype))
    out[: len(values)] = values
    return out


def map_state(mf) -> dict:
    """How the stored map relates to the file's rows now: `mapped_rows` (rows the last `pylogmap
    map` saw, None before any), `unplaced` (labels of rows scored since, which have no
    coordinates) and `stale` (the rows changed since, so the stored map is not theirs)."""
    used = mf.read_derived("used")
    if used is None:
        return {"mapped_rows": None, "unplaced": [], "stale": False}
    n_mapped = len(used[0])
    if n_mapped > mf.n_models:
        raise PylogmapError(
            f"the map stored in {mf.path.name} covers {n_mapped} rows but the file has {mf.n_models}; "
            f"run 'pylogmap map {mf.path}' to recompute it."
        )
    labels = mf.labels()
    return {"mapped_rows": n_mapped, "unplaced": labels[n_mapped:],
            "stale": not mapping.is_fresh(mf, embeddings=())}


def map_table(mf) -> dict[str, np.ndarray]:
    """The per-model table of a map file (columns in a stable order), one row per file row
    (rows without coordinates yet: NaN coordinates, `on_map` false; see `map_state`)."""
    table = mf.models_table()
    M = mf.n_models
    cols: dict[str, np.ndarray] = {
        "label": np.asarray(mf.labels(), dtype=object),
        "name": table["name"],
        "revision": table["revision"],
        "layer": table["layer"].astype(np.int64),
        "status": table["status"],
        "architecture": table["architecture"],
        "n_params": table["n_params"].astype(np.int64),
    }
    used = mf.read_derived("used")
    cols["on_map"] = _per_row(used[0].astype(bool), M, False) if used is not None else np.zeros(M, dtype=bool)
    cols["mean_loglik"] = geometry.mean_loglik(mf.loglik())
    for name in EMBEDDINGS:
        got = mf.read_derived(name)
        if got is not None:
            xy = _per_row(np.asarray(got[0], dtype=np.float64), M, np.nan)
            cols[f"{name}_x"] = xy[:, 0]
            cols[f"{name}_y"] = xy[:, 1]
    for name, values in mf.annotations().items():
        key = name if name not in cols else f"annotation_{name}"
        cols[key] = values
    return cols


def _cell(v):
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    return str(v)


def _check_output(out, formats: tuple[str, ...], what: str) -> Path:
    out = check_target(out)
    if out.suffix.lower() not in formats:
        raise PylogmapError(f"cannot export {what} to {out.name!r}; use a {' or '.join(formats)} file name.")
    return out


def export_map(path, out, *, require_map: bool = True) -> dict:
    """Write the per-model table as CSV or Parquet (chosen by the extension of ``out``).

    The report has `unplaced` (rows scored since the last `pylogmap map`, exported without
    coordinates) and `stale` (rows changed since: the coordinates are those of the old rows)."""
    out = _check_output(out, MAP_FORMATS, "a map")
    with open_map(path) as mf:
        if mf.n_models == 0:
            raise PylogmapError(f"{mf.path.name} has no models; nothing to export.")
        if require_map and mf.read_derived("used") is None:
            raise PylogmapError(f"{mf.path.name} has no computed map yet; run 'pylogmap map {mf.path}' first.")
        state = map_state(mf)
        cols = map_table(mf)
    if out.suffix.lower() == ".csv":
        names = list(cols)
        with atomic_open(out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(names)
            for i in range(len(cols["label"])):
                writer.writerow([_cell(cols[c][i]) for c in names])
    else:
        _write_parquet(cols, out)
    return {"path": str(out), "rows": int(len(cols["label"])), "columns": list(cols),
            "unplaced": state["unplaced"], "stale": state["stale"]}


def _write_parquet(cols: dict[str, np.ndarray], out: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise PylogmapError("Parquet export needs pyarrow; run 'pip install pyarrow' or export to .csv.") from err
    arrays = {c: pa.array(v.tolist() if v.dtype == object else v) for c, v in cols.items()}
    with atomic_write(out) as (tmp,):
        pq.write_table(pa.table(arrays), tmp)


def _key_lines(mf) -> list[str]:
    keys = mf.keys()
    plain = all(not k.revision and k.layer < 0 for k in keys)
    return [k.name if plain else f"{k.name}\t{k.revision}\t{k.layer}" for k in keys]


def export_matrix(path, out, *, what: str = "loglik") -> dict:
    """Write the matrix as ``.npy`` (+ models/texts side files) or AnnData ``.h5ad``.

    ``what="loglik"`` (default): raw L, NaN for unscored rows. ``what="q"``: the double-centred
    Q of the rows on the map (clipped with the map's tau), other rows NaN.
    """
    out = _check_output(out, MATRIX_FORMATS, "a matrix")
    if what not in ("loglik", "q"):
        raise PylogmapError(f"unknown matrix {what!r}; use 'loglik' or 'q'.")
    with open_map(path) as mf:
        if mf.n_models == 0:
            raise PylogmapError(f"{mf.path.name} has no models; nothing to export.")
        if what == "loglik":
            X = mf.loglik()
        else:
            geo, _ = mapping.load_geometry(mf)
            X = np.full((mf.n_models, mf.n_texts), np.nan, dtype=np.float32)
            X[geo.rows] = geo.Q
        texts = mf.texts()
        # only the AnnData file carries coordinates; the matrix is the file's rows as they are now
        state = map_state(mf) if out.suffix.lower() == ".h5ad" else {"unplaced": [], "stale": False}
        if out.suffix.lower() == ".npy":
            models_path = out.with_name(out.stem + ".models.txt")
            texts_path = out.with_name(out.stem + ".texts.jsonl")
            with atomic_write(out, models_path, texts_path) as (tmp_matrix, tmp_models, tmp_texts):
                np.save(tmp_matrix, X)
                tmp_models.write_text("\n".join(_key_lines(mf)) + "\n", encoding="utf-8")
                with open(tmp_texts, "w", encoding="utf-8", newline="\n") as f:
                    texts.write_jsonl(f)
            written = [str(out), str(models_path), str(texts_path)]
        else:
            _write_h5ad(mf, X, texts, out, what)
            written = [str(out)]
    return {"path": str(out), "files": written, "shape": list(X.shape), "matrix": what,
            "unplaced": state["unplaced"], "stale": state["stale"]}


def _write_h5ad(mf, X, texts, out: Path, what: str) -> None:
    try:
        import anndata
        import pandas as pd
    except ImportError as err:
        raise PylogmapError("AnnData export needs anndata and pandas; run 'pip install anndata' or export to .npy.") from err
    cols = map_table(mf)
    obs = {}
    for c, v in cols.items():
        if c.endswith("_x") or c.endswith("_y") or c == "label":
            continue
        obs[c] = v.astype(str) if v.dtype == object else v
    obs_df = pd.DataFrame(obs, index=pd.Index([str(x) for x in cols["label"]], name="label"))
    var_df = pd.DataFrame(
        {"n_bytes": texts.n_bytes, "source": [str(s) for s in texts.sources]},
        index=pd.Index([str(i) for i in range(len(texts))], name="text"),
    )
    obsm = {}
    for name in EMBEDDINGS:
        got = mf.read_derived(name)
        if got is not None:
            obsm[f"X_{name}"] = _per_row(np.asarray(got[0], dtype=np.float32), mf.n_models, np.nan)
    attrs = mf.map_attrs()
    uns = {
        "pylogmap": {
            "matrix": what,
            "units": "nats per text",
            "text_set_hash": mf.text_hash,
            **{k: (v if isinstance(v, (int, float, str)) else json.dumps(v)) for k, v in attrs.items()},
        }
    }
    adata = anndata.AnnData(X=np.asarray(X, dtype=np.float32), obs=obs_df, var=var_df, obsm=obsm, uns=uns)
    with atomic_write(out) as (tmp,):
        adata.write_h5ad(tmp)


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def read_model_keys(path) -> list[RowKey]:
    """Row keys from a names file: one per line, ``name`` or ``name<TAB>revision<TAB>layer``."""
    path = require_file(path, "models file", "give a text file with one model name per line")
    keys = []
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) > 3:
            raise PylogmapError(f"{path.name} line {lineno}: expected 'name' or 'name<TAB>revision<TAB>layer'.")
        name = parts[0].strip()
        revision = parts[1].strip() if len(parts) > 1 else ""
        try:
            layer = int(parts[2]) if len(parts) > 2 and parts[2].strip() else -1
        except ValueError:
            raise PylogmapError(f"{path.name} line {lineno}: layer {parts[2]!r} is not an integer.") from None
        keys.append(RowKey(name, revision, layer))
    if not keys:
        raise PylogmapError(f"models file {str(path)!r} is empty; give one model name per line, in row order.")
    _check_unique(keys, path.name)
    return keys


def _check_unique(keys: list[RowKey], where: str) -> None:
    seen: set[RowKey] = set()
    dups = []
    for k in keys:
        if k in seen:
            dups.append(k.label)
        seen.add(k)
    if dups:
        raise PylogmapError(f"{where} lists the same model more than once: {', '.join(dups[:5])}; each row needs its own name.")


def _load_texts(texts_path):
    if texts_path is None:
        raise PylogmapError("importing a matrix needs its texts: pass --texts TEXTS.jsonl (the texts in column order).")
    return load_texts(texts_path)


def _check_matrix(L: np.ndarray, n_models: int, texts, where: str) -> np.ndarray:
    if L.ndim != 2:
        raise PylogmapError(f"{where}: the matrix must be 2-D [models, texts]; got shape {L.shape}.")
    if L.shape[0] != n_models:
        raise PylogmapError(f"{where}: {L.shape[0]} rows but {n_models} model names; give one name per row.")
    if L.shape[1] != len(texts):
        raise PylogmapError(
            f"{where}: {L.shape[1]} columns but the text set has {len(texts)} texts; "
            "the texts file must list the texts in column order."
        )
    if not (np.issubdtype(L.dtype, np.floating) or np.issubdtype(L.dtype, np.integer)):
        raise PylogmapError(f"{where}: the matrix has dtype {L.dtype}; it must hold numbers (log-likelihoods in nats).")
    L = np.asarray(L, dtype=np.float32)
    finite = L[np.isfinite(L)]
    if finite.size and finite.max() > 1e-3:
        raise PylogmapError(
            f"{where}: the matrix has positive entries (max {finite.max():.4g}); it must hold log-likelihoods "
            "(log p <= 0, in nats), not losses or perplexities. Negate a loss matrix before importing."
        )
    if np.isposinf(L).any():
        raise PylogmapError(f"{where}: the matrix has +inf entries; log-likelihoods are at most 0. Fix the matrix.")
    return L


def infinite_rows(L: np.ndarray) -> np.ndarray:
    """Rows of an imported matrix with -inf entries (texts given zero probability): such rows stay
    off the map (a KL estimate needs finite values on every text) until rescored or floored."""
    return np.flatnonzero(np.isneginf(L).any(axis=1))


def _create(out: Path, texts, keys: list[RowKey], L: np.ndarray, source: Path, force: bool, meta=None) -> dict:
    mf = MapFile.create_with_rows(out, texts, keys, L, meta=meta, overwrite=force)
    try:
        info = {"path": str(mf.path), "models": mf.n_models, "texts": mf.n_texts, "source": str(source),
                "infinite_rows": [keys[i].label for i in infinite_rows(L)]}
    finally:
        mf.close()
    return info


def import_matrix(matrix_path, models_path, texts_path, out, *, force: bool = False) -> dict:
    """Build a map file from an ``.npy`` matrix, a names file and a texts file (``force``:
    replace an existing ``out``)."""
    out = check_target(out, force=force)
    matrix_path = require_file(matrix_path, "matrix file", "give an .npy file written by numpy.save")
    L = _load_npy(matrix_path)
    keys = read_model_keys(models_path)
    texts = _load_texts(texts_path)
    L = _check_matrix(L, len(keys), texts, matrix_path.name)
    return _create(out, texts, keys, L, matrix_path, force)


def _load_npy(path: Path) -> np.ndarray:
    """The array of an .npy file, memory-mapped; never an object array (that would unpickle)."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise PylogmapError(f"{path.name} is not an .npy file (it lacks the .npy header); save the matrix with numpy.save.")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err) or "object" in str(err).lower():
            raise PylogmapError(f"{path.name} holds Python objects, not numbers; save a float matrix with numpy.save.") from None
        raise PylogmapError(f"{path.name} is a damaged or truncated .npy file ({err}); save it again with numpy.save.") from None
    except (EOFError, OSError) as err:
        raise PylogmapError(f"{path.name} is a damaged or truncated .npy file ({err}); save it again with numpy.save.") from None


def load_published_pickle(pkl_path) -> tuple[list[str], np.ndarray]:
    """Read the published ``log-likelihood_1018.pkl``: a dict model name -> vector, read as data
    only (`pylogmap.files.load_data_pickle`)."""
    pkl_path = Path(pkl_path)
    data = load_data_pickle(pkl_path)
    if not isinstance(data, dict) or not data:
        raise PylogmapError(
            f"{pkl_path.name} holds a {type(data).__name__}, not the published format "
            "(a dict of model name -> log-likelihood vector over the texts)."
        )
    names, rows = [], []
    length = None
    for name, vec in data.items():
        try:
            arr = None if isinstance(vec, (str, bytes)) else np.asarray(vec, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.size == 0:
            raise PylogmapError(f"{pkl_path.name}: the entry {name!r} is not a vector of numbers.")
        if length is None:
            length = arr.size
        elif arr.size != length:
            raise PylogmapError(f"{pkl_path.name}: {name!r} has {arr.size} values, the first model has {length}.")
        names.append(str(name))
        rows.append(arr.astype(np.float32))
    return names, np.stack(rows)


def import_published(pkl_path, texts_path, out, *, force: bool = False) -> dict:
    """Build a map file from the published pickle and text jsonl (``force``: replace ``out``)."""
    out = check_target(out, force=force)
    names, L = load_published_pickle(pkl_path)
    texts = _load_texts(texts_path)
    keys = [RowKey(n) for n in names]
    _check_unique(keys, Path(pkl_path).name)
    L = _check_matrix(L, len(keys), texts, Path(pkl_path).name)
    return _create(out, texts, keys, L, Path(pkl_path), force, meta={"dtype": ["float16 (published)"] * len(keys)})
