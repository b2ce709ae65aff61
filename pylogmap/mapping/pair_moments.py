"""float64 moments of row differences for (query, candidate) pairs: the exact stage's arithmetic.

For each pair ``(q, c)``, with ``d = x_c - x_q - (mean_c - mean_q)`` in float64, ``sq = sum(d^2)``
(``N Var(x_q - x_c)``, the map's squared distance, geometry.py) and, when asked, ``m4 =
sum(d^4) / N`` (the standard error of the KL estimate). The compiled ``pylogmap.mapping._pairs``
reads each pair's two rows once and sums in registers (csrc/map/pairs_module.cpp); numpy would
gather the candidate rows, widen them to float64 and reduce them, three passes over the data
(2.7 s against 0.26 s for the candidates of a 10,000 x 10,000 map on 2 cores, BENCHMARKS.md). ``native()`` is None when the module was not built (a
source checkout without the in-place build); knn_search then keeps its numpy path.

Out-of-core rows (rowstore.DiskRows, anything without a C-contiguous ndarray face) are read a
chunk of pairs at a time into a buffer kept between chunks, and the pairs point into it.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import numpy as np

_CHUNK_BYTES = 64 * 2**20  # the buffer of rows for out-of-core X
_module: ModuleType | None = None
_error: str | None = None
_tried = False


def native() -> ModuleType | None:
    """The compiled module, or None (not built, or switched off with PYLOGMAP_NATIVE_PAIRS=0)."""
    global _module, _error, _tried
    if os.environ.get("PYLOGMAP_NATIVE_PAIRS", "1") == "0":
        return None
    if not _tried:
        _tried = True
        try:
            _module = importlib.import_module("pylogmap.mapping._pairs")
        except ImportError as exc:
            _error = str(exc)
    return _module


def native_error() -> str | None:
    """Why the compiled module could not be imported (None when it was, or was not tried)."""
    return _error


def _in_memory(X) -> bool:
    return isinstance(X, np.ndarray) and X.dtype in (np.float32, np.float64) and X.flags.c_contiguous


def pair_moments(X, queries: np.ndarray, cand: np.ndarray, mean: np.ndarray, *, fourth: bool,
                 valid: np.ndarray | None = None):
    """``sq`` (and ``m4`` when ``fourth``, else None) of every ``(queries[i], cand[i, j])`` pair.

    X: ``[K, N]`` float32/float64 rows (ndarray or out-of-core); ``cand``: ``[nq, width]`` row
    ids; ``valid``: which entries of ``cand`` to compute (default all; the others get inf and
    NaN); ``mean``: the float64 row means of X. Needs ``native()``.

    Each unordered pair is computed once: ``(i, j)`` and ``(j, i)`` have differences of opposite
    sign, exactly, so the same squares and the same bits (an all-vs-all search meets most pairs
    from both sides). The pairs go in ascending order of their first row, which stays in cache.
    """
    mod = native()
    if mod is None:
        raise RuntimeError("pylogmap.mapping._pairs is not available: " + (_error or "switched off"))
    K = X.shape[0]
    cand = np.asarray(cand, dtype=np.int64)
    nq, width = cand.shape
    q_flat = np.repeat(np.asarray(queries, dtype=np.int64), width)
    c_flat = cand.ravel()
    sel = np.flatnonzero(valid) if valid is not None else np.arange(q_flat.size)
    q_sel, c_sel = q_flat[sel], c_flat[sel]
    if q_sel.size and (min(q_sel.min(), c_sel.min()) < 0 or max(q_sel.max(), c_sel.max()) >= K):
        raise IndexError(f"a pair names a row outside the {K} rows of X")
    first, second = np.minimum(q_sel, c_sel), np.maximum(q_sel, c_sel)
    keys, inverse = np.unique(first * K + second, return_inverse=True)
    mean = np.ascontiguousarray(mean, dtype=np.float64)
    u_sq, u_m4 = _unique_pairs(mod, X, keys // K, keys % K, mean, fourth)
    sq = np.full(q_flat.size, np.inf)
    sq[sel] = u_sq[inverse]
    m4 = None
    if fourth:
        m4 = np.full(q_flat.size, np.nan)
        m4[sel] = u_m4[inverse]
        m4 = m4.reshape(nq, width)
    return sq.reshape(nq, width), m4


def _unique_pairs(mod, X, first: np.ndarray, second: np.ndarray, mean: np.ndarray, fourth: bool):
    """The kernel over pairs of rows of X: in place for in-memory rows, else a chunk of pairs at a
    time with the rows they name read into a buffer kept between chunks."""
    n = first.size
    sq = np.empty(n)
    m4 = np.empty(n) if fourth else None
    if _in_memory(X):
        mod.pair_moments(X, X, mean, mean, first, second, sq, m4)
        return sq, m4
    N = X.shape[1]
    dtype = np.float64 if X.dtype == np.float64 else np.float32  # float64 rows are never rounded
    rows = max(2, _CHUNK_BYTES // (np.dtype(dtype).itemsize * N))
    step = rows // 2
    buf = np.empty((min(rows, 2 * n), N), dtype=dtype)
    for s0 in range(0, n, step):
        s1 = min(n, s0 + step)
        ids, inv = np.unique(np.concatenate([first[s0:s1], second[s0:s1]]), return_inverse=True)
        got = _take(X, ids, buf[: ids.size])
        m = s1 - s0
        mod.pair_moments(got, got, mean[ids], mean[ids], inv[:m], inv[m:], sq[s0:s1],
                         None if m4 is None else m4[s0:s1])
    return sq, m4


def _take(X, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of X into ``out``: straight from disk for an out-of-core X."""
    if hasattr(X, "take_into"):
        return X.take_into(idx, out)
    np.copyto(out, np.asarray(X[idx]), casting="same_kind")
    return out
