"""Exact k nearest rows on the CPU: float32 (or bf16) Gram tiles for candidates, float64 for the answer.

1. Candidates. The rows are multiplied in float32 tiles (gram_bound.TileMaker), or on a CPU
   with AMX and MKL in bf16 ones (gram_bf16.TileMakerBF16, for searches without wide lists);
   every tile value is a proven lower bound of the float64 distance and the bound plus ``w_i +
   w_j`` an upper bound (gram_bound's and gram_bf16's docstrings derive both). For each query row the search keeps the
   ``n_keep`` smallest lower bounds seen so far and T_i, the k-th smallest upper bound among them
   (an upper bound of the true k-th distance). A row whose lower bound exceeds T_i can never be
   among the k nearest and is dropped as soon as a tile shows it, which keeps the per-tile work
   small: one comparison pass and a merge of the few survivors. When every row is a query (a
   map's all-vs-all search) only the tiles on and above the diagonal are multiplied and each one
   feeds the lists of both sides.
2. Answer. The candidates of a query (every kept row with lower bound <= T_i: the k nearest and
   every near-tie the float32 bracket cannot separate) get float64 distances from the
   differences of the rows (mean removed, squares summed in float64, no cancellation), in one
   pass over each pair's two rows by the compiled pair_moments module; the k smallest win, ties
   broken by row index: the same lists as a float64 brute force. With ``moments`` the fourth
   central moment comes with it (the standard error of the KL estimate,
   geometry.kl_from_moments), so the map's KL table needs no second pass. Without the compiled
   module (numpy only) the distances are float64 Gram values with their own proven bracket,
   recomputed from the differences wherever two candidates' brackets overlap or a value is not
   known to 1e-10: the same order and values, three numpy passes slower.
3. Proof of completeness. If a query's kept list is full and its largest lower bound is still
   <= T_i, a dropped row might qualify: that query is searched again with a longer list
   (rare: the list holds n_keep >= k + 16 rows).

The wide lists (``n_wide`` nearest by the float32 bracket, with their midpoint distances) come
out of the same search: the t-SNE affinities of large maps are built from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pylogmap.mapping import gram_bf16, pair_moments
from pylogmap.mapping.gram_bound import (
    PANEL_COLUMNS,
    BlockReader,
    RowStats,
    TileMaker,
    panel_count,
    row_stats,
    with_coefficient,
)

# Rows per block: tiles of block x block float32 values (64 MiB at 4,096) and blocks of
# block x N float32 rows; larger blocks re-read the rows fewer times.
BLOCK_ROWS = 4096
# bf16 tiles have no symmetric product for the blocks on the diagonal (float32's ssyrk does half
# the work there): smaller blocks waste fewer products on the lower halves of those tiles.
BF16_BLOCK_ROWS = 2048
MIN_EXTRA = 16
_EXACT_BYTES = 4 * 2**20  # float64 rows per chunk of the exact stage: stays in cache


@dataclass
class KnnResult:
    """Exact k nearest rows of each query (rows of X), ascending, ties by index.

    ``sqdist`` = ``N Var(x_q - x_j)`` in float64; ``m4`` = fourth central moment of the
    difference (float64, only when asked); ``wide_idx``/``wide_sqdist``: the ``n_wide`` nearest by
    the float32 bracket (midpoint values, float64), None unless asked; ``n_candidates``: rows
    ranked in float64 per query; ``n_retried``: queries searched again with a longer list;
    ``gemm``: the tiles' arithmetic ("float32", or "bf16": gram_bf16.py).
    """

    queries: np.ndarray
    idx: np.ndarray
    sqdist: np.ndarray
    m4: np.ndarray | None
    wide_idx: np.ndarray | None
    wide_sqdist: np.ndarray | None
    n_candidates: np.ndarray
    n_retried: int
    coefficient: float
    gemm: str = "float32"


class _Lists:
    """Per-query running lists: the n_keep smallest lower bounds and their row ids, sorted."""

    def __init__(self, n_queries: int, n_keep: int, k: int, n_wide: int, width: np.ndarray):
        self.low = np.full((n_queries, n_keep), np.inf, dtype=np.float32)
        self.ids = np.full((n_queries, n_keep), -1, dtype=np.int64)
        self.filter = np.full(n_queries, np.inf, dtype=np.float32)
        self.k = k
        self.n_wide = n_wide
        self.width = width  # w of every row of X (float64)
        self._mask: np.ndarray | None = None

    def upper(self, slots: np.ndarray, w_q: np.ndarray) -> np.ndarray:
        """Upper bounds (float64) of the kept rows of queries ``slots`` (inf for empty slots)."""
        ids = self.ids[slots]
        w = np.where(ids >= 0, self.width[np.maximum(ids, 0)], np.inf)
        return self.low[slots].astype(np.float64) + w_q[:, None] + w

    def _refresh(self, slots: np.ndarray, w_q: np.ndarray) -> None:
        """The filter of each query: a row whose lower bound exceeds it is of no use. That is
        T_i (the k-th smallest upper bound), raised to the n_wide-th smallest lower bound when
        wide lists are kept, and lowered to the largest kept lower bound once the list is full."""
        kth = np.partition(self.upper(slots, w_q), self.k - 1, axis=1)[:, self.k - 1]
        low = self.low[slots]
        f = kth
        if self.n_wide:
            f = np.maximum(f, low[:, self.n_wide - 1].astype(np.float64))
        full = self.ids[slots, -1] >= 0
        f = np.where(full, np.minimum(f, low[:, -1].astype(np.float64)), f)
        # rounded up to float32: the comparison with the float32 tile never drops a candidate
        f32 = f.astype(np.float32)
        self.filter[slots] = np.where(f32 < f, np.nextafter(f32, np.float32(np.inf)), f32)

    def _merge(self, slots: np.ndarray, w_q: np.ndarray, cand_low: np.ndarray, cand_ids: np.ndarray) -> None:
        n_keep = self.low.shape[1]
        low = np.concatenate([self.low[slots], cand_low], axis=1)
        ids = np.concatenate([self.ids[slots], cand_ids], axis=1)
        if low.shape[1] > n_keep:
            part = np.argpartition(low, n_keep - 1, axis=1)[:, :n_keep]
            low = np.take_along_axis(low, part, axis=1)
            ids = np.take_along_axis(ids, part, axis=1)
        order = np.argsort(low, axis=1, kind="stable")
        self.low[slots] = np.take_along_axis(low, order, axis=1)
        self.ids[slots] = np.take_along_axis(ids, order, axis=1)
        self._refresh(slots, w_q)

    def absorb_first(self, slots: np.ndarray, w_q: np.ndarray, tile: np.ndarray, col_ids: np.ndarray,
                     transposed: bool = False) -> None:
        """A query block's first tile: the n_keep smallest of a sample of its columns set the
        lists and the filter, then the rest of the tile goes through the filter (a full
        partition of every row would cost more than the whole filtering)."""
        m = min(tile.shape[0] if transposed else tile.shape[1], max(4 * self.low.shape[1], 256))
        sample = np.ascontiguousarray(tile[:m].T) if transposed else tile[:, :m]
        self.absorb_dense(slots, w_q, sample, col_ids[:m])
        rest = tile[m:] if transposed else tile[:, m:]
        if rest.size:
            self.absorb(slots, w_q, rest, col_ids[m:], transposed=transposed)

    def absorb_dense(self, slots: np.ndarray, w_q: np.ndarray, tile: np.ndarray, col_ids: np.ndarray) -> None:
        """The n_keep smallest values of each row of a tile (rows = queries)."""
        m = min(self.low.shape[1], tile.shape[1])
        if m < tile.shape[1]:
            part = np.argpartition(tile, m - 1, axis=1)[:, :m]
        else:
            part = np.broadcast_to(np.arange(tile.shape[1]), tile.shape)
        self._merge(slots, w_q, np.take_along_axis(tile, part, axis=1), col_ids[part])

    def _passing(self, tile: np.ndarray, limits: np.ndarray) -> np.ndarray:
        """Flat indices of the tile values <= their limit (a broadcast row or column).

        The boolean mask goes into a buffer kept between tiles: a fresh 16 MiB mask per tile
        costs more in page faults than the comparison itself, and ``flatnonzero`` is a third of
        the 2-D ``nonzero``.
        """
        if self._mask is None or self._mask.size < tile.size:
            self._mask = np.empty(tile.size, dtype=bool)
        mask = self._mask[: tile.size].reshape(tile.shape)
        np.less_equal(tile, limits, out=mask)
        return np.flatnonzero(mask)

    def absorb(self, slots: np.ndarray, w_q: np.ndarray, tile: np.ndarray, col_ids: np.ndarray,
               transposed: bool = False) -> None:
        """Merge the tile values that pass the filter (rows = queries, or columns if transposed)."""
        if transposed:
            flat = self._passing(tile, self.filter[slots][None, :])
            c, r = np.divmod(flat, tile.shape[1])
            order = np.argsort(r, kind="stable")
            r, c = r[order], c[order]
            vals = tile[c, r]
        else:
            flat = self._passing(tile, self.filter[slots][:, None])
            r, c = np.divmod(flat, tile.shape[1])
            vals = tile[r, c]
        if r.size == 0:
            return
        counts = np.bincount(r, minlength=slots.size)
        hit = np.flatnonzero(counts)
        starts = np.cumsum(counts) - counts
        pos = np.arange(r.size) - starts[r]
        row = np.searchsorted(hit, r)
        width = int(counts.max())
        cand_low = np.full((hit.size, width), np.inf, dtype=np.float32)
        cand_ids = np.full((hit.size, width), -1, dtype=np.int64)
        cand_low[row, pos] = vals
        cand_ids[row, pos] = col_ids[c]
        self._merge(slots[hit], w_q[hit], cand_low, cand_ids)


def _tiles_all_vs_all(X, lists: _Lists, maker: TileMaker, stats: RowStats, block: int, tick) -> None:
    K = X.shape[0]
    starts = list(range(0, K, block))
    seen = np.zeros(len(starts), dtype=bool)
    read_a, read_b = BlockReader(X), BlockReader(X)
    for ia, a0 in enumerate(starts):
        a1 = min(a0 + block, K)
        A = read_a.read(a0, a1)
        A2 = maker.query_operand(A)
        rows_a = np.arange(a0, a1)
        for ib in range(ia, len(starts)):
            b0 = starts[ib]
            b1 = min(b0 + block, K)
            if ib == ia:
                tile = maker.lower_diagonal(A, slice(a0, a1), op=A2)
            else:
                tile = maker.lower(A2, slice(a0, a1), read_b.read(b0, b1), slice(b0, b1))
            rows_b = np.arange(b0, b1)
            if ib == ia:
                np.fill_diagonal(tile, np.inf)  # a model is never its own neighbour
            absorb = lists.absorb if seen[ia] else lists.absorb_first
            absorb(rows_a, stats.width[a0:a1], tile, rows_b)
            seen[ia] = True
            if ib != ia:
                absorb = lists.absorb if seen[ib] else lists.absorb_first
                absorb(rows_b, stats.width[b0:b1], tile, rows_a, transposed=True)
                seen[ib] = True
            tick()


def _tiles_queries(X, queries: np.ndarray, lists: _Lists, maker: TileMaker, stats: RowStats, block: int, tick) -> None:
    K = X.shape[0]
    read_b = BlockReader(X)
    for s0 in range(0, queries.size, block):
        qs = queries[s0 : s0 + block]
        A2 = maker.query_operand(np.ascontiguousarray(np.asarray(X[qs]), dtype=np.float32))
        slots = np.arange(s0, s0 + qs.size)
        for ib, b0 in enumerate(range(0, K, block)):
            b1 = min(b0 + block, K)
            tile = maker.lower(A2, qs, read_b.read(b0, b1), slice(b0, b1))
            inside = (qs >= b0) & (qs < b1)
            tile[np.flatnonzero(inside), qs[inside] - b0] = np.inf  # never itself
            absorb = lists.absorb_first if ib == 0 else lists.absorb
            absorb(slots, stats.width[qs], tile, np.arange(b0, b1))
            tick()


class _Rows64:
    """float64 copies of rows of X picked by index, into buffers kept between calls.

    The answer stage gathers about ``K x n_candidates`` rows a few MiB at a time; fresh arrays
    for every chunk page in more memory than the arithmetic touches (see gram_bound.BlockReader),
    and an out-of-core X reads each row straight into the buffer. float32 rows pass through a
    float32 buffer (exact in float64); float64 rows are copied as they are, never rounded.
    """

    def __init__(self, X, max_rows: int):
        self.X = X
        N = X.shape[1]
        self._direct = isinstance(X, np.ndarray) and X.dtype != np.float32
        self._f32 = None if self._direct else np.empty((max(1, max_rows), N), dtype=np.float32)
        self._f64 = np.empty((max(1, max_rows), N), dtype=np.float64)

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (any shape, flattened) as a float64 ``[idx.size, N]`` view of the buffer."""
        idx = np.asarray(idx, dtype=np.int64).ravel()
        if idx.size > self._f64.shape[0]:
            raise ValueError(f"{idx.size} rows asked of a {self._f64.shape[0]}-row buffer")
        out = self._f64[: idx.size]
        if self._direct:
            if self.X.dtype == np.float64:
                np.take(self.X, idx, axis=0, out=out)
            else:
                out[:] = self.X[idx]
            return out
        tmp = self._f32[: idx.size]
        if hasattr(self.X, "take_into"):
            self.X.take_into(idx, tmp)
        else:
            np.take(self.X, idx, axis=0, out=tmp)
        np.copyto(out, tmp)
        return out


def _differences(rows: _Rows64, query_rows: _Rows64, q: np.ndarray, c: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """float64 differences ``x_c - x_q`` with the difference of the row means removed: shape
    ``[len(q), c.shape[1], N]`` (exact for float32 rows: a float64 holds their difference); a
    view of ``rows``' buffer."""
    n, m = c.shape
    d = rows.take(c).reshape(n, m, -1)
    d -= query_rows.take(q)[:, None, :]
    d -= (mean[c] - mean[q][:, None])[:, :, None]
    return d


def _chunk_rows(width: int, N: int) -> int:
    """Queries per chunk of the exact stage: their candidates' float64 rows stay in cache."""
    return max(1, _EXACT_BYTES // (8 * N * max(1, width)))


def _chunks(nq: int, width: int, N: int):
    step = _chunk_rows(width, N)
    for s0 in range(0, nq, step):
        yield slice(s0, min(nq, s0 + step))


def _moments(X, queries: np.ndarray, cand: np.ndarray, mean: np.ndarray):
    """N * m2 and m4 of every (query, candidate) pair from the differences of the rows."""
    nq, width = cand.shape
    N = X.shape[1]
    sq = np.empty((nq, width))
    m4 = np.empty((nq, width))
    step = _chunk_rows(width, N)
    rows, query_rows = _Rows64(X, step * width), _Rows64(X, step)
    for sl in _chunks(nq, width, N):
        d = _differences(rows, query_rows, queries[sl], cand[sl], mean)
        sq[sl] = np.einsum("abn,abn->ab", d, d)
        np.square(d, out=d)
        m4[sl] = np.einsum("abn,abn->ab", d, d) / N
    return sq, m4


def _gram64(X, queries: np.ndarray, cand: np.ndarray, stats: RowStats):
    """float64 Gram-identity distances of every (query, candidate) pair and a bound of their error.

    ``|fl64(x.y) - x.y| <= gamma64_N (s_x + s_y) / 2`` (gram_bound's item 1 in float64), so the
    distance is within ``(gamma64_N + 16 * 2^-53)(s_x + s_y)`` of the float64 one, plus the
    rounding of the centring term. One float64 dot product per pair, no differences.
    """
    nq, width = cand.shape
    N = X.shape[1]
    dots = np.empty((nq, width))
    step = _chunk_rows(width, N)
    cand_rows, query_rows = _Rows64(X, step * width), _Rows64(X, step)
    for sl in _chunks(nq, width, N):
        c = cand[sl]
        rows = cand_rows.take(c).reshape(c.shape[0], width, N)
        xq = query_rows.take(queries[sl])
        dots[sl] = np.matmul(rows, xq[:, :, None])[:, :, 0]
    s_q = stats.sq64[queries][:, None]
    s_c = stats.sq64[cand]
    dmu = stats.mean[cand] - stats.mean[queries][:, None]
    centre = N * dmu * dmu
    dist = s_q + s_c - 2.0 * dots - centre
    g = N * 2.0**-53 / (1.0 - N * 2.0**-53) + 16 * 2.0**-53
    err = g * (s_q + s_c) + 2.0**-50 * centre
    return dist, err


def _ambiguous(dist: np.ndarray, err: np.ndarray, rtol: float) -> np.ndarray:
    """Pairs whose bracket ``dist +- err`` overlaps another candidate's of the same query, or is
    wider than ``rtol`` of the value: their order or their value needs the differences."""
    rows = np.arange(dist.shape[0])[:, None]
    order = np.argsort(dist, axis=1, kind="stable")
    lo = (dist - err)[rows, order]
    hi = (dist + err)[rows, order]
    edge = np.full((dist.shape[0], 1), np.inf)
    prev_hi = np.maximum.accumulate(np.concatenate([-edge, hi[:, :-1]], axis=1), axis=1)
    next_lo = np.minimum.accumulate(np.concatenate([lo[:, 1:], edge], axis=1)[:, ::-1], axis=1)[:, ::-1]
    amb = np.empty(dist.shape, dtype=bool)
    amb[rows, order] = (lo <= prev_hi) | (hi >= next_lo)
    return amb | (err > rtol * np.abs(dist))


def _exact(X, queries: np.ndarray, cand: np.ndarray, stats: RowStats, k: int, moments: bool, rtol: float = 1e-10):
    """The k nearest of each query's candidates, by float64 distances, ties by row index.

    With the compiled pair_moments module every candidate's distance (and fourth moment, with
    ``moments``) comes from the differences of the rows, in one pass over each pair's rows.
    Without it (numpy only): with ``moments`` the same from numpy's differences; without, from
    float64 Gram values with a proven bracket, and candidates whose brackets overlap (near-ties)
    or are wider than ``rtol`` of the value (near-identical rows) are recomputed from the
    differences, so order and values are those of the differences.
    """
    nq = cand.shape[0]
    big = np.iinfo(np.int64).max
    # ids ascending first, so that the stable sorts below break ties by row index
    c = np.where(cand >= 0, cand, big)
    c.sort(axis=1)
    valid = c != big
    width = max(1, int(valid.sum(axis=1).max()))
    c, valid = c[:, :width], valid[:, :width]
    safe = np.where(valid, c, queries[:, None])
    m4 = None
    if pair_moments.native() is not None:
        sq, m4 = pair_moments.pair_moments(X, queries, safe, stats.mean, fourth=moments, valid=valid)
    elif moments:
        sq, m4 = _moments(X, queries, safe, stats.mean)
    else:
        sq, err = _gram64(X, queries, safe, stats)
        amb = _ambiguous(np.where(valid, sq, np.inf), np.where(valid, err, 0.0), rtol) & valid
        a_q, a_c = np.nonzero(amb)
        rows, query_rows = _Rows64(X, 256), _Rows64(X, 256)
        for s0 in range(0, a_q.size, 256):
            sl = slice(s0, s0 + 256)
            d = _differences(rows, query_rows, queries[a_q[sl]], safe[a_q[sl], a_c[sl]][:, None], stats.mean)[:, 0]
            sq[a_q[sl], a_c[sl]] = np.einsum("an,an->a", d, d)
    sq[~valid] = np.inf
    rows = np.arange(nq)[:, None]
    best = np.argsort(sq, axis=1, kind="stable")[:, :k]
    got = sq[rows, best]
    idx = np.where(np.isfinite(got), safe[rows, best], -1)
    if m4 is not None:
        m4 = np.where(np.isfinite(got), m4[rows, best], np.nan)
    if best.shape[1] < k:  # fewer candidates than k: only for k > K - 1, refused by the callers
        pad = k - best.shape[1]
        idx = np.pad(idx, ((0, 0), (0, pad)), constant_values=-1)
        got = np.pad(got, ((0, 0), (0, pad)), constant_values=np.inf)
        m4 = np.pad(m4, ((0, 0), (0, pad)), constant_values=np.nan) if m4 is not None else None
    return idx, got, m4


def _final(lists: _Lists, slots: np.ndarray, w_q: np.ndarray, k: int, complete: bool):
    """Candidates (lower <= T) of the queries in ``slots`` and which of them overflowed
    (``complete``: every other row is in the list, so nothing was dropped)."""
    low = lists.low[slots].astype(np.float64)
    ids = lists.ids[slots]
    T = np.partition(lists.upper(slots, w_q), k - 1, axis=1)[:, k - 1]
    take = (low <= T[:, None]) & (ids >= 0)
    overflow = take[:, -1] & (not complete)  # the whole list qualifies: a dropped row might too
    cand = np.where(take, ids, -1)
    return cand, overflow


def rank_candidates(X, queries, cand, k: int, *, moments: bool = False, stats: RowStats | None = None) -> KnnResult:
    """The k nearest of given candidate rows (another index's), by float64 distances.

    ``cand[i]`` lists rows of X for query ``queries[i]`` (-1 = none; the query itself is
    ignored). Used for FAISS and IVF candidates; the result is exact among the candidates.
    """
    queries = np.asarray(queries, dtype=np.int64).ravel()
    cand = np.where(np.asarray(cand) == queries[:, None], -1, cand).astype(np.int64)
    if stats is None:
        stats = row_stats(X, 1)
    n_candidates = (cand >= 0).sum(axis=1)
    idx, sqdist, m4 = _exact(X, queries, cand, stats, int(k), moments)
    return KnnResult(queries=queries, idx=idx, sqdist=sqdist, m4=m4, wide_idx=None, wide_sqdist=None,
                     n_candidates=n_candidates, n_retried=0, coefficient=stats.coefficient)


def search(
    X,
    k: int,
    *,
    queries: np.ndarray | None = None,
    n_wide: int = 0,
    moments: bool = False,
    block: int | None = None,
    panel_columns: int = PANEL_COLUMNS,
    n_keep: int | None = None,
    gemm: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> KnnResult:
    """Exact k nearest rows of every query row of X (all rows by default), self excluded.

    X: float32 or float64 ``[K, N]`` ndarray or rowstore.DiskRows (read a block of rows at a time;
    the search never holds more than two row blocks, one tile and the lists). ``n_wide`` > 0 also returns
    the n_wide nearest by the float32 bracket (for t-SNE). ``gemm``: "auto", "bf16" or "float32"
    tiles (None: PYLOGMAP_GEMM; gram_bf16.use_bf16 decides "auto"; wide lists always need
    float32). ``progress(done, total)`` is called after every tile.
    """
    K, N = X.shape
    all_rows = queries is None
    queries = np.arange(K, dtype=np.int64) if all_rows else np.asarray(queries, dtype=np.int64).ravel()
    panels = panel_count(N, panel_columns)
    stats = row_stats(X, panels)
    k = int(min(k, K - 1))
    n_wide = int(min(n_wide, K - 1))
    bf16 = n_wide == 0 and K > 1 and gram_bf16.use_bf16(N, float(stats.sq.max()), gemm)
    if bf16:
        stats = with_coefficient(stats, gram_bf16.margin_coefficient(N), N, gram_bf16.ABSOLUTE)
        maker = gram_bf16.TileMakerBF16(stats)
    else:
        maker = TileMaker(stats, N)
    if n_keep is None:
        # the bf16 bracket is ~40x wider: ~27 candidates per query for k = 10 (gram_bf16.py)
        n_keep = max(k + MIN_EXTRA, 2 * k, n_wide) if not bf16 else max(4 * k + 2 * MIN_EXTRA, n_wide)
    n_keep = int(min(n_keep, K - 1))
    if block is None:
        block = BF16_BLOCK_ROWS if bf16 else BLOCK_ROWS
    block = max(1, int(block))
    n_blocks = -(-K // block)
    total = n_blocks * (n_blocks + 1) // 2 if all_rows else (-(-queries.size // block)) * n_blocks
    done = [0]

    def tick():
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    lists = _Lists(queries.size, n_keep, k, n_wide, stats.width)
    if all_rows:
        _tiles_all_vs_all(X, lists, maker, stats, block, tick)
    else:
        _tiles_queries(X, queries, lists, maker, stats, block, tick)
    slots = np.arange(queries.size)
    cand, overflow = _final(lists, slots, stats.width[queries], k, complete=n_keep >= K - 1)
    retried = np.flatnonzero(overflow)
    wide_idx = wide_sq = None
    if n_wide:
        wide_idx = lists.ids[:, :n_wide].copy()
        low = lists.low[:, :n_wide].astype(np.float64)
        mid = low + 0.5 * (stats.width[queries][:, None] + stats.width[np.maximum(wide_idx, 0)])
        wide_sq = np.maximum(mid, 0.0)
    del lists
    if retried.size:
        # in float32: a list that overflowed the bf16 bracket is one the finer bracket may hold
        again = search(X, k, queries=queries[retried], moments=False, block=block, panel_columns=panel_columns,
                       n_keep=min(K - 1, 4 * n_keep), gemm="float32")
        # the retried queries' candidates: their exact k (a superset is not needed: exact already)
        cand = cand.copy()
        pad = max(cand.shape[1], again.idx.shape[1])
        if pad > cand.shape[1]:
            cand = np.pad(cand, ((0, 0), (0, pad - cand.shape[1])), constant_values=-1)
        cand[retried] = -1
        cand[retried, : again.idx.shape[1]] = again.idx
    n_candidates = (cand >= 0).sum(axis=1)
    idx, sqdist, m4 = _exact(X, queries, cand, stats, k, moments)
    return KnnResult(queries=queries, idx=idx, sqdist=sqdist, m4=m4, wide_idx=wide_idx, wide_sqdist=wide_sq,
                     n_candidates=n_candidates, n_retried=int(retried.size), coefficient=stats.coefficient,
                     gemm="bf16" if bf16 else "float32")
