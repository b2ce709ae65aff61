"""Import and export: maps to CSV/Parquet, the matrix to .npy/AnnData, matrices into map files.

Export (``pylogmap export``):
- ``.csv`` / ``.parquet``: one row per model with its label, name, revision, layer, status,
  architecture, parameter count, whether it is on the map, mean log-likelihood, the 2-D
  coordinates (``tsne_x``, ``tsne_y``, ``pca_x`` ...) and every annotation column.
- ``.npy``: the log-likelihood matrix (float32 ``[models, texts]``, NaN = not scored, or Q with
  ``what="q"``), plus ``<stem>.models.txt`` (one row key per line: name, or
  ``name<TAB>revision<TAB>layer``) and ``<stem>.texts.jsonl``, so that ``pylogmap import``
  rebuilds the same map.
- ``.h5ad``: an AnnData object (models = observations, texts = variables) with the model table,
  annotations and mean log-likelihood in ``obs``, the embeddings in ``obsm`` (``X_tsne`` ...),
  text lengths and sources in ``var`` and the map attributes in ``uns``.

Import (``pylogmap import``):
- ``MATRIX.npy --models NAMES.txt --texts TEXTS.jsonl``: rows in the order of the names file.
- the published ``log-likelihood_1018.pkl`` (a pickled dict: model name -> vector over the
  texts, in the order of ``texts-10k-pile.jsonl``) with that jsonl. Unpickling can run code:
  only import pickles from a source you trust.

pandas/pyarrow (Parquet) and anndata (h5ad) are optional and imported only when used.
"""

from __future__ import annotations

import csv
import json
import math
import pickle
from pathlib import Path

import numpy as np

from pylogmap.errors import PylogmapError

MAP_FORMATS = (".csv", ".parquet")
MATRIX_FORMATS = (".npy", ".h5ad")


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def map_table(mf) -> dict[str, np.ndarray]:
    """The per-model table of a map file (columns in a stable order)."""
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
    cols["on_map"] = used[0].astype(bool) if used is not None else np.zeros(M, dtype=bool)
    ml = mf.read_derived("mean_loglik")
    if ml is not None:
        cols["mean_loglik"] = ml[0]
    else:
        from pylogmap.mapping import geometry

        cols["mean_loglik"] = geometry.mean_loglik(mf.loglik())
    for name in ("tsne", "pca", "umap"):
        got = mf.read_derived(name)
        if got is not None:
            cols[f"{name}_x"] = got[0][:, 0].astype(np.float64)
            cols[f"{name}_y"] = got[0][:, 1].astype(np.float64)
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


def export_map(path, out, *, require_map: bool = True) -> dict:
    """Write the per-model table as CSV or Parquet (chosen by the extension of ``out``)."""
    from pylogmap.store import open_map

    out = Path(out)
    ext = out.suffix.lower()
    if ext not in MAP_FORMATS:
        raise PylogmapError(f"cannot export a map to {out.name!r}; use a .csv or .parquet file name.")
    mf = open_map(path)
    try:
        if mf.n_models == 0:
            raise PylogmapError(f"{mf.path.name} has no models; nothing to export.")
        if require_map and mf.read_derived("used") is None:
            raise PylogmapError(f"{mf.path.name} has no computed map yet; run 'pylogmap map {mf.path}' first.")
        cols = map_table(mf)
    finally:
        mf.close()
    tmp = out.with_name(out.name + ".tmp")
    if ext == ".csv":
        names = list(cols)
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(names)
            for i in range(len(cols["label"])):
                writer.writerow([_cell(cols[c][i]) for c in names])
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as err:
            raise PylogmapError("Parquet export needs pyarrow; run 'pip install pyarrow' or export to .csv.") from err
        arrays = {}
        for c, v in cols.items():
            arrays[c] = pa.array(v.tolist() if v.dtype == object else v)
        pq.write_table(pa.table(arrays), tmp)
    tmp.replace(out)
    return {"path": str(out), "rows": int(len(cols["label"])), "columns": list(cols)}


def _key_lines(mf) -> list[str]:
    keys = mf.keys()
    plain = all(not k.revision and k.layer < 0 for k in keys)
    return [k.name if plain else f"{k.name}\t{k.revision}\t{k.layer}" for k in keys]


def export_matrix(path, out, *, what: str = "loglik") -> dict:
    """Write the matrix as ``.npy`` (+ models/texts side files) or AnnData ``.h5ad``.

    ``what="loglik"`` (default): raw L, NaN for unscored rows. ``what="q"``: the double-centred
    Q of the rows on the map (clipped with the map's tau), other rows NaN.
    """
    from pylogmap.store import open_map

    out = Path(out)
    ext = out.suffix.lower()
    if ext not in MATRIX_FORMATS:
        raise PylogmapError(f"cannot export a matrix to {out.name!r}; use a .npy or .h5ad file name.")
    if what not in ("loglik", "q"):
        raise PylogmapError(f"unknown matrix {what!r}; use 'loglik' or 'q'.")
    mf = open_map(path)
    try:
        if mf.n_models == 0:
            raise PylogmapError(f"{mf.path.name} has no models; nothing to export.")
        if what == "loglik":
            X = mf.loglik()
        else:
            from pylogmap import mapping

            geo, _ = mapping.load_geometry(mf)
            X = np.full((mf.n_models, mf.n_texts), np.nan, dtype=np.float32)
            X[geo.rows] = geo.Q
        texts = mf.texts()
        written = [str(out)]
        if ext == ".npy":
            tmp = out.with_name(out.stem + ".tmp.npy")
            np.save(tmp, X)
            tmp.replace(out)
            models_path = out.with_name(out.stem + ".models.txt")
            models_path.write_text("\n".join(_key_lines(mf)) + "\n", encoding="utf-8")
            texts_path = out.with_name(out.stem + ".texts.jsonl")
            texts.to_jsonl(texts_path)
            written += [str(models_path), str(texts_path)]
        else:
            _write_h5ad(mf, X, texts, out, what)
        return {"path": str(out), "files": written, "shape": list(X.shape), "matrix": what}
    finally:
        mf.close()


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
    for name in ("tsne", "pca", "umap"):
        got = mf.read_derived(name)
        if got is not None:
            obsm[f"X_{name}"] = np.asarray(got[0], dtype=np.float32)
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
    tmp = out.with_name(out.stem + ".tmp.h5ad")
    adata.write_h5ad(tmp)
    tmp.replace(out)


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def read_model_keys(path) -> list:
    """Row keys from a names file: one per line, ``name`` or ``name<TAB>revision<TAB>layer``."""
    from pylogmap.store import RowKey

    path = Path(path)
    if not path.is_file():
        raise PylogmapError(f"models file {str(path)!r} does not exist; give a text file with one model name per line.")
    keys = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) > 3:
            raise PylogmapError(f"{path.name} line {lineno}: expected 'name' or 'name<TAB>revision<TAB>layer'.")
        name = parts[0].strip()
        revision = parts[1].strip() if len(parts) > 1 else ""
        try:
            layer = int(parts[2]) if len(parts) > 2 and parts[2].strip() else -1
        except ValueError:
            raise PylogmapError(f"{path.name} line {lineno}: layer {parts[2]!r} is not an integer.") from None
        keys.append(RowKey(name, revision, layer))
    _check_unique(keys, path.name)
    return keys


def _check_unique(keys, where: str) -> None:
    seen: dict = {}
    dups = []
    for k in keys:
        if k in seen:
            dups.append(k.label if hasattr(k, "label") else str(k))
        seen[k] = 1
    if dups:
        raise PylogmapError(f"{where} lists the same model more than once: {', '.join(dups[:5])}; each row needs its own name.")


def _load_texts(texts_path):
    from pylogmap.texts import load_texts

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
    if not np.issubdtype(L.dtype, np.number):
        raise PylogmapError(f"{where}: the matrix has dtype {L.dtype}; it must hold numbers (log-likelihoods in nats).")
    L = np.asarray(L, dtype=np.float32)
    finite = L[np.isfinite(L)]
    if finite.size and finite.max() > 1e-3:
        raise PylogmapError(
            f"{where}: the matrix has positive entries (max {finite.max():.4g}); it must hold log-likelihoods "
            "(log p <= 0, in nats), not losses or perplexities. Negate a loss matrix before importing."
        )
    return L


def import_matrix(matrix_path, models_path, texts_path, out, *, overwrite: bool = False) -> dict:
    """Build a map file from an ``.npy`` matrix, a names file and a texts file."""
    from pylogmap.store import MapFile

    matrix_path = Path(matrix_path)
    if not matrix_path.is_file():
        raise PylogmapError(f"matrix file {str(matrix_path)!r} does not exist.")
    try:
        L = np.load(matrix_path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise PylogmapError(f"{matrix_path.name} is not a plain .npy array ({err}).") from None
    keys = read_model_keys(models_path)
    texts = _load_texts(texts_path)
    L = _check_matrix(L, len(keys), texts, matrix_path.name)
    mf = MapFile.create_with_rows(out, texts, keys, L, overwrite=overwrite)
    info = {"path": str(mf.path), "models": mf.n_models, "texts": mf.n_texts, "source": str(matrix_path)}
    mf.close()
    return info


def load_published_pickle(pkl_path) -> tuple[list[str], np.ndarray]:
    """Read the published ``log-likelihood_1018.pkl``: a dict model name -> vector."""
    pkl_path = Path(pkl_path)
    if not pkl_path.is_file():
        raise PylogmapError(f"pickle {str(pkl_path)!r} does not exist.")
    try:
        with open(pkl_path, "rb") as f:
            data = pickle.load(f)
    except Exception as err:  # pickle raises many kinds
        raise PylogmapError(f"{pkl_path.name} could not be unpickled ({type(err).__name__}: {err}).") from None
    if not isinstance(data, dict) or not data:
        raise PylogmapError(
            f"{pkl_path.name} holds a {type(data).__name__}, not the published format "
            "(a dict of model name -> log-likelihood vector over the texts)."
        )
    names, rows = [], []
    length = None
    for name, vec in data.items():
        arr = np.asarray(vec, dtype=np.float64).reshape(-1) if not isinstance(vec, str) else None
        if arr is None or arr.size == 0:
            raise PylogmapError(f"{pkl_path.name}: the entry {name!r} is not a vector of numbers.")
        if length is None:
            length = arr.size
        elif arr.size != length:
            raise PylogmapError(f"{pkl_path.name}: {name!r} has {arr.size} values, the first model has {length}.")
        names.append(str(name))
        rows.append(arr.astype(np.float32))
    return names, np.stack(rows)


def import_published(pkl_path, texts_path, out, *, overwrite: bool = False) -> dict:
    """Build a map file from the published pickle and text jsonl."""
    from pylogmap.store import MapFile, RowKey

    names, L = load_published_pickle(pkl_path)
    texts = _load_texts(texts_path)
    keys = [RowKey(n) for n in names]
    L = _check_matrix(L, len(keys), texts, Path(pkl_path).name)
    mf = MapFile.create_with_rows(out, texts, keys, L, meta={"dtype": ["float16 (published)"] * len(keys)},
                                  overwrite=overwrite)
    info = {"path": str(mf.path), "models": mf.n_models, "texts": mf.n_texts, "source": str(pkl_path)}
    mf.close()
    return info
