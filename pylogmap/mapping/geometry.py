"""Geometry of a log-likelihood map: clipping, double centring, KL estimates and their errors.

This module is the numerical heart of the map side (method.md section 3). numpy only: no
torch, no FAISS, no h5py. Every function works on plain arrays so that the store, the
neighbour index, the embeddings, the analyses and the viewer share one implementation.

Conventions (see docs/method.md for the derivations):

- ``L[i, k] = log p_i(x_k)`` in nats, one row per model, one column per text.
- Clipping: ``tau = quantile(L_used, 0.02)`` over all entries of the rows in use (numpy's
  default "linear" quantile, computed in float64), ``L <- max(L, tau)``. An existing tau is
  reused as is, so models added to a map see the same clipping.
- Double centring: ``Q = L - rowmean(L) - colmean(L) + mean(L)`` (rows and columns of Q have
  mean 0). Means are accumulated in float64 whatever the input dtype.
- KL estimate between models i and j, in nats per text:
  ``KL_ij = ||q_i - q_j||^2 / (2N) = Var_k(L_ik - L_jk) / 2`` (population variance, 1/N).
  The column means cancel in ``q_i - q_j`` and the row means only shift ``d = L_i - L_j``, so
  the estimate depends on the model set only through tau; the coordinates Q themselves do
  depend on which models are centred together (a common translation per text).
- Bits per byte: ``KL_bpb = KL_nats / (B ln 2)``, B = mean text length in UTF-8 bytes.
- Standard error of the estimate (delta method for a population variance): with
  ``d_k = L_ik - L_jk``, ``m2 = mean (d - dbar)^2``, ``m4 = mean (d - dbar)^4``,
  ``Var(m2) ~ (m4 - m2^2) / N``, hence ``SE(KL) = sqrt((m4 - m2^2) / N) / 2``. It treats the
  texts as an i.i.d. sample and accounts for heavy tails through the fourth moment; it is
  validated against a bootstrap over texts in tests/test_geometry.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from pylogmap.errors import PylogmapError

CLIP_QUANTILE = 0.02
LN2 = math.log(2.0)
# Output of pairwise_kl larger than this is refused (use rows= or iter_pairwise_kl instead).
MAX_PAIRWISE_BYTES = 8 * 2**30
# Scratch memory used by one block of the direct (difference-based) computations.
_SCRATCH_BYTES = 64 * 2**20
# KL estimates (nats per text) at or below this are rounding of identical rows: the same
# distribution on these texts (a model and its last logit-lens layer, a model imported twice).
# Real neighbours are orders of magnitude further (bf16 vs fp32 of one model: ~0.1 nats/text).
SAME_KL_NATS = 1e-6


# --------------------------------------------------------------------------------------------
# Rows in use
# --------------------------------------------------------------------------------------------


@dataclass
class RowSelection:
    """Which rows of L enter the map, and why the others do not.

    ``used`` is a bool mask over all rows; ``excluded`` maps a row index to a short reason
    (``"status failed"``, ``"12 NaN entries (not scored)"``, ``"3 infinite entries"``).
    """

    used: np.ndarray
    excluded: dict[int, str] = field(default_factory=dict)

    @property
    def n_used(self) -> int:
        return int(self.used.sum())

    def describe(self, labels: list[str] | None = None, limit: int = 10) -> str:
        """A readable account of the excluded rows (for CLI messages)."""
        if not self.excluded:
            return "all rows used"
        items = list(self.excluded.items())
        parts = []
        for row, reason in items[:limit]:
            name = labels[row] if labels is not None else f"row {row}"
            parts.append(f"{name} ({reason})")
        more = f" and {len(items) - limit} more" if len(items) > limit else ""
        return f"{len(items)} row(s) excluded: " + "; ".join(parts) + more


def select_rows(L: np.ndarray, status=None, *, block_rows: int = 4096) -> RowSelection:
    """Rows that can be mapped: every entry finite and (when given) status ``"ok"``.

    A model with any NaN (not scored, or failed) or infinite entry is excluded as a whole:
    the KL estimate needs the same texts for every model.
    """
    L = np.asarray(L) if not hasattr(L, "shape") else L
    if L.ndim != 2:
        raise PylogmapError(f"the log-likelihood matrix must be 2-D [models, texts]; got shape {L.shape}.")
    n_rows = L.shape[0]
    used = np.ones(n_rows, dtype=bool)
    excluded: dict[int, str] = {}
    if status is not None:
        status = np.asarray(status).astype(str)
        for row in np.flatnonzero(status != "ok"):
            used[row] = False
            excluded[int(row)] = f"status {status[row]}"
    for start in range(0, n_rows, block_rows):
        block = np.asarray(L[start : start + block_rows])
        n_nan = np.isnan(block).sum(axis=1)
        n_inf = np.isinf(block).sum(axis=1)
        for offset in np.flatnonzero((n_nan + n_inf) > 0):
            row = start + int(offset)
            if row in excluded:
                continue
            used[row] = False
            reasons = []
            if n_nan[offset]:
                reasons.append(f"{int(n_nan[offset])} NaN entries (not scored)")
            if n_inf[offset]:
                reasons.append(f"{int(n_inf[offset])} infinite entries")
            excluded[row] = ", ".join(reasons)
    return RowSelection(used=used, excluded=excluded)


def _require_finite_2d(L: np.ndarray, what: str = "L") -> None:
    if L.ndim != 2:
        raise PylogmapError(f"{what} must be a 2-D matrix [models, texts]; got shape {L.shape}.")
    if L.shape[0] == 0 or L.shape[1] == 0:
        raise PylogmapError(f"{what} is empty (shape {L.shape}); score some models first.")
    if not np.isfinite(L).all():
        raise PylogmapError(
            f"{what} contains NaN or infinite entries; select the finished rows first "
            "(geometry.select_rows) so that unscored or failed models are left out."
        )


# --------------------------------------------------------------------------------------------
# Clipping and centring
# --------------------------------------------------------------------------------------------


def clip_threshold(L: np.ndarray, q: float = CLIP_QUANTILE) -> float:
    """``numpy.quantile(L, q)`` (method "linear") over all entries, in float64.

    Uses one partitioned copy of L in its own dtype instead of numpy's float64 copy, so a
    100,000 x 10,000 float32 matrix needs 4 GB of scratch, not 8.
    """
    L = np.asarray(L)
    _require_finite_2d(L)
    if not 0.0 <= q <= 1.0:
        raise PylogmapError(f"the clipping quantile must be in [0, 1]; got {q}.")
    flat = L.ravel()
    n = flat.size
    pos = q * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    part = np.partition(flat, [lo, hi]) if hi != lo else np.partition(flat, lo)
    a = float(part[lo])
    b = float(part[hi])
    frac = pos - lo
    # Same formula as numpy's linear interpolation (numpy._lerp), for bit-identical results.
    diff = b - a
    value = a + diff * frac
    if frac >= 0.5:
        value = b - diff * (1.0 - frac)
    return float(value)


def clip(L: np.ndarray, tau: float | None = None, q: float = CLIP_QUANTILE, *, out=None):
    """Clip L from below at tau; tau defaults to the q-quantile of all entries.

    Returns ``(L_clipped, tau)``. Pass the rows in use only (no NaN). Reuse an existing map's
    tau when adding models so that the old rows keep their values. ``out=L`` clips in place.
    """
    L = np.asarray(L)
    _require_finite_2d(L)
    if tau is None:
        tau = clip_threshold(L, q)
    tau = float(tau)
    if not math.isfinite(tau):
        raise PylogmapError(f"the clipping threshold tau must be finite; got {tau}.")
    dtype = L.dtype if np.issubdtype(L.dtype, np.floating) else np.float64
    result = np.maximum(L, np.asarray(tau, dtype=dtype), out=out)
    return result, tau


def double_center(L: np.ndarray, *, dtype=None, out=None, block_rows: int = 2048) -> np.ndarray:
    """``Q = L - rowmean(L) - colmean(L) + mean(L)``; means accumulated in float64.

    The result has the dtype of L (float32 stays float32, halving memory for 100k models)
    unless ``dtype`` is given; ``out=L`` centres in place. Each block is formed in float64
    before the cast, so the only rounding is the final one.
    """
    L = np.asarray(L)
    _require_finite_2d(L)
    if dtype is None:
        dtype = L.dtype if np.issubdtype(L.dtype, np.floating) else np.float64
    row_mean = np.empty(L.shape[0], dtype=np.float64)
    col_sum = np.zeros(L.shape[1], dtype=np.float64)
    for start in range(0, L.shape[0], block_rows):
        block = L[start : start + block_rows].astype(np.float64)
        row_mean[start : start + block_rows] = block.mean(axis=1)
        col_sum += block.sum(axis=0)
    # colmean of the row-centred matrix = colmean(L) - mean(L)
    col_offset = col_sum / L.shape[0] - row_mean.mean()
    if out is None:
        out = np.empty(L.shape, dtype=dtype)
    for start in range(0, L.shape[0], block_rows):
        stop = min(start + block_rows, L.shape[0])
        block = L[start:stop].astype(np.float64)
        block -= row_mean[start:stop, None]
        block -= col_offset[None, :]
        out[start:stop] = block
    return out


# --------------------------------------------------------------------------------------------
# Summaries per model and per text
# --------------------------------------------------------------------------------------------


def mean_loglik(L: np.ndarray, *, block_rows: int = 4096) -> np.ndarray:
    """Mean log-likelihood per model over texts, in nats per text (float64).

    Computed on the raw (unclipped) L; a row with any NaN gets NaN.
    """
    L = np.asarray(L) if not hasattr(L, "shape") else L
    out = np.empty(L.shape[0], dtype=np.float64)
    for start in range(0, L.shape[0], block_rows):
        out[start : start + block_rows] = np.asarray(L[start : start + block_rows], dtype=np.float64).mean(axis=1)
    return out


def text_variance(Q, *, block_rows: int = 4096) -> np.ndarray:
    """Per-text variance across models of the row-centred, clipped log-likelihood.

    For a double-centred Q this is ``mean_i Q[i, k]^2`` (columns of Q have mean 0); the
    resampling paper's "LS" text importance is proportional to it. Q may be any row-indexable
    2-D matrix (an ndarray, or the out-of-core rowstore.DiskRows): it is read a block at a time.
    """
    if not hasattr(Q, "shape"):
        Q = np.asarray(Q)
    if len(Q.shape) != 2 or Q.shape[0] == 0 or Q.shape[1] == 0:
        raise PylogmapError(f"Q must be a non-empty 2-D matrix [models, texts]; got shape {Q.shape}.")
    col_sum = np.zeros(Q.shape[1], dtype=np.float64)
    col_sq = np.zeros(Q.shape[1], dtype=np.float64)
    for start in range(0, Q.shape[0], block_rows):
        block = np.asarray(Q[start : start + block_rows]).astype(np.float64)
        if not np.isfinite(block).all():
            raise PylogmapError(
                "Q contains NaN or infinite entries; select the finished rows first "
                "(geometry.select_rows) so that unscored or failed models are left out."
            )
        col_sum += block.sum(axis=0)
        col_sq += np.einsum("ij,ij->j", block, block)
    mean = col_sum / Q.shape[0]
    return np.maximum(col_sq / Q.shape[0] - mean**2, 0.0)


# --------------------------------------------------------------------------------------------
# KL estimates
# --------------------------------------------------------------------------------------------


def to_bits_per_byte(kl_nats, mean_bytes: float):
    """Convert nats per text to bits per byte: divide by ``B ln 2``, B = mean bytes per text."""
    mean_bytes = float(mean_bytes)
    if not mean_bytes > 0:
        raise PylogmapError(f"the mean text length in bytes must be positive; got {mean_bytes}.")
    return np.asarray(kl_nats, dtype=np.float64) / (mean_bytes * LN2) if np.ndim(kl_nats) else float(kl_nats) / (mean_bytes * LN2)


def bits_per_byte_scale(n_texts: int, mean_bytes: float) -> float:
    """Scale s such that ``||s q_i - s q_j||^2`` is the KL estimate in bits per byte."""
    return 1.0 / math.sqrt(2.0 * n_texts * float(mean_bytes) * LN2)


def kl_moments(d: np.ndarray, *, second_only: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Central moments m2, m4 of d over its last axis, in float64.

    One float64 copy of d, its mean removed (so there is no cancellation whatever the offset
    between the two rows), then sums of products over the last axis. ``second_only`` skips m4.
    """
    c = np.array(d, dtype=np.float64)  # always a copy: the caller's array is never modified
    n = c.shape[-1]
    c -= c.mean(axis=-1, keepdims=True)
    sub = "...n,...n->..."
    m2 = np.einsum(sub, c, c) / n
    if second_only:
        return m2, None
    np.square(c, out=c)
    m4 = np.einsum(sub, c, c) / n
    return m2, m4


def kl_from_moments(m2, m4, n_texts: int):
    """KL estimate and its delta-method standard error from central moments of d."""
    m2 = np.asarray(m2, dtype=np.float64)
    m4 = np.asarray(m4, dtype=np.float64)
    kl = m2 / 2.0
    se = np.sqrt(np.maximum(m4 - m2 * m2, 0.0) / n_texts) / 2.0
    return kl, se


def kl_estimate(L_i: np.ndarray, L_j: np.ndarray):
    """KL estimate between two models from their rows, and its standard error (nats per text).

    ``KL = Var_k(L_ik - L_jk) / 2`` and ``SE = sqrt((m4 - m2^2) / N) / 2`` (module docstring).
    Rows of L (clipped) and rows of Q give the same result. Broadcasts over leading axes:
    ``kl_estimate(Q[a], Q[b])`` for arrays of pairs returns arrays.
    """
    a = np.asarray(L_i)
    b = np.asarray(L_j)
    if not (a.dtype == np.float32 and b.dtype == np.float32):
        a = a.astype(np.float64, copy=False)
        b = b.astype(np.float64, copy=False)
    if a.shape[-1] != b.shape[-1]:
        raise PylogmapError(f"the two rows cover different numbers of texts ({a.shape[-1]} vs {b.shape[-1]}).")
    if a.shape[-1] < 2:
        raise PylogmapError("a KL estimate needs at least 2 texts.")
    m2, m4 = kl_moments(a - b)
    kl, se = kl_from_moments(m2, m4, a.shape[-1])
    if kl.ndim == 0:
        return float(kl), float(se)
    return kl, se


def kl_estimate_pairs(X: np.ndarray, rows_a, rows_b, *, scratch_bytes: int = _SCRATCH_BYTES):
    """KL estimates and SEs for many pairs ``(rows_a[p], rows_b[p])`` of rows of X.

    Works blockwise over pairs so that the difference vectors never exceed ``scratch_bytes``.
    Returns float64 arrays ``(kl_nats, se_nats)`` shaped like ``rows_a``.
    """
    rows_a = np.asarray(rows_a, dtype=np.int64)
    rows_b = np.asarray(rows_b, dtype=np.int64)
    if rows_a.shape != rows_b.shape:
        raise PylogmapError("rows_a and rows_b must have the same shape.")
    flat_a, flat_b = rows_a.ravel(), rows_b.ravel()
    n = X.shape[1]
    kl = np.empty(flat_a.size, dtype=np.float64)
    se = np.empty(flat_a.size, dtype=np.float64)
    step = max(1, scratch_bytes // (8 * n * 3))
    for start in range(0, flat_a.size, step):
        sl = slice(start, start + step)
        d = np.asarray(X[flat_a[sl]]) - np.asarray(X[flat_b[sl]])
        m2, m4 = kl_moments(d)
        kl[sl], se[sl] = kl_from_moments(m2, m4, n)
    return kl.reshape(rows_a.shape), se.reshape(rows_a.shape)


def kl_estimate_lists(X: np.ndarray, queries, lists, *, scratch_bytes: int = _SCRATCH_BYTES):
    """KL estimates and SEs between each query row and the rows of its list.

    ``lists[a, c]`` is a row of X (or -1 for none); returns float64 ``(kl, se)`` shaped like
    ``lists`` (NaN where -1). The query row is broadcast, not copied k times.
    """
    queries = np.asarray(queries, dtype=np.int64).ravel()
    lists = np.asarray(lists, dtype=np.int64)
    nq, k = lists.shape
    n = X.shape[1]
    kl = np.full((nq, k), np.nan)
    se = np.full((nq, k), np.nan)
    step = max(1, scratch_bytes // (8 * n * max(1, k) * 2))
    for start in range(0, nq, step):
        q = queries[start : start + step]
        li = lists[start : start + step]
        valid = li >= 0
        d = np.asarray(X[np.where(valid, li, 0).ravel()]).reshape(q.size, k, n)
        d -= np.asarray(X[q])[:, None, :]
        m2, m4 = kl_moments(d)
        k_, s_ = kl_from_moments(m2, m4, n)
        kl[start : start + q.size] = np.where(valid, k_, np.nan)
        se[start : start + q.size] = np.where(valid, s_, np.nan)
    return kl, se


def _row_blocks(n_rows: int, n_cols: int, itemsize: int, budget: int) -> int:
    return max(1, min(n_rows, budget // max(1, n_cols * itemsize)))


def _centred_squared_norms(X: np.ndarray, block: int) -> np.ndarray:
    """Squared norm of every centred row of X in float64, a block of rows at a time; refuses
    NaN/inf, which would silently poison every distance computed from these norms."""
    K = X.shape[0]
    sq = np.empty(K, dtype=np.float64)
    for start in range(0, K, block):
        blk = _centred_block(X, start, start + block, np.float64)
        if not np.isfinite(blk).all():
            raise PylogmapError(
                "X contains NaN or infinite entries; select the finished rows first "
                "(geometry.select_rows) so that unscored or failed models are left out."
            )
        sq[start : start + block] = np.einsum("ij,ij->i", blk, blk)
    return sq


def _centred_block(X: np.ndarray, start: int, stop: int, dtype) -> np.ndarray:
    blk = np.asarray(X[start:stop], dtype=np.float64)
    blk = blk - blk.mean(axis=1, keepdims=True)
    return blk if dtype == np.float64 else blk.astype(dtype)


def iter_pairwise_kl(
    X: np.ndarray,
    rows=None,
    *,
    block: int | None = None,
    dtype=np.float64,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(row_indices, kl_block)`` with ``kl_block[a, j] = Var_k(X[r_a] - X[j]) / 2``.

    Blockwise Gram computation: ``N Var(x - y) = |x~|^2 + |y~|^2 - 2 x~.y~`` with rows centred
    (``x~ = x - mean x``). Memory: a block of query rows, a block of other rows (both in the
    working dtype) and one ``[block, K]`` float64 result; never a ``[K, K, N]`` intermediate nor a
    copy of X. float64 by default: in float32 the cancellation in the Gram identity costs about
    ``1e-7 |x~|^2`` absolute, too much for near-identical models. X may be L (clipped) or Q; the
    result is the same.
    """
    if len(X.shape) != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise PylogmapError(f"X must be a non-empty 2-D matrix [models, texts]; got shape {X.shape}.")
    K, N = X.shape
    rows = np.arange(K) if rows is None else np.asarray(rows, dtype=np.int64).ravel()
    if rows.size and (rows.min() < 0 or rows.max() >= K):
        raise PylogmapError(f"row index out of range for a matrix of {K} models.")
    col_block = _row_blocks(K, N, 8, _SCRATCH_BYTES * 2)
    sq = _centred_squared_norms(X, col_block)
    if block is None:
        block = max(1, min(2048, _SCRATCH_BYTES * 4 // max(1, K * 8)))
    for start in range(0, rows.size, block):
        r = rows[start : start + block]
        A = np.asarray(X[r], dtype=np.float64)
        A -= A.mean(axis=1, keepdims=True)
        A = A.astype(dtype, copy=False)
        dist = np.empty((r.size, K), dtype=np.float64)
        for c0 in range(0, K, col_block):
            c1 = min(c0 + col_block, K)
            B = _centred_block(X, c0, c1, dtype)
            dist[:, c0:c1] = A @ B.T
        dist *= -2.0
        dist += sq[r, None]
        dist += sq[None, :]
        np.maximum(dist, 0.0, out=dist)
        dist[np.arange(r.size), r] = 0.0  # a model against itself, exactly
        dist /= 2.0 * N
        yield r, dist


def pairwise_kl(X: np.ndarray, rows=None, *, block: int | None = None, dtype=np.float64) -> np.ndarray:
    """All-pairs KL estimates (nats per text), ``[len(rows), K]`` (``[K, K]`` by default).

    Computed blockwise (see iter_pairwise_kl). The full K x K result for 100,000 models would
    be 80 GB; such requests are refused with advice to pass ``rows=`` or stream
    ``iter_pairwise_kl``. Standard errors for chosen pairs: kl_estimate_pairs.
    """
    K = X.shape[0]
    n_rows = K if rows is None else int(np.asarray(rows).size)
    need = n_rows * K * 8
    if need > MAX_PAIRWISE_BYTES:
        raise PylogmapError(
            f"the all-pairs KL matrix for {n_rows} x {K} models would take {need / 2**30:.1f} GiB; "
            "pass rows=[...] for a subset or iterate geometry.iter_pairwise_kl block by block."
        )
    if rows is None:
        return _pairwise_kl_symmetric(X, block=block, dtype=dtype)
    out = np.empty((n_rows, K), dtype=np.float64)
    pos = 0
    for r, blk in iter_pairwise_kl(X, rows, block=block, dtype=dtype):
        out[pos : pos + r.size] = blk
        pos += r.size
    return out


def iter_pairwise_kl_tiles(
    X: np.ndarray, *, block: int | None = None, dtype=np.float64
) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """Yield ``(rows_a, rows_b, kl_tile)`` for the tiles on and above the diagonal: every pair of
    models once (``kl_tile[i, j]`` for rows ``rows_a.start + i`` and ``rows_b.start + j``).

    The all-pairs stream with the symmetry used: half the products of iter_pairwise_kl, each
    diagonal tile a symmetric rank-k update. Memory: two centred blocks of rows and one tile
    (``block`` rows, 128 MiB of float64 rows by default); X is read a block at a time, so an
    out-of-core Q works too. float64 by default (see iter_pairwise_kl).
    """
    if len(X.shape) != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise PylogmapError(f"X must be a non-empty 2-D matrix [models, texts]; got shape {X.shape}.")
    K, N = X.shape
    if block is None:
        block = _row_blocks(K, N, 8, _SCRATCH_BYTES * 2)
    block = max(1, int(block))
    sq = _centred_squared_norms(X, block)
    starts = list(range(0, K, block))
    for a0 in starts:
        a1 = min(a0 + block, K)
        A = _centred_block(X, a0, a1, dtype)
        for b0 in starts:
            if b0 < a0:
                continue
            b1 = min(b0 + block, K)
            B = A if b0 == a0 else _centred_block(X, b0, b1, dtype)
            g = np.asarray(A @ B.T, dtype=np.float64)
            g *= -2.0
            g += sq[a0:a1, None]
            g += sq[None, b0:b1]
            np.maximum(g, 0.0, out=g)
            g /= 2.0 * N
            if b0 == a0:
                np.fill_diagonal(g, 0.0)  # a model against itself, exactly
            yield slice(a0, a1), slice(b0, b1), g


def _pairwise_kl_symmetric(X: np.ndarray, *, block: int | None = None, dtype=np.float64) -> np.ndarray:
    """All pairs into one K x K matrix from the symmetric tiles (each written to both triangles)."""
    K = X.shape[0]
    out = np.empty((K, K), dtype=np.float64)
    for ra, rb, g in iter_pairwise_kl_tiles(X, block=block, dtype=dtype):
        out[ra, rb] = g
        if ra != rb:
            out[rb, ra] = g.T
    np.fill_diagonal(out, 0.0)
    return out


# --------------------------------------------------------------------------------------------
# One object for the whole pipeline
# --------------------------------------------------------------------------------------------


@dataclass
class Geometry:
    """Q and what is needed to read it: the rows used, tau, N and the mean text length."""

    Q: np.ndarray
    used: np.ndarray  # bool mask over all rows of the file
    rows: np.ndarray  # int64 indices (into the file) of the rows of Q
    tau: float
    mean_bytes: float
    selection: RowSelection

    @property
    def n_texts(self) -> int:
        return int(self.Q.shape[1])

    def kl(self, a: int, b: int) -> tuple[float, float]:
        """KL estimate and SE (nats per text) between rows a and b of Q (not file rows)."""
        return kl_estimate(self.Q[a], self.Q[b])

    def bits(self, kl_nats):
        return to_bits_per_byte(kl_nats, self.mean_bytes)


def build_geometry(L, *, status=None, tau=None, text_bytes=None, q: float = CLIP_QUANTILE, dtype=None) -> Geometry:
    """Select the usable rows, clip (reusing tau when given) and double-centre.

    ``text_bytes`` gives the UTF-8 length of every text (for bits per byte); when omitted the
    mean length is NaN and only nats are meaningful.
    """
    selection = select_rows(L, status)
    rows = np.flatnonzero(selection.used)
    if rows.size == 0:
        raise PylogmapError("no model has a complete set of scores; score some models (pylogmap score) first.")
    Lu = np.asarray(L[:] if rows.size == L.shape[0] else L[rows])
    if isinstance(L, np.ndarray) and np.may_share_memory(Lu, L):
        Lu = Lu.copy()  # never modify the caller's matrix
    if not np.issubdtype(Lu.dtype, np.floating):
        Lu = Lu.astype(np.float64)
    Lu, tau = clip(Lu, tau, q, out=Lu)
    Q = double_center(Lu, dtype=dtype, out=Lu if dtype is None else None)
    mean_bytes = float(np.mean(text_bytes)) if text_bytes is not None else float("nan")
    return Geometry(Q=Q, used=selection.used, rows=rows, tau=tau, mean_bytes=mean_bytes, selection=selection)
