"""The HDF5 map file: one text set, the scored models' log-likelihood matrix, derived results.

The schema is `docs/format.md` (format version 1); this module is its reference implementation.

Crash safety. The live file `OUT.h5` is never modified in place. Every change goes through:

1. a **journal entry** `OUT.h5.journal/<seq>.npz`, written to a temporary name, fsync'ed and renamed
   into place (so an entry either exists completely or not at all);
2. a **commit**: `OUT.h5` is copied to `OUT.h5.tmp`, the pending entries are applied to the copy
   (which records the last applied sequence number in its `commit_seq` attribute), the copy is
   flushed, fsync'ed and `os.replace`d over `OUT.h5`;
3. the applied journal entries are deleted.

A `kill -9` at any moment therefore leaves the last committed `OUT.h5` intact plus complete journal
entries; the next writer (or reader, when no writer is alive) applies the entries whose sequence
number is above `commit_seq` and deletes the others. At most the model in flight is lost.
Commits copy the file, so a writer rate-limits them (`commit_interval`); the journal already holds
every finished result in the meantime.

Readers open `OUT.h5` at any time and see the last commit (the file they opened is never written
again; a commit replaces the name with a new file). `MapFile.changed()` tells a long-lived reader
that a newer commit exists; `MapFile.reload()` opens it. Files are written with HDF5 format bounds
v1.10 so `h5py.File(path, "r", swmr=True)` works and any HDF5 >= 1.10 reads them.

One writer at a time: writers hold an exclusive `flock` on `OUT.h5.lock` (which names their pid).
The kernel drops the lock when a process dies, so a lock left by a killed writer never blocks.

Per-token log-probabilities (optional) live beside the map in the folder `OUT.tokens/`, one small
HDF5 file per row, each written atomically before the row's journal entry (see docs/format.md).

Only h5py and numpy are used here (the map side never imports torch).
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import json
import math
import os
import shutil
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

try:  # POSIX (Linux, macOS)
    import fcntl
except ImportError:  # Windows: a byte-range lock with the same semantics (released when the process dies)
    fcntl = None
    import msvcrt

from pylogmap import __version__
from pylogmap.errors import MapFileError
from pylogmap.texts import TextSet

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MODEL_COLUMNS",
    "RowKey",
    "as_key",
    "MapFile",
    "open_map",
    "ScoreWriter",
]

FORMAT = "pylogmap"
FORMAT_VERSION = 1
# Format bounds: v1.10 objects (SWMR-capable superblock, readable by HDF5 >= 1.10).
LIBVER = ("v110", "v110")

_STR = h5py.string_dtype(encoding="utf-8")

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
_KEY_COLUMNS = ("name", "revision", "layer")
# Columns a caller may set through `meta=` (the rest of `meta` goes into the JSON column).
_SETTABLE = tuple(c for c in MODEL_COLUMNS if c not in _KEY_COLUMNS + ("status", "error", "meta"))


# --------------------------------------------------------------------------------------------
# Row keys


class RowKey(NamedTuple):
    """Identity of a row: (model name as given, revision, logit-lens layer; -1 = own output)."""

    name: str
    revision: str = ""
    layer: int = -1

    @property
    def label(self) -> str:
        """Display label: `name`, `name@revision`, `name#L<layer>`, or `name@revision#L<layer>`."""
        out = self.name
        if self.revision:
            out += f"@{self.revision}"
        if self.layer >= 0:
            out += f"#L{self.layer}"
        return out


def as_key(key: Any) -> RowKey:
    """A `RowKey` from a RowKey, a (name[, revision[, layer]]) tuple, or a plain name."""
    if type(key) is str and key:  # the common case, fast (bulk imports of 100k rows)
        return RowKey(key)
    if isinstance(key, RowKey):
        k = key
    elif isinstance(key, str):
        k = RowKey(key)
    elif isinstance(key, (tuple, list)) and 1 <= len(key) <= 3:
        k = RowKey(*key)
    else:
        raise MapFileError(f"cannot use {key!r} as a row key; give a name or (name, revision, layer).")
    if not isinstance(k.name, str) or not k.name:
        raise MapFileError(f"row key {key!r} has no model name; every row needs a non-empty name.")
    revision = "" if k.revision is None else k.revision
    if not isinstance(revision, str):
        raise MapFileError(f"row key {key!r}: revision must be a string.")
    try:
        layer = int(k.layer)
    except (TypeError, ValueError):
        raise MapFileError(f"row key {key!r}: layer must be an integer (-1 = the model's output).") from None
    return RowKey(k.name, revision, layer)


# --------------------------------------------------------------------------------------------
# Small helpers


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, ensure_ascii=False, sort_keys=True)


def _str_array(values: Iterable[Any]) -> np.ndarray:
    return np.array(["" if v is None else str(v) for v in values], dtype=object)


def _read_str(ds) -> np.ndarray:
    return ds.asstr()[...].astype(object) if ds.shape[0] else np.array([], dtype=object)


def _row_index(rows: Any, m: int) -> np.ndarray | slice:
    """Normalise a `rows` argument (None, int, slice, bool mask, int sequence) to a slice or an
    int64 index array, with range checks."""
    if rows is None:
        return slice(0, m)
    if isinstance(rows, slice):
        return slice(*rows.indices(m))
    if isinstance(rows, (int, np.integer)):
        rows = [int(rows)]
    idx = np.asarray(rows)
    if idx.dtype == bool:
        if idx.shape != (m,):
            raise MapFileError(f"a boolean row mask needs {m} entries, got {idx.shape}.")
        return np.flatnonzero(idx)
    idx = idx.astype(np.int64).reshape(-1)
    if idx.size and (idx.min() < -m or idx.max() >= m):
        raise MapFileError(f"row index out of range for a map of {m} rows: {rows!r}.")
    return np.where(idx < 0, idx + m, idx)


def _read_rows(ds, idx: np.ndarray | slice) -> np.ndarray:
    """Rows of a [M, ...] dataset, in the order asked. Few contiguous runs are read directly;
    scattered rows are gathered block by block (about 64 MiB per read), so memory stays bounded
    by the result plus one block."""
    if isinstance(idx, slice):
        if idx.step == 1:
            return ds[idx]
        idx = np.arange(idx.start, idx.stop, idx.step)
    out = np.empty((len(idx),) + ds.shape[1:], dtype=ds.dtype)
    if not len(idx):
        return out
    uniq, inverse = np.unique(idx, return_inverse=True)
    block = np.empty((len(uniq),) + ds.shape[1:], dtype=ds.dtype)
    breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
    if len(breaks) < 64:
        pos = 0
        for run in np.split(uniq, breaks):
            block[pos:pos + len(run)] = ds[int(run[0]):int(run[-1]) + 1]
            pos += len(run)
    else:
        row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
        step = max(1, (64 << 20) // row_bytes)
        starts = (uniq // step) * step
        for b0 in np.unique(starts):
            sel = np.flatnonzero(starts == b0)
            lo, hi = int(uniq[sel[0]]), int(uniq[sel[-1]]) + 1
            block[sel] = ds[lo:hi][uniq[sel] - lo]
    out[...] = block[inverse]
    return out


def _rows_chunk(n_texts: int, itemsize: int = 4) -> int:
    """Rows per HDF5 chunk: about 256 KiB per chunk, at most 256 rows (a small map stays small:
    HDF5 allocates whole chunks; reading one row reads its chunk)."""
    return int(max(1, min(256, (1 << 18) // max(1, n_texts * itemsize))))


# --------------------------------------------------------------------------------------------
# Lock


def _lock_fd(fd: int) -> None:
    """Exclusive, non-blocking; raises OSError (EWOULDBLOCK/EACCES) when another process holds it."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:  # lock a byte far past the pid text, so the holder's pid stays readable
        os.lseek(fd, 1 << 20, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _unlock_fd(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 1 << 20, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class _WriterLock:
    """Exclusive writer lock: `flock` on `OUT.h5.lock`, which holds the writer's pid.

    flock is released by the kernel when the holder dies, so a lock file left by a killed writer
    (a stale pid) is simply taken over. The file is removed on release; a writer that opened a
    lock file just removed by another retries on the new one.
    """

    def __init__(self, map_path: Path):
        self.path = map_path.with_name(map_path.name + ".lock")
        self.fd: int | None = None

    def acquire(self) -> None:
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise MapFileError(
                    f"cannot write next to {self.path.with_suffix('')} ({err.strerror or err}); writing a map "
                    "needs a writable folder (copy the file somewhere writable)."
                ) from None
            try:
                _lock_fd(fd)
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, errno.EDEADLK):
                    os.close(fd)
                    raise
                holder = self._holder(fd)
                os.close(fd)
                raise MapFileError(
                    f"another process{holder} is writing {self.path.with_suffix('').name!r} "
                    f"(lock {self.path}); wait for it to finish, or stop it, then rerun: a rerun resumes."
                ) from None
            # The lock file may have been removed (and recreated) by a writer that just released.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
            self.fd = fd
            return
        raise MapFileError(f"could not take the writer lock {self.path}; remove it if no pylogmap process is running.")

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            if hasattr(os, "pread"):
                raw = os.pread(fd, 32, 0)
            else:
                os.lseek(fd, 0, os.SEEK_SET)
                raw = os.read(fd, 32)
            pid = int(raw.decode().strip() or "0")
        except (OSError, ValueError):
            return ""
        return f" (pid {pid})" if pid else ""

    def release(self) -> None:
        if self.fd is None:
            return
        if fcntl is not None:  # on Windows a locked file cannot be removed: unlock first
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        _unlock_fd(self.fd)
        os.close(self.fd)
        if fcntl is None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        self.fd = None


# --------------------------------------------------------------------------------------------
# Journal and commit


def _journal_dir(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def _tmp_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _journal_entries(path: Path) -> list[tuple[int, Path]]:
    jdir = _journal_dir(path)
    if not jdir.is_dir():
        return []
    out = []
    for p in jdir.iterdir():
        if p.suffix == ".npz" and p.stem.isdigit():
            out.append((int(p.stem), p))
    return sorted(out)


def _load_entry(p: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(p, allow_pickle=False) as entry:
            return dict(entry)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as err:
        raise MapFileError(
            f"journal entry {p} cannot be read ({err}); move it out of {p.parent.name} to open the map "
            "without that result (rescoring recomputes it)."
        ) from None


class _Committer:
    """Journals changes and commits them into the map file by copy + atomic replace.

    Owns the writer lock for its lifetime. Entries are dicts of numpy arrays (see `_apply`).
    """

    def __init__(self, path: Path):
        self.path = path
        self.lock = _WriterLock(path)
        self.lock.acquire()
        try:
            self.jdir = _journal_dir(path)
            self.jdir.mkdir(exist_ok=True)
            for p in self.jdir.iterdir():  # half-written entries of a killed writer
                if p.suffix != ".npz" or not p.stem.isdigit():
                    p.unlink()
            tmp = _tmp_path(path)
            if tmp.exists():  # a commit that was killed before its replace
                tmp.unlink()
            with h5py.File(path, "r") as f:
                self.committed = int(f.attrs.get("commit_seq", 0))
                self.text_hash = str(f.attrs["text_set_hash"])
            entries = _journal_entries(path)
            self.next_seq = max([self.committed] + [s for s, _ in entries]) + 1
            self.last_commit_duration = 0.0
            self.last_commit_end = time.monotonic()
        except BaseException:
            self.lock.release()
            raise

    def pending(self) -> list[tuple[int, Path]]:
        return [(s, p) for s, p in _journal_entries(self.path) if s > self.committed]

    def journal(self, entry: dict[str, np.ndarray]) -> int:
        seq = self.next_seq
        final = self.jdir / f"{seq:012d}.npz"
        tmp = self.jdir / f"{seq:012d}.npz.part"
        try:
            with open(tmp, "wb") as f:
                np.savez(f, text_hash=np.array(self.text_hash), **entry)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            _fsync_dir(self.jdir)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise MapFileError(
                f"could not save a result next to {self.path} ({err.strerror or err}); free disk space or "
                "fix the folder's permissions, then rerun: results committed so far are kept."
            ) from err
        self.next_seq += 1
        return seq

    def commit(self) -> bool:
        """Apply every pending journal entry to a copy of the file and replace the file with it.
        Returns whether anything was committed."""
        t0 = time.monotonic()
        with h5py.File(self.path, "r") as f:  # the truth, even after an interrupted commit
            self.committed = int(f.attrs.get("commit_seq", 0))
        entries = _journal_entries(self.path)
        stale = [p for s, p in entries if s <= self.committed]
        todo = [(s, p) for s, p in entries if s > self.committed]
        for p in stale:
            p.unlink(missing_ok=True)
        if not todo:
            return False
        tmp = _tmp_path(self.path)
        try:
            shutil.copyfile(self.path, tmp)
            shutil.copymode(self.path, tmp)
            with h5py.File(tmp, "r+", libver=LIBVER) as f:
                state = _FileState(f)
                for seq, p in todo:
                    _apply(f, state, _load_entry(p), p.name)
                    f.attrs["commit_seq"] = np.int64(seq)
                f.flush()
            _fsync_file(tmp)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise MapFileError(
                f"could not commit results into {self.path} ({err}); free disk space (a commit needs room "
                "for a second copy of the file) and rerun: the results wait in "
                f"{self.jdir.name} and nothing is lost."
            ) from err
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.committed = todo[-1][0]
        for _, p in todo:
            p.unlink(missing_ok=True)
        self.last_commit_end = time.monotonic()
        self.last_commit_duration = self.last_commit_end - t0
        return True

    def close(self) -> None:
        try:
            if self.jdir.is_dir() and not any(self.jdir.iterdir()):
                self.jdir.rmdir()
        except OSError:
            pass
        self.lock.release()


class _FileState:
    """What a commit needs to know about the open copy: rows by key, row count."""

    def __init__(self, f: h5py.File):
        names = _read_str(f["models/name"])
        revs = _read_str(f["models/revision"])
        layers = f["models/layer"][...]
        self.rows = {RowKey(n, r, int(lay)): i for i, (n, r, lay) in enumerate(zip(names, revs, layers))}
        self.m = len(names)
        self.n = f["loglik"].shape[1]
        self.text_hash = str(f.attrs["text_set_hash"])
        self.path = f.filename.removesuffix(".tmp")


def _resize_rows(f: h5py.File, m: int) -> None:
    """Grow every per-row dataset (models, matrices, annotations) to m rows, filling defaults."""
    old = f["loglik"].shape[0]
    if m == old:
        return
    for name in ("loglik", "ntokens", "truncated"):  # new cells read as the fill value (NaN, -1, False)
        f[name].resize((m, f[name].shape[1]))
    for col in MODEL_COLUMNS:  # the caller writes every new row's values
        f["models"][col].resize((m,))
    if "annotations" in f:
        for col, ds in f["annotations"].items():
            ds.resize((m,))
            ds[old:m] = _str_array([""] * (m - old)) if ds.dtype.kind == "O" else np.nan


def _apply(f: h5py.File, state: _FileState, entry: dict[str, np.ndarray], where: str = "") -> None:
    op = str(entry["op"])
    made_for = str(entry["text_hash"]) if "text_hash" in entry else None
    if made_for is not None and made_for != state.text_hash:
        raise MapFileError(
            f"journal entry {where} was written for a map of text set {made_for}, but the file has "
            f"{state.text_hash} (was the file replaced by hand?). Move the folder "
            f"{_journal_dir(Path(state.path)).name} away to open the file without those results."
        )
    if op == "rows":
        _apply_rows(f, state, entry)
    elif op == "derived":
        _apply_derived(f, entry)
    elif op == "annotations":
        _apply_annotations(f, state, entry)
    else:
        raise MapFileError(f"unknown journal entry {op!r} next to {f.filename}; it was written by a newer pylogmap.")


def _apply_rows(f: h5py.File, state: _FileState, entry: dict[str, np.ndarray]) -> None:
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
    for name in ("loglik", "ntokens", "truncated"):
        data = entry[name]
        if new.any():
            f[name][k0:m] = data[new]
        for j in old_rows:
            f[name][int(idx[j])] = data[j]
    for col, (kind, default) in MODEL_COLUMNS.items():
        values = columns[col]
        if kind == "str":
            arr = _str_array(values)
        elif kind == "float64":
            arr = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
        else:
            arr = np.array([default if v is None else int(v) for v in values], dtype=kind)
        ds = f["models"][col]
        if new.any():
            ds[k0:m] = arr[new]
        for j in old_rows:
            ds[int(idx[j])] = arr[j]


def _set_attrs(obj, attrs: Mapping[str, Any]) -> None:
    for k, v in attrs.items():
        if v is None:
            v = "null"
        elif isinstance(v, (dict,)):
            v = _dumps(v)
        elif isinstance(v, (list, tuple)):
            arr = np.asarray(v)
            v = arr if arr.dtype.kind in "biuf" else _dumps(list(v))
        obj.attrs[k] = v


def _apply_derived(f: h5py.File, entry: dict[str, np.ndarray]) -> None:
    spec = json.loads(str(entry["spec"]))
    group = f.require_group("map")
    if spec.get("replace_all"):
        for name in list(group):
            del group[name]
        for name in list(group.attrs):
            del group.attrs[name]
    _set_attrs(group, spec.get("map_attrs") or {})
    for i, (name, attrs) in enumerate(spec["items"]):
        if name in group:
            del group[name]
        data = entry[f"a{i}"]
        if data.dtype.kind == "U":
            data = data.astype(object)
            ds = group.create_dataset(name, data=data, dtype=_STR)
        else:
            ds = group.create_dataset(name, data=data)
        _set_attrs(ds, attrs or {})


def _apply_annotations(f: h5py.File, state: _FileState, entry: dict[str, np.ndarray]) -> None:
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
            group.create_dataset(name, data=data.astype(object), dtype=_STR, maxshape=(None,), chunks=chunks)
        else:
            group.create_dataset(name, data=data.astype(np.float64), maxshape=(None,), chunks=chunks)


# --------------------------------------------------------------------------------------------
# Building journal entries


def _model_columns(keys: Sequence[RowKey], metas: Sequence[Mapping[str, Any] | None] | Mapping[str, Sequence[Any]],
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
    for c in _SETTABLE:
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
            out.append(_dumps(extra))
        cols["meta"] = out
    return cols


def _rows_entry(keys: Sequence[RowKey], loglik: np.ndarray, ntokens: np.ndarray, truncated: np.ndarray,
                columns: dict[str, list]) -> dict[str, np.ndarray]:
    return {
        "op": np.array("rows"),
        "names": np.array([k.name for k in keys], dtype=str),
        "revisions": np.array([k.revision for k in keys], dtype=str),
        "layers": np.array([k.layer for k in keys], dtype=np.int32),
        "loglik": np.ascontiguousarray(loglik, dtype=np.float32),
        "ntokens": np.ascontiguousarray(ntokens, dtype=np.int32),
        "truncated": np.ascontiguousarray(truncated, dtype=bool),
        "columns": np.array(json.dumps(columns, default=_json_default)),
    }


def _check_matrix(name: str, data: Any, shape: tuple[int, ...], dtype) -> np.ndarray:
    arr = np.asarray(data)
    if arr.shape != shape:
        raise MapFileError(f"{name} has shape {arr.shape}, expected {shape} (rows x texts of this map).")
    return arr.astype(dtype, copy=False)


# --------------------------------------------------------------------------------------------
# Creating


def _create_file(path: Path, texts: TextSet, rows: dict[str, np.ndarray] | None = None,
                 annotations: dict[str, np.ndarray] | None = None) -> None:
    """Write a map for `texts` to `path` (atomically: temporary file + rename), empty or with the
    rows of one `_rows_entry` and an `annotations` journal entry applied before the rename."""
    n = len(texts)
    if n == 0:
        raise MapFileError("cannot create a map with an empty text set; give at least one text.")
    tmp = _tmp_path(path)
    try:
        with h5py.File(tmp, "w", libver=LIBVER, fs_strategy="fsm", fs_persist=True) as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
            f.attrs["created_by"] = f"pylogmap {__version__}"
            f.attrs["text_set_hash"] = texts.hash
            f.attrs["commit_seq"] = np.int64(0)
            g = f.create_group("texts")
            g.attrs["hash"] = texts.hash
            g.attrs["name"] = texts.name or ""
            g.attrs["recipe"] = _dumps(texts.recipe)
            g.create_dataset("text", data=_str_array(texts.texts), dtype=_STR)
            g.create_dataset("n_bytes", data=np.asarray(texts.n_bytes, dtype=np.int64))
            g.create_dataset("source", data=_str_array(texts.sources), dtype=_STR)
            g.create_dataset("meta", data=_str_array(_dumps(m) for m in texts.meta), dtype=_STR)
            mg = f.create_group("models")
            for col, (kind, _) in MODEL_COLUMNS.items():
                mg.create_dataset(col, shape=(0,), maxshape=(None,), chunks=(1024,),
                                  dtype=_STR if kind == "str" else kind)
            rc = _rows_chunk(n)
            # Fletcher-32 checksums per chunk: a flipped bit in the data is an error on reading,
            # never a silently wrong number (HDF5 >= 1.10 metadata is checksummed anyway).
            f.create_dataset("loglik", shape=(0, n), maxshape=(None, n), chunks=(rc, n), dtype=np.float32,
                             fillvalue=np.nan, fletcher32=True)
            f.create_dataset("ntokens", shape=(0, n), maxshape=(None, n), chunks=(rc, n), dtype=np.int32,
                             fillvalue=-1, fletcher32=True)
            f.create_dataset("truncated", shape=(0, n), maxshape=(None, n), chunks=(_rows_chunk(n, 1), n),
                             dtype=bool, fletcher32=True)
            f.create_group("annotations")
            f.create_group("map")
            if rows is not None:
                state = _FileState(f)
                _apply_rows(f, state, rows)
                if annotations is not None:
                    _apply_annotations(f, state, annotations)
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_locked(path: Path, texts: TextSet, *, overwrite: bool, rows=None, annotations=None) -> None:
    if not isinstance(texts, TextSet):
        raise MapFileError(f"a map needs a TextSet, got {type(texts).__name__}; use load_texts().")
    if path.exists() and not overwrite:
        raise MapFileError(
            f"{str(path)!r} already exists; pass overwrite=True (on the command line --force) to "
            "replace it, or choose another output file."
        )
    if not path.parent.is_dir():
        raise MapFileError(f"folder {str(path.parent)!r} does not exist; create it first.")
    lock = _WriterLock(path)
    lock.acquire()
    try:
        # Results journalled for a previous file under this name belong to it: drop them first
        # (a kill between the two steps must not apply them to the new file).
        for _, p in _journal_entries(path):
            p.unlink()
        try:
            _journal_dir(path).rmdir()
        except OSError:
            pass
        if tokens_dir(path).is_dir():
            shutil.rmtree(tokens_dir(path))
        _create_file(path, texts, rows, annotations)
    finally:
        lock.release()


def _bulk_rows_entry(keys, loglik, ntokens, meta, truncated, status, errors, n: int) -> dict[str, np.ndarray]:
    keys = [as_key(k) for k in keys]
    k = len(keys)
    if len(set(keys)) != k:
        seen: set = set()
        dup = sorted({kk.label for kk in keys if kk in seen or seen.add(kk)})[:5]
        raise MapFileError(f"the same row key is given twice: {', '.join(dup)}.")
    L = _check_matrix("loglik", loglik, (k, n), np.float32)
    T = np.full((k, n), -1, np.int32) if ntokens is None else _check_matrix("ntokens", ntokens, (k, n), np.int32)
    tr = np.zeros((k, n), bool) if truncated is None else _check_matrix("truncated", truncated, (k, n), bool)
    metas = meta if isinstance(meta, Mapping) else [{} for _ in range(k)] if meta is None else list(meta)
    st = list(status) if status is not None else ["ok"] * k
    er = list(errors) if errors is not None else [""] * k
    cols = _model_columns(keys, metas, st, er, tr.sum(axis=1).tolist())
    return _rows_entry(keys, L, T, tr, cols)


def _annotations_entry(columns: Mapping[str, Any], m: int) -> dict[str, np.ndarray]:
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


# --------------------------------------------------------------------------------------------
# Reading (and the atomic writes of derived results)


class MapFile:
    """A map file opened for reading; writing methods commit atomically (see module doc).

    Use `open_map(path)` or `MapFile.create(path, texts)`. Reading methods see the commit that was
    current when the file was opened (or last `reload`ed).
    """

    def __init__(self, path: str | os.PathLike, *, recover: bool = True):
        self.path = Path(path)
        if recover:
            _recover(self.path)
        self._f: h5py.File | None = None
        self._open()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, texts: TextSet, *, overwrite: bool = False) -> "MapFile":
        """Create an empty map for `texts`. An existing file is kept unless `overwrite=True`."""
        _create_locked(Path(path), texts, overwrite=overwrite)
        return cls(path, recover=False)

    @classmethod
    def create_with_rows(cls, path: str | os.PathLike, texts: TextSet, keys: Sequence[Any], loglik: Any,
                         ntokens: Any = None, meta: Any = None, *, truncated: Any = None,
                         annotations: Mapping[str, Any] | None = None, overwrite: bool = False) -> "MapFile":
        """Create a map already holding rows (and annotation columns) in one write, without the
        journal: the fast path for importers and synthetic maps (same arguments as `append_rows`)."""
        entry = _bulk_rows_entry(keys, loglik, ntokens, meta, truncated, None, None, len(texts))
        ann = None if annotations is None else _annotations_entry(annotations, len(entry["names"]))
        _create_locked(Path(path), texts, overwrite=overwrite, rows=entry, annotations=ann)
        return cls(path, recover=False)

    def _open(self) -> None:
        path = self.path
        if not path.exists():
            raise MapFileError(f"map file {str(path)!r} does not exist; create it with 'pylogmap score' or 'pylogmap import'.")
        if path.is_dir():
            raise MapFileError(f"{str(path)!r} is a folder, not a map file.")
        st = os.stat(path)
        try:
            is_hdf5 = h5py.is_hdf5(path)
        except OSError:
            is_hdf5 = False
        if not is_hdf5:
            raise MapFileError(f"{str(path)!r} is not an HDF5 file, so not a pylogmap map; check the file name.")
        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise MapFileError(
                f"{str(path)!r} is a corrupt or truncated HDF5 file ({err}); restore it from a copy or rescore."
            ) from None
        try:
            fmt = f.attrs.get("format")
            if isinstance(fmt, bytes):
                fmt = fmt.decode()
            if fmt != FORMAT:
                raise MapFileError(
                    f"{str(path)!r} is an HDF5 file but not a pylogmap map (no format='pylogmap' attribute); "
                    "to use a matrix from elsewhere, convert it with 'pylogmap import'."
                )
            version = int(f.attrs.get("format_version", -1))
            if version > FORMAT_VERSION:
                raise MapFileError(
                    f"{str(path)!r} has map format version {version}, newer than this pylogmap "
                    f"(reads up to {FORMAT_VERSION}); upgrade pylogmap."
                )
            if version < 1:
                raise MapFileError(f"{str(path)!r} has an invalid format_version {version}; the file is damaged.")
            self._validate(f)
        except MapFileError:
            f.close()
            raise
        except (OSError, KeyError, ValueError) as err:
            f.close()
            raise MapFileError(f"{str(path)!r} is a damaged map file ({err}); restore it from a copy or rescore.") from None
        if self._f is not None:
            self._f.close()
        self._f = f
        self._stat = (st.st_ino, st.st_mtime_ns, st.st_size)
        self._cache: dict[str, Any] = {}

    def _validate(self, f: h5py.File) -> None:
        need = ["texts/text", "texts/n_bytes", "texts/source", "texts/meta", "loglik", "ntokens", "truncated"]
        need += [f"models/{c}" for c in MODEL_COLUMNS]
        missing = [n for n in need if n not in f]
        if missing:
            raise MapFileError(f"{str(self.path)!r} lacks {', '.join(missing)}; the map file is damaged or incomplete.")
        n = f["texts/text"].shape[0]
        m = f["models/name"].shape[0]
        for name in ("loglik", "ntokens", "truncated"):
            if f[name].shape != (m, n):
                raise MapFileError(f"{str(self.path)!r}: /{name} has shape {f[name].shape}, expected {(m, n)}; the file is damaged.")
        for c in MODEL_COLUMNS:
            if f["models"][c].shape != (m,):
                raise MapFileError(f"{str(self.path)!r}: /models/{c} has {f['models'][c].shape[0]} rows, expected {m}.")

    @property
    def file(self) -> h5py.File:
        """The open h5py file (read-only), for direct access."""
        if self._f is None:
            raise MapFileError(f"map file {str(self.path)!r} is closed.")
        return self._f

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> "MapFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._f is None else f"{self.n_models} models x {self.n_texts} texts"
        return f"MapFile({str(self.path)!r}, {state})"

    def changed(self) -> bool:
        """Whether a newer commit replaced the file since it was opened (or last reloaded)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (st.st_ino, st.st_mtime_ns, st.st_size) != self._stat

    def reload(self) -> None:
        """Open the current commit of the file (after `changed()`)."""
        self._open()

    # -- reading ---------------------------------------------------------------------------
    @property
    def n_models(self) -> int:
        return int(self.file["models/name"].shape[0])

    @property
    def n_texts(self) -> int:
        return int(self.file["texts/text"].shape[0])

    @property
    def text_hash(self) -> str:
        return str(self.file.attrs["text_set_hash"])

    @property
    def format_version(self) -> int:
        return int(self.file.attrs["format_version"])

    @property
    def commit_seq(self) -> int:
        """Sequence number of the last committed change (grows with every commit)."""
        return int(self.file.attrs.get("commit_seq", 0))

    def _column(self, col: str) -> np.ndarray:
        if col not in self._cache:
            ds = self.file["models"][col]
            self._cache[col] = _read_str(ds) if MODEL_COLUMNS.get(col, ("str",))[0] == "str" else ds[...]
        return self._cache[col]

    def keys(self) -> list[RowKey]:
        """Row keys (name, revision, layer), in row order."""
        return [RowKey(n, r, int(lay)) for n, r, lay in
                zip(self._column("name"), self._column("revision"), self._column("layer"))]

    def model_names(self) -> list[str]:
        """The model names as given when scoring (may repeat across revisions/layers)."""
        return list(self._column("name"))

    def labels(self) -> list[str]:
        """A unique display label per row: `name`, `name@revision`, `name#L<layer>` (both if both).
        In the rare case two keys give the same label, later ones get a ` (2)`, ` (3)` suffix."""
        if "labels" not in self._cache:
            seen: dict[str, int] = {}
            out = []
            for key in self.keys():
                label = key.label
                if label in seen:
                    seen[label] += 1
                    label = f"{label} ({seen[label]})"
                else:
                    seen[label] = 1
                out.append(label)
            self._cache["labels"] = out
        return list(self._cache["labels"])

    def models_table(self) -> dict[str, np.ndarray]:
        """Every `/models` column as an array (strings as object arrays), plus `label`."""
        table = {c: np.array(self._column(c), copy=True) for c in MODEL_COLUMNS}
        table["label"] = np.array(self.labels(), dtype=object)
        return table

    def status(self) -> np.ndarray:
        """Per-row status: "ok" or "failed"."""
        return np.array(self._column("status"), copy=True)

    def _matrix(self, name: str, rows: Any) -> np.ndarray:
        try:
            if rows is None:
                return self.file[name][...]
            return _read_rows(self.file[name], _row_index(rows, self.n_models))
        except OSError as err:
            raise MapFileError(
                f"{str(self.path)!r}: reading /{name} failed ({err}); the file is damaged (a checksum does not "
                "match). Restore it from a copy or rescore."
            ) from None

    def loglik(self, rows: Any = None) -> np.ndarray:
        """float32 [n, N] log-likelihoods in nats (NaN = not scored), rows in the order asked."""
        return self._matrix("loglik", rows)

    def ntokens(self, rows: Any = None) -> np.ndarray:
        """int32 [n, N] scored tokens per text (-1 = not scored)."""
        return self._matrix("ntokens", rows)

    def truncated(self, rows: Any = None) -> np.ndarray:
        """bool [n, N]: the text was cut at the model's context."""
        return self._matrix("truncated", rows)

    def text_bytes(self) -> np.ndarray:
        """int64 [N] UTF-8 length of each text."""
        return self.file["texts/n_bytes"][...]

    def texts(self) -> TextSet:
        """The map's text set (hash as stored)."""
        g = self.file["texts"]
        recipe = json.loads(str(g.attrs.get("recipe", "null")))
        return TextSet(
            texts=list(_read_str(g["text"])),
            n_bytes=g["n_bytes"][...],
            sources=list(_read_str(g["source"])),
            meta=[json.loads(s) for s in _read_str(g["meta"])],
            hash=str(g.attrs["hash"]),
            name=str(g.attrs.get("name", "")),
            recipe=recipe,
        )

    def annotations(self) -> dict[str, np.ndarray]:
        """Per-row user columns: float64 arrays, or object arrays of str for categorical ones."""
        g = self.file.get("annotations")
        if g is None:
            return {}
        return {name: (_read_str(ds) if ds.dtype.kind == "O" else ds[...]) for name, ds in g.items()}

    def read_derived(self, name: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        """(array, attrs) of the derived dataset `/map/<name>`, or None when it is not there."""
        g = self.file.get("map")
        if g is None or name not in g or not isinstance(g[name], h5py.Dataset):
            return None
        ds = g[name]
        data = _read_str(ds) if ds.dtype.kind == "O" else ds[...]
        return data, _attrs_dict(ds.attrs)

    def derived_names(self) -> list[str]:
        """Paths of every dataset under `/map` (e.g. `tsne`, `neighbors/index`)."""
        g = self.file.get("map")
        out: list[str] = []
        if g is not None:
            g.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
        return sorted(out)

    def map_attrs(self) -> dict[str, Any]:
        """Attributes of `/map` (`tau`, `rows_hash`, `n_used`, ...)."""
        g = self.file.get("map")
        return {} if g is None else _attrs_dict(g.attrs)

    def find_rows(self, query: str) -> list[int]:
        """Rows matching a label (exact) or a model name (all its revisions/layers).

        Raises MapFileError with the closest labels when nothing matches.
        """
        labels = self.labels()
        if query in labels:
            return [labels.index(query)]
        names = self.model_names()
        rows = [i for i, n in enumerate(names) if n == query]
        if rows:
            return rows
        folded = query.casefold()
        rows = [i for i, lab in enumerate(labels) if lab.casefold() == folded]
        if rows:
            return rows
        candidates = sorted(set(labels) | set(names))
        close = difflib.get_close_matches(query, candidates, n=5, cutoff=0.5)
        if len(close) < 5:
            close += [c for c in candidates if folded in c.casefold() and c not in close][: 5 - len(close)]
        hint = f" Did you mean: {', '.join(close)}?" if close else " Run 'pylogmap info' to list the models."
        raise MapFileError(f"no model {query!r} in {self.path.name} ({self.n_models} rows).{hint}")

    def find_row(self, query: str) -> int:
        """The single row for `query`; an error listing the choices when a name has several rows."""
        rows = self.find_rows(query)
        if len(rows) > 1:
            labels = self.labels()
            choices = ", ".join(labels[i] for i in rows[:8]) + (" ..." if len(rows) > 8 else "")
            raise MapFileError(f"{query!r} names {len(rows)} rows; pick one label: {choices}.")
        return rows[0]

    def token_logprobs(self, row: int) -> list[np.ndarray] | None:
        """Per-token log-probabilities of one row (one float32 array per text, first token not
        included), or None when they were not kept. See docs/format.md, "Per-token sidecar"."""
        key = self.keys()[row]
        p = tokens_path(self.path, key)
        if not p.exists():
            return None
        try:
            with h5py.File(p, "r") as f:
                if str(f.attrs.get("text_set_hash", "")) != self.text_hash:
                    raise MapFileError(f"{p} belongs to another text set; delete it.")
                if RowKey(str(f.attrs["name"]), str(f.attrs["revision"]), int(f.attrs["layer"])) != key:
                    raise MapFileError(f"{p} belongs to another row than {key.label}; delete it.")
                lp = f["logprobs"][...]
                off = f["offsets"][...]
        except (OSError, KeyError) as err:
            raise MapFileError(f"per-token file {p} of {key.label} cannot be read ({err}); delete it.") from None
        if len(off) != self.n_texts + 1 or off[-1] != len(lp):
            raise MapFileError(f"per-token file {p} of {key.label} is inconsistent with the map; delete it.")
        return [lp[off[k]:off[k + 1]] for k in range(len(off) - 1)]

    def pending_journal(self) -> int:
        """Number of finished results journalled but not committed yet (a writer is running, or
        one was killed: the next writer or reader commits them)."""
        return len(_journal_entries(self.path))

    # -- writing (atomic commits) ----------------------------------------------------------
    def _commit_entries(self, entries: list[dict[str, np.ndarray]]) -> None:
        committer = _Committer(self.path)
        try:
            for e in entries:  # applied after any leftovers of a killed writer, in order
                committer.journal(e)
            committer.commit()
        finally:
            committer.close()
        self._open()

    def append_rows(self, keys: Sequence[Any], loglik: Any, ntokens: Any = None, meta: Any = None,
                    *, truncated: Any = None, status: Sequence[str] | None = None,
                    errors: Sequence[str] | None = None) -> None:
        """Add (or replace, for keys already present) many rows in one atomic commit.

        `loglik` is [k, N]; `ntokens` [k, N] (default -1, unknown); `meta` a list of per-row dicts
        or a dict of per-row columns (`/models` columns such as `n_params`, `architecture`, `step`
        go to their column, anything else to the row's JSON `meta`).
        """
        entry = _bulk_rows_entry(keys, loglik, ntokens, meta, truncated, status, errors, self.n_texts)
        self._commit_entries([entry])

    def write_derived(self, name: str, array: Any, attrs: Mapping[str, Any] | None = None) -> None:
        """Write (or replace) `/map/<name>` with its attributes, in one atomic commit."""
        self.update_map({name: (array, attrs or {})})

    def update_map(self, arrays: Mapping[str, Any], attrs: Mapping[str, Any] | None = None, *,
                   replace_all: bool = False) -> None:
        """Write several `/map` datasets (`name -> array` or `name -> (array, attrs)`) and `/map`'s
        own attributes in one atomic commit. `replace_all` first empties `/map`."""
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
            items.append([name, _jsonable(a or {})])
        entry["spec"] = np.array(_dumps({"items": items, "map_attrs": _jsonable(attrs or {}),
                                         "replace_all": bool(replace_all)}))
        self._commit_entries([entry])

    def set_annotations(self, columns: Mapping[str, Any]) -> None:
        """Attach per-row columns (length = number of rows): numbers become float64 (NaN =
        missing), anything else str. Columns of the same name are replaced; others kept."""
        self._commit_entries([_annotations_entry(columns, self.n_models)])


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(_dumps(dict(d)))


def _attrs_dict(attrs) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        if isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _recover(path: Path) -> None:
    """Commit a journal left by a killed writer, when no writer is alive and we may write."""
    if not _journal_entries(path) or not path.exists():
        return
    try:
        committer = _Committer(path)
    except (MapFileError, OSError):
        return  # a live writer owns the journal, or the folder is read-only
    try:
        committer.commit()
    except (MapFileError, OSError):
        pass  # the reader still sees the last commit; pending_journal() reports what waits
    finally:
        committer.close()


def open_map(path: str | os.PathLike, mode: str = "r") -> MapFile:
    """Open a map file for reading. Raises MapFileError for a missing file, a file that is not
    HDF5, an HDF5 file that is not a pylogmap map, a damaged or truncated file, or a newer format.

    Finished results journalled by a writer that was killed are committed first (when no writer
    is alive). `mode` is "r" (the writing methods of `MapFile` take the writer lock themselves).
    """
    if mode not in ("r", "a"):
        raise MapFileError(f"open_map mode must be 'r' or 'a', got {mode!r}.")
    return MapFile(path)


# --------------------------------------------------------------------------------------------
# Per-token sidecar


def tokens_dir(map_path: str | os.PathLike) -> Path:
    """The per-token sidecar folder of a map: `map.h5` -> `map.tokens/`."""
    p = Path(map_path)
    stem = p.name[:-3] if p.name.endswith(".h5") else p.name
    return p.with_name(stem + ".tokens")


def tokens_path(map_path: str | os.PathLike, key: Any) -> Path:
    """Sidecar file of one row: `<map>.tokens/<sha1 of the key>.h5`."""
    k = as_key(key)
    digest = hashlib.sha1(json.dumps([k.name, k.revision, k.layer]).encode()).hexdigest()[:20]
    return tokens_dir(map_path) / f"{digest}.h5"


def _write_tokens(map_path: Path, key: RowKey, text_hash: str, token_logprobs: Sequence[Any], n: int) -> None:
    if len(token_logprobs) != n:
        raise MapFileError(f"token_logprobs has {len(token_logprobs)} arrays for {n} texts.")
    arrays = [np.asarray(a, dtype=np.float32).reshape(-1) for a in token_logprobs]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    d = tokens_dir(map_path)
    d.mkdir(exist_ok=True)
    final = tokens_path(map_path, key)
    tmp = final.with_name(final.name + ".part")
    with h5py.File(tmp, "w", libver=LIBVER) as f:
        f.attrs["format"] = "pylogmap-tokens"
        f.attrs["format_version"] = np.int64(1)
        f.attrs["name"] = key.name
        f.attrs["revision"] = key.revision
        f.attrs["layer"] = np.int32(key.layer)
        f.attrs["text_set_hash"] = text_hash
        f.create_dataset("logprobs", data=np.concatenate(arrays) if arrays else np.zeros(0, np.float32))
        f.create_dataset("offsets", data=offsets)
    _fsync_file(tmp)
    os.replace(tmp, final)
    _fsync_dir(d)


# --------------------------------------------------------------------------------------------
# The scorer's writer


class ScoreWriter:
    """The single writer a scoring run uses: resume, record results, crash-safe commits.

    ``with ScoreWriter(out, texts) as w:`` creates `out` for `texts` (or opens it, refusing a file
    of another text set; `texts=None` uses the texts of an existing file), takes the writer lock and commits results a killed run left in the
    journal. Then, for each model: `rows_to_do(keys)` says what is left, `record(...)` or
    `record_failure(...)` journals a finished model durably and commits when `commit_interval`
    allows; leaving the block commits everything and releases the lock.

    `commit_interval`: seconds between commits (each commit copies the file). None (default):
    at least 20x the last commit's duration, so copying stays under ~5% of the run; small maps
    are committed after every model. 0: after every model.
    """

    def __init__(self, path: str | os.PathLike, texts: TextSet | None = None, *,
                 commit_interval: float | None = None, overwrite: bool = False):
        self.path = Path(path)
        self.commit_interval = commit_interval
        if texts is None and (overwrite or not self.path.exists()):
            raise MapFileError(f"{str(self.path)!r} does not exist yet: give the text set to create it with.")
        if overwrite or not self.path.exists():
            MapFile.create(self.path, texts, overwrite=overwrite).close()
        with MapFile(self.path, recover=False) as mf:
            if texts is None:
                texts = mf.texts()
            if mf.text_hash != texts.hash:
                raise MapFileError(
                    f"{str(self.path)!r} was made with another text set: the file has {mf.text_hash}, "
                    f"the texts given have {texts.hash}. Use the file's own texts, or write to a new "
                    "output file (or overwrite with --force)."
                )
            self.n_texts = mf.n_texts
        self.texts = texts
        self.text_hash = texts.hash
        self._committer = _Committer(self.path)
        try:
            self._committer.commit()  # results a killed run journalled
            with MapFile(self.path, recover=False) as mf:
                self._status = dict(zip(mf.keys(), mf.status()))
        except BaseException:
            self._committer.close()
            raise
        self._closed = False

    # -- resume -----------------------------------------------------------------------------
    def status(self, key: Any) -> str | None:
        """"ok", "failed", or None when the row has no result yet."""
        return self._status.get(as_key(key))

    def rows_to_do(self, keys: Iterable[Any], *, retry_failed: bool = False, force: bool = False) -> list[RowKey]:
        """The keys, in order and without repeats, that still need scoring: no row yet, or (with
        `retry_failed`) a failed row; `force` returns them all."""
        out: list[RowKey] = []
        seen: set[RowKey] = set()
        for key in keys:
            k = as_key(key)
            if k in seen:
                continue
            seen.add(k)
            st = self._status.get(k)
            if force or st is None or (st == "failed" and retry_failed):
                out.append(k)
        return out

    # -- recording --------------------------------------------------------------------------
    def record(self, key: Any, loglik: Any, ntokens: Any, truncated: Any = None, meta: Mapping[str, Any] | None = None,
               *, token_logprobs: Sequence[Any] | None = None) -> None:
        """Durably record a finished row: log-likelihoods [N] (nats), scored tokens [N], truncated
        flags [N], and metadata (`/models` columns such as dtype, architecture, n_params,
        tokenizer, max_length, step, wall_time_s, tokens_per_s; the rest goes to JSON `meta`).
        `token_logprobs`: optionally one array per text for the per-token sidecar."""
        self._check_open()
        k = as_key(key)
        n = self.n_texts
        L = _check_matrix("loglik", loglik, (n,), np.float64)
        if not np.all(np.isfinite(L)):
            bad = int((~np.isfinite(L)).sum())
            raise MapFileError(f"{k.label}: {bad} log-likelihoods are NaN or infinite; record_failure() it instead.")
        T = _check_matrix("ntokens", ntokens, (n,), np.int64)
        tr = np.zeros(n, bool) if truncated is None else _check_matrix("truncated", truncated, (n,), bool)
        if token_logprobs is not None:
            lengths = [int(np.size(a)) for a in token_logprobs]
            if len(lengths) != n or any(a != t for a, t in zip(lengths, T)):
                bad = next((j for j, (a, t) in enumerate(zip(lengths, T)) if a != t), None)
                raise MapFileError(
                    f"{k.label}: token_logprobs must give one array per text with ntokens entries "
                    + (f"(text {bad}: {lengths[bad]} values, ntokens {T[bad]})." if bad is not None
                       else f"({len(lengths)} arrays for {n} texts).")
                )
            _write_tokens(self.path, k, self.text_hash, token_logprobs, n)
        else:  # a rescoring without per-token values must not leave the old ones looking current
            tokens_path(self.path, k).unlink(missing_ok=True)
        cols = _model_columns([k], [meta], ["ok"], [""], [int(tr.sum())])
        self._committer.journal(_rows_entry([k], L[None].astype(np.float32), T[None], tr[None], cols))
        self._status[k] = "ok"
        self._maybe_commit()

    def record_failure(self, key: Any, error: str, meta: Mapping[str, Any] | None = None) -> bool:
        """Record that a row failed (its error message kept); its values stay NaN / -1. A later
        run retries it when asked (`rows_to_do(..., retry_failed=True)`).

        A row that already holds a good result (a forced rescoring that failed) keeps it: nothing
        is written and False is returned; otherwise True."""
        self._check_open()
        k = as_key(key)
        n = self.n_texts
        if self._status.get(k) == "ok":
            return False
        cols = _model_columns([k], [meta], ["failed"], [str(error)], [0])
        self._committer.journal(_rows_entry([k], np.full((1, n), np.nan, np.float32), np.full((1, n), -1, np.int32),
                                            np.zeros((1, n), bool), cols))
        self._status[k] = "failed"
        self._maybe_commit()
        return True

    def _maybe_commit(self) -> None:
        c = self._committer
        interval = self.commit_interval
        if interval is None:
            interval = 20.0 * c.last_commit_duration
        if time.monotonic() - c.last_commit_end >= interval:
            c.commit()

    def commit(self) -> bool:
        """Commit every journalled result now."""
        self._check_open()
        return self._committer.commit()

    def _check_open(self) -> None:
        if self._closed:
            raise MapFileError(f"the writer of {str(self.path)!r} is closed.")

    def close(self) -> None:
        """Commit what is journalled and release the lock."""
        if self._closed:
            return
        try:
            self._committer.commit()
        finally:
            self._committer.close()
            self._closed = True

    def __enter__(self) -> "ScoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
