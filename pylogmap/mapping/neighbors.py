"""Nearest models on the map: exact search at GEMM speed, FAISS on a GPU, IVF for huge maps.

The squared Euclidean distance between rows of Q is ``2 N`` times the KL estimate
(geometry.py), so nearest neighbours in Q are the models with the smallest estimated KL.

- ``index="exact"`` (default): exact search with the faster backend (``exact_backend``): FAISS
  ``IndexFlatL2`` on the GPU when the installed faiss has GPU support and a GPU is present; on
  the CPU the float32 panel-GEMM search of knn_search.py for the all-vs-all search of a map
  (symmetric tiles: half the products), FAISS ``IndexFlatL2`` for a subset of queries. On a CPU
  with AMX-BF16 and MKL installed (``pylogmap[mkl]``) knn_search's tiles are bf16 products
  (gram_bf16.py; backend "numpy-bf16"), twice as fast for the same lists.
- ``index="numpy"``: always knn_search.py (numpy + BLAS); ``index="faiss"``: always FAISS.
- Either way the float32 (or bf16) distances only choose candidates, with a margin proven from
  the arithmetic's error bound (gram_bound.py and gram_bf16.py derive it; for FAISS, whose single
  sgemm sums N products in any order, the depth is N), and the candidates are ranked by float64
  distances: the lists are those of a float64 brute force, near-ties included.
- ``index="ivf-pca"``: approximate, for very large populations: PCA to ``pca_dim`` dimensions
  (trained on a sample of rows) + inverted file (IVF) with ``nlist`` cells, ``nprobe`` visited,
  ``overfetch`` x k candidates re-ranked exactly. ``measure_recall`` reports its recall
  against exact search.

A model is never its own neighbour (its row is removed by index, even when another model has
an identical row). ``map_neighbors`` is the one search of ``pylogmap map``: the k lists with KL
estimates and delta-method standard errors from the same pass, and the wider lists t-SNE's
affinities are built from.

faiss is imported inside functions only (pylogmap --help stays instant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pylogmap.errors import PylogmapError
from pylogmap.mapping import geometry, knn_search
from pylogmap.mapping.gram_bound import U32, margin_coefficient, row_stats

INDEX_KINDS = ("exact", "faiss", "numpy", "ivf-pca")


# --------------------------------------------------------------------------------------------
# FAISS plumbing
# --------------------------------------------------------------------------------------------


def _faiss():
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - faiss-cpu is a dependency
        raise PylogmapError(
            "FAISS is not installed; install faiss-cpu (or faiss-gpu), or use index='numpy'."
        ) from err
    return faiss


def faiss_gpu_available() -> bool:
    """True when the installed faiss was built with GPU support and sees at least one GPU."""
    try:
        faiss = _faiss()
    except PylogmapError:
        return False
    if not hasattr(faiss, "StandardGpuResources") or not hasattr(faiss, "get_num_gpus"):
        return False
    try:
        return faiss.get_num_gpus() > 0
    except Exception:  # pragma: no cover - driver problems
        return False


def _use_gpu(gpu) -> bool:
    if gpu == "auto":
        return faiss_gpu_available()
    if gpu in (True, "yes", "on", "true", 1):
        if not faiss_gpu_available():
            raise PylogmapError(
                "GPU search was requested but the installed faiss has no GPU support or sees no GPU; "
                "install faiss-gpu on a CUDA machine, or pass gpu='auto' / --no-gpu."
            )
        return True
    return False


# --------------------------------------------------------------------------------------------
# Candidate generation
# --------------------------------------------------------------------------------------------


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="model", leave=False)



def _search_in_blocks(index, X, queries, n_cand, desc, progress, block):
    """Candidate ids (and FAISS's float32 distances) of the rows `queries` of X, a block of
    queries at a time (bounded memory, and a progress bar that moves)."""
    out = np.empty((queries.size, n_cand), dtype=np.int64)
    dist = np.empty((queries.size, n_cand), dtype=np.float32)
    bar = _progress(queries.size, desc, progress)
    for start in range(0, queries.size, block):
        q = queries[start : start + block]
        d, idx = index.search(np.ascontiguousarray(X[q], dtype=np.float32), n_cand)
        out[start : start + q.size] = idx
        dist[start : start + q.size] = d
        if bar is not None:
            bar.update(q.size)
    if bar is not None:
        bar.close()
    return out, dist


def _flat_index(X, gpu: bool, block: int = 8192):
    faiss = _faiss()
    index = faiss.IndexFlatL2(X.shape[1])
    if gpu:
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
    for start in range(0, X.shape[0], block):
        index.add(np.ascontiguousarray(X[start : start + block], dtype=np.float32))
    return index


def _faiss_candidates(X, queries, k, n_keep, gpu, progress, block=2048):
    """Every row that can be among the k nearest of each query, from FAISS IndexFlatL2.

    FAISS computes ``|x|^2 + |y|^2 - 2 x.y`` in float32 with one sgemm over the N texts and
    float32 norms: gram_bound's bracket with summation depth N for both (``2 gamma_N + 24u``
    per unit of squared norm), and clamps negative values to 0, which only moves them towards
    the true value. Rows whose lower bound does not exceed the k-th smallest upper bound are
    candidates; when the last row FAISS returned still qualifies, the query is asked again for
    four times as many. Returns ``(cand, wide_idx, wide_sq, stats)``: candidate ids (-1 padded),
    FAISS's ordered lists (self removed) with their float32 squared distances, and the row stats.
    """
    K, N = X.shape
    stats = row_stats(X, 1)
    c = margin_coefficient(N, 1) + N * U32 / (1.0 - N * U32)
    e = c * stats.sq + 2.0 * N * stats.mean**2 + 2.0**-50 * stats.sq
    index = _flat_index(X, gpu)
    n = int(min(K, n_keep + 1))  # +1: the query itself comes back
    pending = np.asarray(queries, dtype=np.int64)
    cand = np.full((pending.size, n_keep), -1, dtype=np.int64)
    wide_idx = np.full((pending.size, n_keep), -1, dtype=np.int64)
    wide_sq = np.full((pending.size, n_keep), np.inf)
    slots = np.arange(pending.size)
    while pending.size:
        ids, dist = _search_in_blocks(index, X, pending, n, "neighbours (faiss)", progress, block)
        # drop the query itself (by index: an identical row of another model stays)
        own = ids == pending[:, None]
        order = np.argsort(own | (ids < 0), axis=1, kind="stable")
        ids = np.take_along_axis(np.where(own, -1, ids), order, axis=1)[:, : n - 1]
        d = np.take_along_axis(dist.astype(np.float64), order, axis=1)[:, : n - 1]
        d[ids < 0] = np.inf
        we = np.where(ids >= 0, e[np.maximum(ids, 0)], np.inf)
        upper = d + e[pending][:, None] + we
        lower = d - e[pending][:, None] - we
        T = np.partition(upper, k - 1, axis=1)[:, k - 1]
        take = (lower <= T[:, None]) & (ids >= 0)
        again = take[:, -1] & (n < K)
        done = ~again
        if cand.shape[1] < ids.shape[1]:
            grow = ids.shape[1] - cand.shape[1]
            cand = np.pad(cand, ((0, 0), (0, grow)), constant_values=-1)
            wide_idx = np.pad(wide_idx, ((0, 0), (0, grow)), constant_values=-1)
            wide_sq = np.pad(wide_sq, ((0, 0), (0, grow)), constant_values=np.inf)
        w = ids.shape[1]
        cand[slots[done], :w] = np.where(take, ids, -1)[done]
        wide_idx[slots[done], :w] = ids[done]
        wide_sq[slots[done], :w] = d[done]
        pending, slots = pending[again], slots[again]
        n = int(min(K, 4 * n))
    return cand, wide_idx, wide_sq, stats


@dataclass
class ApproxParams:
    """Parameters of the ``ivf-pca`` index (defaults scale with the number of models)."""

    pca_dim: int | None = None
    nlist: int | None = None
    nprobe: int | None = None
    train_size: int = 5_000
    overfetch: int = 4
    seed: int = 0

    def resolved(self, K: int, N: int) -> dict:
        pca_dim = self.pca_dim or min(256, N, max(2, K - 1))
        pca_dim = int(min(pca_dim, N, max(1, min(K, self.train_size) - 1)))
        nlist = self.nlist or int(max(1, min(4 * math.sqrt(K), K // 39)))
        nprobe = self.nprobe or int(max(1, min(nlist, max(8, nlist // 8))))
        return {
            "pca_dim": pca_dim,
            "nlist": int(nlist),
            "nprobe": int(min(nprobe, nlist)),
            "train_size": int(min(self.train_size, K)),
            "overfetch": int(self.overfetch),
            "seed": int(self.seed),
        }


def pca_projection(X32: np.ndarray, dim: int, train_rows: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top-``dim`` principal directions of ``X32[train_rows]`` (randomized SVD).

    scikit-learn's randomized SVD costs about 10 passes of ``n_train x N x dim``; FAISS's
    PCAMatrix was 10-50x slower here (dense eigensolver).
    """
    from sklearn.utils.extmath import randomized_svd
    from threadpoolctl import threadpool_limits

    S = np.ascontiguousarray(X32[train_rows], dtype=np.float32)
    mean = S.mean(axis=0, dtype=np.float64).astype(np.float32)
    S -= mean
    dim = int(min(dim, S.shape[0], S.shape[1]))
    # One BLAS thread: the QR/LU steps of randomized SVD on small panels slow down 50x when
    # OpenBLAS threads compete for busy cores, and gain little when they do not.
    with threadpool_limits(limits=1, user_api="blas"):
        _, _, Vt = randomized_svd(S, n_components=dim, n_iter=4, random_state=seed)
    return mean, np.ascontiguousarray(Vt.T, dtype=np.float32)


def _ivf_pca_candidates(X32, queries, n_cand, gpu, params: dict, progress, block=8192):
    faiss = _faiss()
    K, N = X32.shape
    rng = np.random.default_rng(params["seed"])
    train_rows = np.sort(rng.choice(K, size=params["train_size"], replace=False))
    mean, P = pca_projection(X32, params["pca_dim"], train_rows, params["seed"])
    dim = P.shape[1]
    Z = np.empty((K, dim), dtype=np.float32)
    for start in range(0, K, block):
        Z[start : start + block] = (np.asarray(X32[start : start + block], dtype=np.float32) - mean) @ P
    quantizer = faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, params["nlist"], faiss.METRIC_L2)
    if gpu:
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
    # k-means wants ~40 points per cell; the projected rows are cheap, so train on enough of them
    n_ivf = min(K, max(params["train_size"], 40 * params["nlist"]))
    ivf_rows = train_rows if n_ivf <= train_rows.size else np.sort(rng.choice(K, size=n_ivf, replace=False))
    index.train(Z[ivf_rows])
    index.add(Z)
    faiss.ParameterSpace().set_index_parameter(index, "nprobe", params["nprobe"])
    return _search_in_blocks(index, Z, queries, n_cand, "neighbours (ivf-pca)", progress, block)[0]


def exact_backend(index: str, use_gpu: bool, all_vs_all: bool) -> str:
    """Which exact search runs: ``"faiss"`` (IndexFlatL2, CPU or GPU) or ``"numpy"`` (knn_search).

    ``index="exact"`` picks the faster one: FAISS on a GPU; on the CPU, knn_search's symmetric
    tiles for the all-vs-all search of a map (half the products of a query-by-database search)
    and FAISS for a subset of queries.
    """
    if index == "faiss":
        return "faiss"
    if index == "numpy":
        return "numpy"
    if use_gpu or not all_vs_all:
        return "faiss"
    return "numpy"


def _checked(Q, k: int, queries, index: str):
    if index not in INDEX_KINDS:
        raise PylogmapError(f"unknown index {index!r}; choose one of {', '.join(INDEX_KINDS)}.")
    if not hasattr(Q, "shape"):
        Q = np.asarray(Q)
    if len(Q.shape) != 2:
        raise PylogmapError(f"Q must be 2-D [models, texts]; got shape {Q.shape}.")
    K = Q.shape[0]
    k = int(k)
    if k < 1:
        raise PylogmapError(f"k must be at least 1; got {k}.")
    if K < 2:
        raise PylogmapError("a map needs at least 2 models to have neighbours.")
    if k > K - 1:
        raise PylogmapError(f"k={k} but the map has only {K - 1} other models; use -k {K - 1} or less.")
    queries = np.arange(K, dtype=np.int64) if queries is None else np.asarray(queries, dtype=np.int64).ravel()
    if queries.size and (queries.min() < 0 or queries.max() >= K):
        raise PylogmapError(f"query row out of range for a map of {K} models.")
    return Q, k, queries


@dataclass
class SearchResult:
    """One neighbour search: the k lists (exact), optional fourth moments and wide lists."""

    idx: np.ndarray
    sqdist: np.ndarray
    m4: np.ndarray | None
    wide_idx: np.ndarray | None
    wide_sqdist: np.ndarray | None
    backend: str
    mean_candidates: float


def search(Q, k: int, *, index: str = "exact", gpu="auto", queries=None, approx: ApproxParams | None = None,
           extra: int = 4, n_wide: int = 0, moments: bool = False, progress: bool = False) -> SearchResult:
    """The search behind nearest_neighbors and map_neighbors (see the module docstring).

    Q may be an ndarray or an out-of-core rowstore.DiskRows. ``n_wide``: also the n_wide nearest
    by float32 distances (t-SNE affinities); ``moments``: also m4 of the k lists (SE of the KL).
    """
    Q, k, queries = _checked(Q, k, queries, index)
    K, N = Q.shape
    n_wide = int(min(n_wide, K - 1))
    use_gpu = _use_gpu(gpu) if index != "numpy" else False
    bar = _progress(0, "neighbours", progress) if progress else None

    def tick(done, total):
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        if index == "ivf-pca":
            k_all = max(k, n_wide)
            params = (approx or ApproxParams()).resolved(K, N)
            n_cand = min(K, max(k_all + 1 + extra, params["overfetch"] * (k_all + 1)))
            cand = _ivf_pca_candidates(Q, queries, n_cand, use_gpu, params, progress)
            res = knn_search.rank_candidates(Q, queries, cand, k_all, moments=moments)
            wide = (res.idx, res.sqdist) if n_wide else (None, None)
            m4 = res.m4[:, :k] if res.m4 is not None else None
            return SearchResult(res.idx[:, :k], res.sqdist[:, :k], m4, *wide, backend="ivf-pca",
                                mean_candidates=float(n_cand))
        backend = exact_backend(index, use_gpu, queries.size == K)
        if backend == "faiss":
            n_keep = max(k + knn_search.MIN_EXTRA, 2 * k, n_wide, k + extra)
            cand, wide_idx, wide_sq, stats = _faiss_candidates(Q, queries, k, n_keep, use_gpu, progress)
            res = knn_search.rank_candidates(Q, queries, cand, k, moments=moments, stats=stats)
            wide = (wide_idx[:, :n_wide], wide_sq[:, :n_wide]) if n_wide else (None, None)
            return SearchResult(res.idx, res.sqdist, res.m4, *wide, backend="faiss-gpu" if use_gpu else "faiss",
                                mean_candidates=float(res.n_candidates.mean()))
        res = knn_search.search(Q, k, queries=None if queries.size == K and np.array_equal(queries, np.arange(K))
                                else queries, n_wide=n_wide, moments=moments, progress=tick)
        return SearchResult(res.idx, res.sqdist, res.m4, res.wide_idx, res.wide_sqdist,
                            backend="numpy" if res.gemm == "float32" else "numpy-bf16",
                            mean_candidates=float(res.n_candidates.mean()))
    finally:
        if bar is not None:
            bar.close()


def nearest_neighbors(
    Q,
    k: int,
    *,
    index: str = "exact",
    gpu="auto",
    queries=None,
    approx: ApproxParams | None = None,
    extra: int = 4,
    progress: bool = False,
):
    """The k nearest rows of every query row of Q (all rows by default), self excluded.

    Returns ``(idx, sqdist)``: int64 ``[n_queries, k]`` row indices of Q and float64
    ``[n_queries, k]`` squared distances ``||q_i - q_j||^2 = 2 N KL_ij`` (row means removed, as
    in the KL estimate) in float64, ascending, ties broken by row index. ``extra``: at least this
    many candidates beyond k for the approximate index (the exact ones take every candidate the
    float32 error bound cannot rule out).
    """
    res = search(Q, k, index=index, gpu=gpu, queries=queries, approx=approx, extra=extra, progress=progress)
    return res.idx, res.sqdist


def brute_force_neighbors(Q: np.ndarray, k: int, queries=None):
    """Exact neighbours from float64 all-pairs distances (geometry.iter_pairwise_kl).

    The reference used by tests and by measure_recall; costs a float64 Gram computation.
    """
    K, N = Q.shape
    queries = np.arange(K) if queries is None else np.asarray(queries, dtype=np.int64).ravel()
    idx = np.empty((queries.size, k), dtype=np.int64)
    dist = np.empty((queries.size, k), dtype=np.float64)
    pos = 0
    for r, kl in geometry.iter_pairwise_kl(Q, queries):
        kl = kl.copy()
        kl[np.arange(r.size), r] = np.inf
        for a in range(r.size):
            o = np.lexsort((np.arange(K), kl[a]))[:k]
            idx[pos + a] = o
            dist[pos + a] = kl[a, o] * 2.0 * N
        pos += r.size
    return idx, dist


def recall(approx_idx: np.ndarray, exact_idx: np.ndarray) -> float:
    """Fraction of the exact k nearest neighbours that the approximate search found."""
    approx_idx = np.asarray(approx_idx)
    exact_idx = np.asarray(exact_idx)
    hits = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx_idx, exact_idx))
    return hits / exact_idx.size


def measure_recall(Q: np.ndarray, k: int, *, n_queries: int = 200, seed: int = 0, approx=None, gpu="auto") -> dict:
    """Recall@k of the ``ivf-pca`` index against exact search on a random sample of queries."""
    K = Q.shape[0]
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(K, size=min(n_queries, K), replace=False))
    exact_idx, exact_d = brute_force_neighbors(Q, k, queries)
    approx_idx, approx_d = nearest_neighbors(Q, k, index="ivf-pca", gpu=gpu, queries=queries, approx=approx)
    params = (approx or ApproxParams()).resolved(K, Q.shape[1])
    # Near-ties make "the" exact top k arbitrary on maps with many equidistant models; the ratio
    # of the KL of the k-th neighbour found to the exact k-th says how much farther the misses are.
    kth = exact_d[:, -1]
    ok = kth > 0
    ratio = float(np.mean(approx_d[ok, -1] / kth[ok])) if ok.any() else 1.0
    return {
        "recall": recall(approx_idx, exact_idx),
        "kth_kl_ratio": ratio,
        "k": int(k),
        "n_queries": int(queries.size),
        **params,
    }


# --------------------------------------------------------------------------------------------
# KL estimates for neighbour lists
# --------------------------------------------------------------------------------------------


@dataclass
class NeighborTable:
    """Neighbour lists with KL estimates: all arrays ``[n_queries, k]`` (rows of Q)."""

    queries: np.ndarray
    idx: np.ndarray
    kl_nats: np.ndarray
    se_nats: np.ndarray
    mean_bytes: float

    @property
    def kl_bpb(self) -> np.ndarray:
        return geometry.to_bits_per_byte(self.kl_nats, self.mean_bytes)

    @property
    def se_bpb(self) -> np.ndarray:
        return geometry.to_bits_per_byte(self.se_nats, self.mean_bytes)


def with_kl(Q: np.ndarray, queries, idx: np.ndarray, mean_bytes: float = float("nan")) -> NeighborTable:
    """Attach KL estimates and standard errors (from the full rows) to neighbour lists."""
    queries = np.asarray(queries, dtype=np.int64)
    kl, se = geometry.kl_estimate_lists(Q, queries, idx)
    return NeighborTable(queries=queries, idx=idx, kl_nats=kl, se_nats=se, mean_bytes=mean_bytes)


def neighbors_of(Q: np.ndarray, row: int, k: int, mean_bytes: float = float("nan")) -> NeighborTable:
    """Exact neighbours of one model (float64, one pass over Q), with KL and SE."""
    K = Q.shape[0]
    if k > K - 1:
        raise PylogmapError(f"k={k} but the map has only {K - 1} other models; use -k {K - 1} or less.")
    idx, _ = brute_force_neighbors(Q, k, [row])
    return with_kl(Q, [row], idx, mean_bytes)


@dataclass
class MapNeighbors:
    """The one neighbour search of a map: the k lists with KL and SE, and the wide lists."""

    table: NeighborTable
    sqdist: np.ndarray
    wide_idx: np.ndarray | None
    wide_sqdist: np.ndarray | None
    backend: str
    mean_candidates: float


def map_neighbors(Q, k: int, *, index: str = "exact", gpu="auto", n_wide: int = 0,
                  mean_bytes: float = float("nan"), approx: ApproxParams | None = None,
                  progress: bool = False) -> MapNeighbors:
    """Every model's k nearest with KL estimates and delta-method SEs, computed in the pass that
    ranks the candidates (no second pass over the rows), plus the ``n_wide`` nearest for t-SNE."""
    res = search(Q, k, index=index, gpu=gpu, approx=approx, n_wide=n_wide, moments=True, progress=progress)
    N = Q.shape[1]
    m2 = res.sqdist / N
    kl, se = geometry.kl_from_moments(m2, res.m4, N)
    valid = res.idx >= 0
    table = NeighborTable(queries=np.arange(Q.shape[0], dtype=np.int64), idx=res.idx,
                          kl_nats=np.where(valid, kl, np.nan), se_nats=np.where(valid, se, np.nan),
                          mean_bytes=mean_bytes)
    return MapNeighbors(table=table, sqdist=res.sqdist, wide_idx=res.wide_idx, wide_sqdist=res.wide_sqdist,
                        backend=res.backend, mean_candidates=res.mean_candidates)
