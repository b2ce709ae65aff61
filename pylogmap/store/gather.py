"""Reading rows of a [M, ...] dataset by any selection (None, int, slice, bool mask, int sequence),
in the order asked, with memory bounded by the result plus one block."""

from __future__ import annotations

from typing import Any

import numpy as np

from pylogmap.errors import MapFileError


def row_index(rows: Any, m: int) -> np.ndarray | slice:
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


def read_rows(ds, idx: np.ndarray | slice) -> np.ndarray:
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
