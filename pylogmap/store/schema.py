"""The map file's layout (docs/format.md, format version 2): its constants and `/models` columns,
building a new file behind its commit record, and applying a journal entry (rows, derived
results, annotations) to the open file during a commit.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pylogmap import __version__
from pylogmap.errors import MapFileError
from pylogmap.store.attrs import clear_attrs, read_attr, write_attrs, write_encoded
from pylogmap.store.json_text import dumps
from pylogmap.store.keys import RowKey
from pylogmap.store.positional import write_at
from pylogmap.store.record import CLEAN, CREATING, USERBLOCK, CommitRecord, userblock, write_fd
from pylogmap.store.shadow import ShadowFile
from pylogmap.store.sidefiles import journal_dir
from pylogmap.texts import TextSet

FORMAT = "pylogmap"
FORMAT_VERSION = 2
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


@contextmanager
def building(tmp: Path, record: CommitRecord) -> Iterator[h5py.File]:
    """A new map file built at `tmp` (which must not exist): its user block, holding `record`
    marked as being created, is written first, so a file left by a kill is provably ours; HDF5
    writes behind it. On success the object headers are settled (`settle`), the record is marked
    clean and the file synced; on failure `tmp` is removed."""
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        write_at(fd, userblock(record.with_state(CREATING)), 0)
        with h5py.File(ShadowFile(fd, base=0, size=0), "w", userblock_size=USERBLOCK, libver=LIBVER,
                       fs_strategy="fsm", fs_persist=False) as f:
            yield f
        with h5py.File(ShadowFile(fd, base=0), "r+", libver=LIBVER) as f:
            settle(f)
        write_fd(fd, record.with_state(CLEAN))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)


def settle(f: h5py.File) -> None:
    """Make every object a commit changes once, as a commit would (rewrite the root attributes,
    grow every per-row dataset by a row and shrink it back). HDF5 lays object headers out anew
    the first time a file is modified; done here, in a file nobody reads yet, later commits change
    each header in place, so that the file stays readable by plain HDF5 however much of a commit
    has been written (tests/test_store_commits.py checks it)."""
    write_attrs(f, {"commit_seq": int(read_attr(f, "commit_seq", 0))})
    m = f["loglik"].shape[0]
    per_row = [f[name] for name in MATRICES] + [f["models"][c] for c in MODEL_COLUMNS]
    per_row += list(f["annotations"].values()) if "annotations" in f else []
    for ds in per_row:
        ds.resize(m + 1, axis=0)
        ds[m] = ds.fillvalue if ds.dtype.kind != "O" else ""
        ds.resize(m, axis=0)


def new_file(f: h5py.File, texts: TextSet, map_id: str, rows: dict[str, np.ndarray] | None = None,
             annotations: dict[str, np.ndarray] | None = None, attrs: dict[str, Any] | None = None,
             populate: Callable[[h5py.File, "FileState"], None] | None = None) -> None:
    """Lay out a map for `texts` in the open new file `f`: empty, or with the rows of one `rows`
    journal entry and an `annotations` entry applied, or filled by `populate(f, state)`."""
    n = len(texts)
    if n == 0:
        raise MapFileError("cannot create a map with an empty text set; give at least one text.")
    write_attrs(f, {"format": FORMAT, "format_version": FORMAT_VERSION, "created_by": f"pylogmap {__version__}",
                    "text_set_hash": texts.hash, "commit_seq": 0, "map_id": map_id, **(attrs or {})})
    g = f.create_group("texts")
    write_attrs(g, {"hash": texts.hash, "name": texts.name or "", "recipe": texts.recipe})
    g.create_dataset("text", data=str_array(texts.texts), dtype=STR)
    g.create_dataset("n_bytes", data=np.asarray(texts.n_bytes, dtype=np.int64))
    g.create_dataset("source", data=str_array(texts.sources), dtype=STR)
    g.create_dataset("meta", data=str_array(dumps(m) for m in texts.meta), dtype=STR)
    mg = f.create_group("models")
    for col, (kind, _) in MODEL_COLUMNS.items():
        mg.create_dataset(col, shape=(0,), maxshape=(None,), chunks=(1024,), dtype=STR if kind == "str" else kind)
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
    if rows is not None or populate is not None:
        state = FileState(f)
        if rows is not None:
            apply_rows(f, state, rows)
        if populate is not None:
            populate(f, state)
        if annotations is not None:
            apply_annotations(f, state, annotations)


# --------------------------------------------------------------------------------------------
# Applying journal entries (during a commit, to the open copy of the file)


class FileState:
    """What a commit needs to know about the open file: rows by key, row count, and which map it
    is (`path`, `map_id`, text-set hash) to check journal entries against."""

    def __init__(self, f: h5py.File, path: Path | None = None):
        names = read_str(f["models/name"])
        revs = read_str(f["models/revision"])
        layers = f["models/layer"][...]
        self.rows = {RowKey(n, r, int(lay)): i for i, (n, r, lay) in enumerate(zip(names, revs, layers))}
        self.m = len(names)
        self.text_hash = str(read_attr(f, "text_set_hash"))
        self.map_id = str(read_attr(f, "map_id", ""))
        self.path = path


def apply(f: h5py.File, state: FileState, entry: dict[str, np.ndarray], where: str = "") -> set[str]:
    """Apply one journal entry (`op` = rows, derived or annotations) to the open file; returns
    what it changed of what was there ("rows", "map", "annotations"; nothing for new rows)."""
    op = str(entry["op"])
    made_for = str(entry["text_hash"]) if "text_hash" in entry else None
    folder = journal_dir(state.path).name if state.path is not None else "journal folder"
    if made_for is not None and made_for != state.text_hash:
        raise MapFileError(
            f"journal entry {where} was written for a map of text set {made_for}, but the file has "
            f"{state.text_hash} (was the file replaced by hand?). Move the folder {folder} away to open the "
            "file without those results."
        )
    made_in = str(entry["map_id"]) if "map_id" in entry else None
    if made_in is not None and state.map_id and made_in != state.map_id:
        raise MapFileError(
            f"journal entry {where} was written for another map file (id {made_in}) than this one (id "
            f"{state.map_id}): was the file replaced by hand? Move the folder {folder} away to open the "
            "file without those results."
        )
    if op == "rows":
        return {"rows"} if apply_rows(f, state, entry) else set()
    if op == "derived":
        apply_derived(f, entry)
        return {"map"}
    if op == "annotations":
        apply_annotations(f, state, entry)
        return {"annotations"}
    raise MapFileError(f"unknown journal entry {op!r} in {folder}; it was written by a newer pylogmap.")


def _resize_rows(f: h5py.File, datasets: dict[str, h5py.Dataset], m: int) -> None:
    """Grow every per-row dataset (models, matrices, annotations) to m rows, filling defaults."""
    old = datasets["loglik"].shape[0]
    if m == old:
        return
    for ds in datasets.values():  # new cells of matrices read as the fill value (NaN, -1, False);
        ds.resize(m, axis=0)      # the caller writes every new row's /models values
    if "annotations" in f:
        for ds in f["annotations"].values():
            ds.resize((m,))
            ds[old:m] = str_array([""] * (m - old)) if ds.dtype.kind == "O" else np.nan


def apply_rows(f: h5py.File, state: FileState, entry: dict[str, np.ndarray]) -> bool:
    """Add the entry's rows, or replace rows whose key is already in the file (in place);
    returns whether any row was replaced."""
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
    models = f["models"]
    datasets = {name: f[name] for name in MATRICES} | {col: models[col] for col in MODEL_COLUMNS}
    _resize_rows(f, datasets, m)
    new = idx >= state.m
    old_rows = np.flatnonzero(~new)
    state.m = m
    k0 = int(idx[new][0]) if new.any() else m
    # New rows are contiguous at the end (k0..m) in entry order: write them as one slice.
    for name in MATRICES:
        data, ds = entry[name], datasets[name]
        if new.any():
            ds[k0:m] = data[new]
        for j in old_rows:
            ds[int(idx[j])] = data[j]
    for col, (kind, default) in MODEL_COLUMNS.items():
        values = columns[col]
        if kind == "str":
            arr = str_array(values)
        elif kind == "float64":
            arr = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
        else:
            arr = np.array([default if v is None else int(v) for v in values], dtype=kind)
        ds = datasets[col]
        if new.any():
            ds[k0:m] = arr[new]
        for j in old_rows:
            ds[int(idx[j])] = arr[j]
    return len(old_rows) > 0


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
