"""Journal entries built from what a caller gives: rows (scores and `/models` columns), derived
results under `/map` (arrays and their attributes, encoded by `store.attrs`), annotation columns.
Each entry is a dict of numpy arrays, saved as one `.npz` file (docs/format.md, "Journal entries");
`store.schema.apply` applies it in a commit. The inputs are checked here, before anything is written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pylogmap.errors import MapFileError
from pylogmap.store.attrs import encode
from pylogmap.store.json_text import dumps
from pylogmap.store.keys import RowKey, as_key
from pylogmap.store.schema import MODEL_COLUMNS, SETTABLE


def model_columns(keys: Sequence[RowKey], metas: Sequence[Mapping[str, Any] | None] | Mapping[str, Sequence[Any]],
                  statuses: Sequence[str], errors: Sequence[str], n_truncated: Sequence[int]) -> dict[str, list]:
    """`/models` column values for rows: from per-row meta dicts, or from a dict of per-row columns
    (the fast path for bulk imports). Keys of `meta` that name a settable `/models` column go there
    (`dtype` loses a `torch.` prefix); all other keys, and a nested `meta` dict, go to the row's
    JSON `meta` column."""
    k = len(keys)
    if isinstance(metas, Mapping):
        colmeta = {c: list(v) for c, v in metas.items()}
        for c, v in colmeta.items():
            if len(v) != k:
                raise MapFileError(f"meta column {c!r} has {len(v)} values for {k} rows.")
    else:
        metas = [dict(m or {}) for m in metas]
        if len(metas) != k:
            raise MapFileError(f"meta has {len(metas)} entries for {k} rows.")
        names = sorted({c for m in metas for c in m})
        colmeta = {c: [m.get(c) for m in metas] for c in names}
    cols: dict[str, list] = {
        "name": [key.name for key in keys],
        "revision": [key.revision for key in keys],
        "layer": [key.layer for key in keys],
        "status": [str(s) for s in statuses],
        "error": [str(e) for e in errors],
    }
    for c in SETTABLE:
        kind, default = MODEL_COLUMNS[c]
        given = colmeta.pop(c, None)
        if given is None:
            values = list(n_truncated) if c == "n_truncated" else [default] * k
        else:
            values = []
            for j, v in enumerate(given):
                if isinstance(v, np.generic):
                    v = v.item()
                if v is None or (kind != "str" and isinstance(v, float) and math.isnan(v)):
                    v = n_truncated[j] if c == "n_truncated" else default
                if kind == "str":
                    v = str(v)
                    if c == "dtype":
                        v = v.replace("torch.", "")
                values.append(v)
        if kind == "float64":
            values = [None if (v is None or math.isnan(v)) else float(v) for v in values]
        cols[c] = values
    nested = colmeta.pop("meta", None)
    if not colmeta and nested is None:
        cols["meta"] = ["{}"] * k
    else:
        out = []
        for j in range(k):
            extra = nested[j] if nested is not None else None
            extra = dict(json.loads(extra) if isinstance(extra, str) else (extra or {}))
            for c, v in colmeta.items():
                if v[j] is not None:
                    extra[c] = v[j]
            out.append(dumps(extra))
        cols["meta"] = out
    return cols


def rows_entry(keys: Sequence[RowKey], loglik: np.ndarray, ntokens: np.ndarray, truncated: np.ndarray,
               columns: dict[str, list]) -> dict[str, np.ndarray]:
    """An entry adding (or replacing) rows: their keys, [k, N] matrices and `/models` columns."""
    return {
        "op": np.array("rows"),
        "names": np.array([k.name for k in keys], dtype=str),
        "revisions": np.array([k.revision for k in keys], dtype=str),
        "layers": np.array([k.layer for k in keys], dtype=np.int32),
        "loglik": np.ascontiguousarray(loglik, dtype=np.float32),
        "ntokens": np.ascontiguousarray(ntokens, dtype=np.int32),
        "truncated": np.ascontiguousarray(truncated, dtype=bool),
        "columns": np.array(dumps(columns)),
    }


def check_matrix(name: str, data: Any, shape: tuple[int, ...], dtype) -> np.ndarray:
    """`data` as an array of `dtype`; an error naming the expected shape when it has another."""
    arr = np.asarray(data)
    if arr.shape != shape:
        raise MapFileError(f"{name} has shape {arr.shape}, expected {shape} (rows x texts of this map).")
    return arr.astype(dtype, copy=False)


def bulk_rows_entry(keys, loglik, ntokens, meta, truncated, status, errors, n: int) -> dict[str, np.ndarray]:
    """A `rows` entry for many rows at once (`MapFile.append_rows`, `MapFile.create_with_rows`)."""
    keys = [as_key(k) for k in keys]
    k = len(keys)
    if len(set(keys)) != k:
        seen: set = set()
        dup = sorted({kk.label for kk in keys if kk in seen or seen.add(kk)})[:5]
        raise MapFileError(f"the same row key is given twice: {', '.join(dup)}.")
    L = check_matrix("loglik", loglik, (k, n), np.float32)
    T = np.full((k, n), -1, np.int32) if ntokens is None else check_matrix("ntokens", ntokens, (k, n), np.int32)
    tr = np.zeros((k, n), bool) if truncated is None else check_matrix("truncated", truncated, (k, n), bool)
    metas = meta if isinstance(meta, Mapping) else [{} for _ in range(k)] if meta is None else list(meta)
    st = list(status) if status is not None else ["ok"] * k
    er = list(errors) if errors is not None else [""] * k
    cols = model_columns(keys, metas, st, er, tr.sum(axis=1).tolist())
    return rows_entry(keys, L, T, tr, cols)


def annotations_entry(columns: Mapping[str, Any], m: int) -> dict[str, np.ndarray]:
    """An entry writing per-row columns: numbers as float64 (NaN = missing), anything else str."""
    entry: dict[str, np.ndarray] = {"op": np.array("annotations")}
    names = []
    for i, (name, values) in enumerate(columns.items()):
        if not name or "/" in name:
            raise MapFileError(f"annotation column name {name!r} must be non-empty and without '/'.")
        arr = np.asarray(values)
        if arr.shape != (m,):
            raise MapFileError(f"annotation column {name!r} has shape {arr.shape}; the map has {m} rows.")
        if arr.dtype.kind in "biuf":
            arr = arr.astype(np.float64)
        elif m == 0:
            arr = np.zeros(0, dtype="U1")
        else:
            arr = np.array(["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                            for v in arr], dtype=str)
        entry[f"c{i}"] = arr
        names.append(name)
    entry["names"] = np.array(json.dumps(names))
    return entry


def _encoded_attrs(attrs: Mapping[str, Any] | None, entry: dict[str, np.ndarray]) -> list[list]:
    """Encode attributes into the entry: their values become arrays `v0`, `v1`, ... of the entry
    (numpy keeps dtypes that JSON would lose); returns the spec `[[name, encoding, array key], ...]`."""
    spec = []
    for name, value in (attrs or {}).items():
        stored, encoding = encode(name, value)
        key = f"v{sum(k[0] == 'v' for k in entry)}"
        arr = np.asarray(stored)
        entry[key] = arr.astype(str) if arr.dtype.kind == "O" else arr  # npz files hold no objects
        spec.append([name, encoding, key])
    return spec


def derived_entry(arrays: Mapping[str, Any], attrs: Mapping[str, Any] | None, replace_all: bool) -> dict[str, np.ndarray]:
    """An entry writing `/map` datasets (`name -> array` or `name -> (array, attrs)`) and `/map`'s
    own attributes."""
    entry: dict[str, np.ndarray] = {"op": np.array("derived")}
    items = []
    for i, (name, value) in enumerate(arrays.items()):
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise MapFileError(f"derived name {name!r} is not a relative path under /map.")
        array, a = (value if isinstance(value, tuple) else (value, {}))
        arr = np.asarray(array)
        if arr.dtype.kind == "O":
            arr = np.array([str(x) for x in arr.reshape(-1)], dtype=str).reshape(arr.shape)
        if arr.dtype.kind not in "biufU":
            raise MapFileError(f"derived dataset {name!r} has dtype {arr.dtype}; use numbers or strings.")
        entry[f"a{i}"] = arr
        items.append([name, _encoded_attrs(a, entry)])
    spec = {"items": items, "map_attrs": _encoded_attrs(attrs, entry), "replace_all": bool(replace_all)}
    entry["spec"] = np.array(dumps(spec))
    return entry
