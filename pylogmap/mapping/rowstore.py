"""A float32 matrix kept in a temporary file and read a block of rows at a time (bounded memory).

A map of 100,000 models x 10,000 texts has a 4 GB Q. When Q does not fit the memory budget of
``pylogmap map`` it is written here once and every later step reads the rows it needs with
plain file reads (``readinto``): the pages stay in the operating system's cache, which gives
them back under memory pressure, and are not part of the process's resident memory, so the
peak stated by the benchmarks is the program's own. Indexing supports what the map side uses:
``X[a:b]``, ``X[int]`` and ``X[int_array]`` (rows in the order asked).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from pylogmap.errors import PylogmapError


class DiskRows:
    """``[n_rows, n_cols]`` float32 rows in a temporary file (deleted by ``close``)."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, n_rows: int, n_cols: int, directory: str | os.PathLike | None = None):
        self.shape = (int(n_rows), int(n_cols))
        self._row_bytes = self.shape[1] * 4
        try:
            fd, name = tempfile.mkstemp(prefix="pylogmap-q-", suffix=".f32", dir=directory)
        except OSError as err:
            raise PylogmapError(
                f"cannot create the temporary file for an out-of-core map in {directory or tempfile.gettempdir()} "
                f"({err}); set TMPDIR to a folder with {self.nbytes / 2**30:.1f} GiB free."
            ) from None
        self.path = Path(name)
        self._file = os.fdopen(fd, "r+b", buffering=0)
        try:
            self._file.truncate(self.nbytes)
        except OSError as err:
            self.close()
            raise PylogmapError(f"cannot reserve {self.nbytes / 2**30:.1f} GiB for the out-of-core map ({err}).") from None

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self._row_bytes

    def __len__(self) -> int:
        return self.shape[0]

    def write(self, start: int, rows: np.ndarray) -> None:
        """Store ``rows`` (cast to float32) as rows ``start, start + 1, ...``."""
        block = np.ascontiguousarray(rows, dtype=np.float32)
        os.pwrite(self._file.fileno(), block.data, start * self._row_bytes)

    def read_into(self, start: int, out: np.ndarray) -> np.ndarray:
        """Rows ``start, start + 1, ...`` into ``out`` (C-contiguous float32 ``[n, n_cols]``), which
        is returned: a caller reading block after block reuses one buffer instead of paging in a
        fresh one each time."""
        if out.dtype != np.float32 or not out.flags.c_contiguous or out.ndim != 2 or out.shape[1] != self.shape[1]:
            raise ValueError(f"read_into needs a C-contiguous float32 [n, {self.shape[1]}] array")
        if start < 0 or start + out.shape[0] > self.shape[0]:
            raise IndexError(f"rows {start}:{start + out.shape[0]} are outside the {self.shape[0]} stored rows")
        if out.size:
            self._read_run(out, start)
        return out

    def _read_run(self, out: np.ndarray, start: int) -> None:
        view = memoryview(out).cast("B")
        got = os.preadv(self._file.fileno(), [view], start * self._row_bytes)
        if got != out.nbytes:
            raise PylogmapError(f"short read from the out-of-core map file {self.path} ({got} of {out.nbytes} bytes).")

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rows = self[key[0]]
            return rows[(slice(None),) + key[1:]]
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step != 1:
                return self[np.arange(start, stop, step)]
            out = np.empty((max(0, stop - start), self.shape[1]), dtype=np.float32)
            if out.size:
                self._read_run(out, start)
            return out
        if isinstance(key, (int, np.integer)):
            return self[int(key) : int(key) + 1][0]
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        out = np.empty((idx.size, self.shape[1]), dtype=np.float32)
        self.take_into(idx.ravel(), out)
        return out.reshape(idx.shape + (self.shape[1],))

    def take_into(self, idx, out: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (1-D, any order, repeats allowed) into ``out`` (C-contiguous float32
        ``[len(idx), n_cols]``), which is returned. Each row is read straight into its place,
        consecutive ascending rows in one call, so nothing but the rows asked for is read and no
        temporary is paged in (a caller gathering chunk after chunk reuses one buffer)."""
        idx = np.asarray(idx, dtype=np.int64).ravel()
        if out.dtype != np.float32 or not out.flags.c_contiguous or out.shape != (idx.size, self.shape[1]):
            raise ValueError(f"take_into needs a C-contiguous float32 [{idx.size}, {self.shape[1]}] array")
        if idx.size == 0:
            return out
        if idx.min() < -self.shape[0] or idx.max() >= self.shape[0]:
            raise IndexError(f"row index out of range for {self.shape[0]} stored rows")
        idx = idx % self.shape[0]
        breaks = (np.flatnonzero(np.diff(idx) != 1) + 1).tolist()
        for a, b in zip([0] + breaks, breaks + [idx.size]):
            self._read_run(out[a:b], int(idx[a]))
        return out

    def __array__(self, dtype=None, copy=None):
        raise PylogmapError("an out-of-core map is read a block of rows at a time; index it (X[a:b]) instead.")

    def close(self) -> None:
        """Close and delete the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> "DiskRows":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
