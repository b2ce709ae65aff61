"""The map file's layout (docs/format.md, format version 1): its constants and `/models` columns,
writing a new file, and applying a journal entry (rows, derived results, annotations) to an open
copy of the file during a commit.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pylogmap import __version__
from pylogmap.errors import MapFileError
from pylogmap.store.attrs import clear_attrs, read_attr, write_attrs, write_encoded
from pylogmap.store.durable import fsync_dir, fsync_file
from pylogmap.store.json_text import dumps
from pylogmap.store.keys import RowKey
from pylogmap.store.sidefiles import commit_tmp_path, journal_dir
from pylogmap.texts import TextSet

FORMAT = "pylogmap"
FORMAT_VERSION = 1
# Format bounds: v1.10 objects (SWMR-capable superblock, readable by HDF5 >= 1.10).
LIBVER = ("v110", "v110")

STR = h5py.string_dtype(encoding="utf-8")

#: `/models` columns: name -> (numpy dtype or "str", default for a row that does not give it).
MODEL_COLUMNS: dict[str, tuple[str, Any]] = {
    "name": ("str", ""),
    "revision": ("str", ""),
    "layer": ("int32", -1),
    "step": ("int64", -1),
    "status": ("str", "ok"),
    "error": ("str", ""),
    "dtype": ("str", ""),
    "architecture": ("str", ""),
    "n_params": ("int64", -1),
    "tokenizer": ("str", ""),
    "max_length": ("int32", -1),
    "n_truncated": ("int32", -1),
    "wall_time_s": ("float64", math.nan),
    "tokens_per_s": ("float64", math.nan),
    "meta": ("str", "{}"),
}
KEY_COLUMNS = ("name", "revision", "layer")
#: Columns a caller may set through `meta=` (the rest of `meta` goes into the JSON column).
SETTABLE = tuple(c for c in MODEL_COLUMNS if c not in KEY_COLUMNS + ("status", "error", "meta"))
#: The per-row matrices, [M, N] each.
MATRICES = ("loglik", "ntokens", "truncated")


def str_array(values: Iterable[Any]) -> np.ndarray:
    """Values as an object array of str (None -> ""), ready for a UTF-8 string dataset."""
    return np.array(["" if v is None else str(v) for v in values], dtype=object)


def read_str(ds) -> np.ndarray:
    """A 1-D UTF-8 string dataset as an object array of str."""
    return ds.asstr()[...].astype(object) if ds.shape[0] else np.array([], dtype=object)


def rows_chunk(n_texts: int, itemsize: int = 4) -> int:
    """Rows per HDF5 chunk: about 256 KiB per chunk, at most 256 rows (a small map stays small:
    HDF5 allocates whole chunks; reading one row reads its chunk)."""
    return int(max(1, min(256, (1 << 18) // max(1, n_texts * itemsize))))


# --------------------------------------------------------------------------------------------
# A new file


def create_file(path: Path, texts: TextSet, rows: dict[str, np.ndarray] | None = None,
                annotations: dict[str, np.ndarray] | None = None) -> None:
    """Write a map for `texts` to `path` (atomically: temporary file + rename), empty or with the
    rows of one `rows` journal entry and an `annotations` entry applied before the rename."""
    n = len(texts)
    if n == 0:
        raise MapFileError("cannot create a map with an empty text set; give at least one text.")
    tmp = commit_tmp_path(path)
    try:
        with h5py.File(tmp, "w", libver=LIBVER, fs_strategy="fsm", fs_persist=True) as f:
            write_attrs(f, {"format": FORMAT, "format_version": FORMAT_VERSION, "created_by": f"pylogmap {__version__}",
                            "text_set_hash": texts.hash, "commit_seq": 0})
            g = f.create_group("texts")
            write_attrs(g, {"hash": texts.hash, "name": texts.name or "", "recipe": texts.recipe})
            g.create_dataset("text", data=str_array(texts.texts), dtype=STR)
            g.create_dataset("n_bytes", data=np.asarray(texts.n_bytes, dtype=np.int64))
            g.create_dataset("source", data=str_array(texts.sources), dtype=STR)
            g.create_dataset("meta", data=str_array(dumps(m) for m in texts.meta), dtype=STR)
            mg = f.create_group("models")
            for col, (kind, _) in MODEL_COLUMNS.items():
                mg.create_dataset(col, shape=(0,), maxshape=(None,), chunks=(1024,),
                                  dtype=STR if kind == "str" else kind)
            rc = rows_chunk(n)
            # Fletcher-32 checksums per chunk: a flipped bit in the data is an error on reading,
            # never a silently wrong number (HDF5 >= 1.10 metadata is checksummed anyway).
            f.create_dataset("loglik", shape=(0, n), maxshape=(None, n), chunks=(rc, n), dtype=np.float32,
                             fillvalue=np.nan, fletcher32=True)
            f.create_dataset("ntokens", shape=(0, n), maxshape=(None, n), chunks=(rc, n), dtype=np.int32,
                             fillvalue=-1, fletcher32=True)
            f.create_dataset("truncated", shape=(0, n), maxshape=(None, n), chunks=(rows_chunk(n, 1), n),
                             dtype=bool, fletcher32=True)
            f.create_group("annotations")
            write_attrs(f.create_group("map"), {})
            if rows is not None:
                state = FileState(f)
                apply_rows(f, state, rows)
                if annotations is not None:
                    apply_annotations(f, state, annotations)
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# Applying journal entries (during a commit, to the open copy of the file)


class FileState:
    """What a commit needs to know about the open copy: rows by key, row count."""

    def __init__(self, f: h5py.File):
        names = read_str(f["models/name"])
        revs = read_str(f["models/revision"])
        layers = f["models/layer"][...]
        self.rows = {RowKey(n, r, int(lay)): i for i, (n, r, lay) in enumerate(zip(names, revs, layers))}
        self.m = len(names)
        self.text_hash = str(read_attr(f, "text_set_hash"))
        self.path = f.filename.removesuffix(".tmp")


def apply(f: h5py.File, state: FileState, entry: dict[str, np.ndarray], where: str = "") -> None:
    """Apply one journal entry (`op` = rows, derived or annotations) to the open file."""
    op = str(entry["op"])
    made_for = str(entry["text_hash"]) if "text_hash" in entry else None
    if made_for is not None and made_for != state.text_hash:
        raise MapFileError(
            f"journal entry {where} was written for a map of text set {made_for}, but the file has "
            f"{state.text_hash} (was the file replaced by hand?). Move the folder "
            f"{journal_dir(Path(state.path)).name} away to open the file without those results."
        )
    if op == "rows":
        apply_rows(f, state, entry)
    elif op == "derived":
        apply_derived(f, entry)
    elif op == "annotations":
        apply_annotations(f, state, entry)
    else:
        raise MapFileError(f"unknown journal entry {op!r} next to {f.filename}; it was written by a newer pylogmap.")


def _resize_rows(f: h5py.File, m: int) -> None:
    """Grow every per-row dataset (models, matrices, annotations) to m rows, filling defaults."""
    old = f["loglik"].shape[0]
    if m == old:
        return
    for name in MATRICES:  # new cells read as the fill value (NaN, -1, False)
        f[name].resize((m, f[name].shape[1]))
    for col in MODEL_COLUMNS:  # the caller writes every new row's values
        f["models"][col].resize((m,))
    if "annotations" in f:
        for ds in f["annotations"].values():
            ds.resize((m,))
            ds[old:m] = str_array([""] * (m - old)) if ds.dtype.kind == "O" else np.nan


def apply_rows(f: h5py.File, state: FileState, entry: dict[str, np.ndarray]) -> None:
    """Add the entry's rows, or replace rows whose key is already in the file (in place)."""
    keys = [RowKey(n, r, lay) for n, r, lay in
            zip(entry["names"].tolist(), entry["revisions"].tolist(), entry["layers"].tolist())]
    columns = json.loads(str(entry["columns"]))
    idx = np.empty(len(keys), dtype=np.int64)
    m = state.m
    for j, key in enumerate(keys):
        i = state.rows.get(key)
        if i is None:
            i = m
            m += 1
            state.rows[key] = i
        idx[j] = i
    _resize_rows(f, m)
    new = idx >= state.m
    old_rows = np.flatnonzero(~new)
    state.m = m
    k0 = int(idx[new][0]) if new.any() else m
    # New rows are contiguous at the end (k0..m) in entry order: write them as one slice.
    for name in MATRICES:
        data = entry[name]
        if new.any():
            f[name][k0:m] = data[new]
        for j in old_rows:
            f[name][int(idx[j])] = data[j]
    for col, (kind, default) in MODEL_COLUMNS.items():
        values = columns[col]
        if kind == "str":
            arr = str_array(values)
        elif kind == "float64":
            arr = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
        else:
            arr = np.array([default if v is None else int(v) for v in values], dtype=kind)
        ds = f["models"][col]
        if new.any():
            ds[k0:m] = arr[new]
        for j in old_rows:
            ds[int(idx[j])] = arr[j]


def _set_entry_attrs(obj, entry: dict[str, np.ndarray], spec_attrs: Any) -> None:
    """Set the attributes a derived entry gives for `obj`: `[[name, encoding, array key], ...]`
    (the encoded values are arrays of the entry, so numpy dtypes survive), or a dict of JSON
    values in entries journalled by earlier releases."""
    if isinstance(spec_attrs, dict):
        write_attrs(obj, spec_attrs)
    else:
        write_encoded(obj, {name: (entry[key], encoding) for name, encoding, key in spec_attrs or []})


def apply_derived(f: h5py.File, entry: dict[str, np.ndarray]) -> None:
    """Write `/map` datasets and attributes (`replace_all` first empties `/map`)."""
    spec = json.loads(str(entry["spec"]))
    group = f.require_group("map")
    if spec.get("replace_all"):
        for name in list(group):
            del group[name]
        clear_attrs(group)
    _set_entry_attrs(group, entry, spec.get("map_attrs"))
    for i, (name, attrs) in enumerate(spec["items"]):
        if name in group:
            del group[name]
        data = entry[f"a{i}"]
        if data.dtype.kind == "U":
            ds = group.create_dataset(name, data=data.astype(object), dtype=STR)
        else:
            ds = group.create_dataset(name, data=data)
        _set_entry_attrs(ds, entry, attrs)


def apply_annotations(f: h5py.File, state: FileState, entry: dict[str, np.ndarray]) -> None:
    """Write (or replace) `/annotations` columns, one value per row."""
    names = json.loads(str(entry["names"]))
    group = f.require_group("annotations")
    for i, name in enumerate(names):
        data = entry[f"c{i}"]
        if len(data) != state.m:
            raise MapFileError(f"annotation column {name!r} has {len(data)} values for {state.m} rows.")
        if name in group:
            del group[name]
        chunks = (min(max(state.m, 1), 4096),)
        if data.dtype.kind == "U":
            group.create_dataset(name, data=data.astype(object), dtype=STR, maxshape=(None,), chunks=chunks)
        else:
            group.create_dataset(name, data=data.astype(np.float64), maxshape=(None,), chunks=chunks)
