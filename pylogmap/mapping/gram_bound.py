"""Squared distances from float32 Gram tiles, each with a proven bracket around the float64 value.

The neighbour search and the all-pairs streams multiply rows of Q in float32 (GEMM speed, half
the bytes of float64) and need to know how far a float32 distance can be from the float64 one
(``N Var(x_i - x_j)``, geometry.py). This module computes the tiles and the bracket.

Derivation (u = 2^-24, the unit roundoff of float32; gamma_h = h u / (1 - h u)).

1. Any floating-point evaluation of a sum of products, in any order of additions whose tree has
   depth at most h, satisfies ``|fl(a.b) - a.b| <= gamma_h sum_k |a_k b_k|`` (Higham, *Accuracy
   and Stability of Numerical Algorithms*, 2nd ed., section 3.1, with FMA or without), and
   ``sum_k |a_k b_k| <= |a| |b| <= (|a|^2 + |b|^2) / 2`` by Cauchy-Schwarz. A BLAS library may
   sum the N products in any order, so one ``sgemm`` over N texts has h = N (gamma ~ 6e-4 for
   N = 10,000). We call ``sgemm`` on P panels of at most q = ceil(N / P) columns and add the P
   float32 panel results ourselves, left to right: every product then sits at depth <= q + P - 1,
   so h = q + P - 1 (3,336 for N = 10,000 and P = 3) whatever the library does inside a call.
2. The GEMM identity ``|a - b|^2 = |a|^2 + |b|^2 - 2 a.b`` is exact for the float32 rows
   a~ = fl32(a); the squared norms s_i = |a~_i|^2 are summed in float64 (relative error below
   N 2^-53 < u). So the Gram error of the distance is at most ``2 gamma_h |a||b| <= gamma_h (s_i +
   s_j)``: it grows with the norms, not with the distance, which is why near-identical models
   cannot be ranked from float32 Gram values alone.
3. The tile is formed in float32 as ``fl(fl(G' + alpha_i) + alpha_j)`` with G' the panel GEMM of
   ``-2 a~_i`` (an exact scaling) and ``alpha_i = fl32(s_i - e_i - m_i)``: three more roundings,
   each at most u times a partial sum bounded by 3.1 (s_i + s_j): 6.2 u (s_i + s_j) in all.
4. Rounding a float64 Q to float32 moves each entry by at most u |a_k|, which moves
   ``|a - b|^2`` by at most ``2u (|a| + |b|)^2 (1 + u) <= 4.1 u (s_i + s_j)``.
5. The float64 reference removes the means: ``delta_ij = |x_i - x_j|^2 - N (mu_i - mu_j)^2``
   with ``0 <= N (mu_i - mu_j)^2 <= m_i + m_j``, ``m_i = 2 N mu_i^2`` (Q's rows are centred, so
   m_i is at the level of float32 rounding; any matrix is accepted).

With ``e_i = c s_i``, ``c = gamma_h + 24 u`` (items 2-4 need gamma_h + 10.3 u for centred rows and
at most gamma_h + 18.3 u when m_i takes its largest possible value, 2 s_i; the rest is slack for
the float64 sums), the float32 tile value ``lower_ij`` satisfies

    lower_ij <= delta_ij <= lower_ij + w_i + w_j,   w_i = 2 e_i + m_i (+ 2^-50 s_i),

so ``lower`` is a lower bound of the float64 distance and ``lower + w_i + w_j`` an upper bound.
A row j can be among the k nearest of i only if ``lower_ij`` does not exceed the k-th smallest
upper bound of row i: knn_search keeps every such row and ranks them by float64 distances
computed from the rows themselves. No assumption on the BLAS beyond IEEE arithmetic is made.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from pylogmap.errors import PylogmapError

U32 = 2.0**-24
# Columns per sgemm call: the depth bound q + P - 1 is smallest near q = sqrt(N), but every panel
# costs a float32 pass over the tile and sgemm/ssyrk run faster on long panels. For 10,000 texts
# 4,096 gives P = 3 (depth 3,336): 10.4 candidates per query for k = 10 on the synthetic maps of
# benchmarks/bench_map.py, against 11.2 with one panel and 10.2 with five.
PANEL_COLUMNS = 4096
_STATS_BYTES = 64 * 2**20


def panel_count(n_cols: int, panel_columns: int = PANEL_COLUMNS) -> int:
    """How many sgemm panels a product over ``n_cols`` texts is split into."""
    return max(1, math.ceil(n_cols / max(1, panel_columns)))


def gram_depth(n_cols: int, panels: int) -> int:
    """Largest depth of a product in the summation tree of a P-panel product: q + P - 1."""
    q = math.ceil(n_cols / panels)
    return q + panels - 1


def margin_coefficient(n_cols: int, panels: int) -> float:
    """c such that ``e_i = c s_i`` bounds row i's share of the float32 error (module docstring)."""
    h = gram_depth(n_cols, panels)
    if h * U32 >= 0.5:
        raise PylogmapError(f"{n_cols} texts are too many for a float32 error bound; split the texts into panels.")
    return h * U32 / (1.0 - h * U32) + 24.0 * U32


@dataclass
class RowStats:
    """Per-row numbers the bracket needs, computed in one pass over the rows (float64).

    ``sq``: |fl32(x_i)|^2; ``sq64``: |x_i|^2 of the row as given (the same for float32 rows);
    ``mean``: the row mean of x_i; ``alpha``: the float32 term added to the tile for row i;
    ``width``: w_i (upper bound = lower + w_i + w_j).
    """

    sq: np.ndarray
    sq64: np.ndarray
    mean: np.ndarray
    alpha: np.ndarray
    width: np.ndarray
    coefficient: float
    panels: int


def row_stats(X, panels: int, *, block_rows: int | None = None) -> RowStats:
    """Norms, means and bracket terms of every row of X (ndarray or memmap), a block at a time.

    Refuses NaN/inf: they would poison every distance computed from these norms.
    """
    K, N = X.shape
    if block_rows is None:
        block_rows = max(1, _STATS_BYTES // max(1, N * 8))
    sq = np.empty(K, dtype=np.float64)
    sq64 = sq if X.dtype == np.float32 else np.empty(K, dtype=np.float64)
    mean = np.empty(K, dtype=np.float64)
    for start in range(0, K, block_rows):
        blk = np.asarray(X[start : start + block_rows])
        if not np.isfinite(blk).all():
            raise PylogmapError(
                "the matrix contains NaN or infinite entries; select the finished rows first "
                "(geometry.select_rows) so that unscored or failed models are left out."
            )
        b32 = blk.astype(np.float32, copy=False)
        sq[start : start + block_rows] = np.einsum("ij,ij->i", b32, b32, dtype=np.float64)
        if sq64 is not sq:
            b64 = blk.astype(np.float64, copy=False)
            sq64[start : start + block_rows] = np.einsum("ij,ij->i", b64, b64)
        mean[start : start + block_rows] = blk.mean(axis=1, dtype=np.float64)
    c = margin_coefficient(N, panels)
    alpha, width = _bracket(sq, mean, N, c)
    return RowStats(sq=sq, sq64=sq64, mean=mean, alpha=alpha, width=width, coefficient=c, panels=panels)


def _bracket(sq: np.ndarray, mean: np.ndarray, n_cols: int, c: float, absolute: float = 0.0):
    """alpha_i and w_i for ``e_i = c s_i`` (module docstring), plus ``absolute (1 + s_i)`` in w_i."""
    m = 2.0 * n_cols * mean * mean * (1.0 + 2.0**-40)
    e = c * sq
    return (sq - e - m).astype(np.float32), 2.0 * e + m + 2.0**-50 * sq + absolute * (1.0 + sq)


def with_coefficient(stats: RowStats, c: float, n_cols: int, absolute: float = 0.0) -> RowStats:
    """The same rows with the bracket of another tile maker's bound (e.g. gram_bf16's): ``e_i = c
    s_i`` and ``absolute (1 + s_i)`` more in w_i for bounds with an absolute part."""
    alpha, width = _bracket(stats.sq, stats.mean, n_cols, c, absolute)
    return dataclasses.replace(stats, alpha=alpha, width=width, coefficient=c)


class BlockReader:
    """Reads blocks of rows of X as C-contiguous float32, into one buffer kept between reads.

    An in-memory float32 X gives views (no copy). Anything else (an out-of-core
    rowstore.DiskRows, a memmap, float64 rows) is copied into the buffer: a fresh block per
    read would page in 160 MiB (4,096 rows of 10,000 texts) each time, which on this kind of
    machine costs more than reading it. The block returned is valid until the next ``read``.
    """

    def __init__(self, X):
        self.X = X
        self._view = isinstance(X, np.ndarray) and X.dtype == np.float32 and X.flags.c_contiguous
        self._buf: np.ndarray | None = None

    def read(self, start: int, stop: int) -> np.ndarray:
        if self._view:
            return self.X[start:stop]
        n, n_cols = stop - start, self.X.shape[1]
        if self._buf is None or self._buf.shape[0] < n:
            self._buf = np.empty((n, n_cols), dtype=np.float32)
        out = self._buf[:n]
        if hasattr(self.X, "read_into"):
            return self.X.read_into(start, out)
        np.copyto(out, self.X[start:stop], casting="same_kind")
        return out


class TileMaker:
    """Lower-bound tiles ``lower[a, b]`` for blocks of rows, with reusable buffers.

    ``lower(A2, rows_a, B, rows_b)`` needs ``A2 = -2 * A`` (exact) so that the tile is the panel
    GEMM plus the two alpha terms, with no extra pass to scale it.
    """

    def __init__(self, stats: RowStats, n_cols: int):
        self.stats = stats
        self.n_cols = n_cols
        q = math.ceil(n_cols / stats.panels)
        self.bounds = [(p, min(p + q, n_cols)) for p in range(0, n_cols, q)]
        self._out: np.ndarray | None = None
        self._tmp: np.ndarray | None = None
        self._a2: np.ndarray | None = None

    def _buffers(self, n_a: int, n_b: int) -> tuple[np.ndarray, np.ndarray]:
        if self._out is None or self._out.size < n_a * n_b:
            self._out = np.empty(n_a * n_b, dtype=np.float32)
            self._tmp = np.empty(n_a * n_b, dtype=np.float32) if len(self.bounds) > 1 else self._out
        out = self._out[: n_a * n_b].reshape(n_a, n_b)
        tmp = self._tmp[: n_a * n_b].reshape(n_a, n_b)
        return out, tmp

    def _panels(self, A: np.ndarray, B: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> None:
        p0, p1 = self.bounds[0]
        np.matmul(A[:, p0:p1], B[:, p0:p1].T, out=out)
        for p0, p1 in self.bounds[1:]:
            np.matmul(A[:, p0:p1], B[:, p0:p1].T, out=tmp)
            out += tmp

    def query_operand(self, A: np.ndarray) -> np.ndarray:
        """What ``lower`` takes for the query block: ``-2 A`` (exact), in a buffer kept between
        blocks (valid until the next call)."""
        if self._a2 is None or self._a2.shape[1] != A.shape[1] or self._a2.shape[0] < A.shape[0]:
            self._a2 = np.empty(A.shape, dtype=np.float32)
        return np.multiply(A, np.float32(-2.0), out=self._a2[: A.shape[0]])

    def lower(self, A2: np.ndarray, rows_a: slice | np.ndarray, B: np.ndarray, rows_b: slice | np.ndarray) -> np.ndarray:
        """The float32 tile of lower bounds (a view of an internal buffer: use before the next call)."""
        out, tmp = self._buffers(A2.shape[0], B.shape[0])
        self._panels(A2, B, out, tmp)
        out += self.stats.alpha[rows_a][:, None]
        out += self.stats.alpha[rows_b][None, :]
        return out

    def lower_diagonal(self, A: np.ndarray, rows: slice, op: np.ndarray | None = None) -> np.ndarray:
        """The tile of a block against itself: numpy runs ``A @ A.T`` as a symmetric rank-k update
        (half the products), then the tile is scaled by -2 (exact) and gets both alpha terms.
        ``op`` (the block's query operand) is not needed here; gram_bf16's maker uses it."""
        out, tmp = self._buffers(A.shape[0], A.shape[0])
        self._panels(A, A, out, tmp)
        out *= np.float32(-2.0)
        alpha = self.stats.alpha[rows]
        out += alpha[:, None]
        out += alpha[None, :]
        return out
