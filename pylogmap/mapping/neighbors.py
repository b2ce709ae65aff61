"""Nearest models on the map: FAISS search over the rows of Q, re-ranked exactly.

The squared Euclidean distance between rows of Q is ``2 N`` times the KL estimate
(geometry.py), so nearest neighbours in Q are the models with the smallest estimated KL.

- ``index="exact"`` (default): exact search with the faster backend (``exact_backend``): FAISS
  ``IndexFlatL2`` on the GPU when the installed faiss has GPU support and a GPU is present; on
  the CPU the symmetric numpy blocks below for the all-vs-all search of a map, FAISS
  ``IndexFlatL2`` for a subset of queries. The float32 Gram-based distances of either are only
  used to pick candidates (k + a few); the candidates are then re-ranked with distances
  recomputed from the rows themselves (differences summed in float64), so near-identical models
  (fp16 vs fp32 copies of one model) come out in the right order with the right KL.
- ``index="faiss"``: always FAISS ``IndexFlatL2`` (GPU when available).
- ``index="numpy"``: numpy float32 matrix products; for all-vs-all only the blocks on and
  above the diagonal are multiplied (the distance matrix is symmetric).
- ``index="ivf-pca"``: approximate, for very large populations: PCA to ``pca_dim`` dimensions
  (trained on a sample of rows) + inverted file (IVF) with ``nlist`` cells, ``nprobe`` visited,
  ``overfetch`` x k candidates re-ranked exactly. ``measure_recall`` reports its recall
  against exact search.

A model is never its own neighbour (its row is removed by index, even when another model has
an identical row). Results carry KL estimates and delta-method standard errors computed from
the full rows (geometry.kl_estimate_pairs).

faiss is imported inside functions only (pylogmap --help stays instant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pylogmap.mapping import geometry
from pylogmap.errors import PylogmapError

INDEX_KINDS = ("exact", "faiss", "numpy", "ivf-pca")
_GATHER_BYTES = 64 * 2**20


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


def _as_f32(Q: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(Q, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Candidate generation
# --------------------------------------------------------------------------------------------


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="model", leave=False)



def _search_in_blocks(index, X, queries, n_cand, desc, progress, block):
    """Candidate ids of the rows `queries` of X from a FAISS index, a block of queries at a time
    (bounded memory for the distance matrix FAISS returns, and a progress bar that moves)."""
    out = np.empty((queries.size, n_cand), dtype=np.int64)
    bar = _progress(queries.size, desc, progress)
    for start in range(0, queries.size, block):
        q = queries[start : start + block]
        _, idx = index.search(X[q], n_cand)
        out[start : start + q.size] = idx
        if bar is not None:
            bar.update(q.size)
    if bar is not None:
        bar.close()
    return out

def _flat_candidates(X32, queries, n_cand, gpu, progress, block=2048):
    faiss = _faiss()
    index = faiss.IndexFlatL2(X32.shape[1])
    if gpu:
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
    index.add(X32)
    return _search_in_blocks(index, X32, queries, n_cand, "neighbours (faiss)", progress, block)


def _merge_topk(best_d, best_i, dist, ids, n_cand):
    """Merge a block of distances (rows x cols, column ids ``ids``) into running top lists."""
    cat_d = np.concatenate([best_d, dist], axis=1)
    cat_i = np.concatenate([best_i, np.broadcast_to(ids, dist.shape)], axis=1)
    part = np.argpartition(cat_d, n_cand - 1, axis=1)[:, :n_cand]
    return np.take_along_axis(cat_d, part, axis=1), np.take_along_axis(cat_i, part, axis=1)


def _numpy_candidates(X32, queries, n_cand, progress, block=2048):
    """Exact candidates with numpy float32 matrix products.

    When every row is a query (the map's all-vs-all case) the distance matrix is symmetric:
    only the blocks on and above the diagonal are multiplied (half the flops of a query-by-
    database search such as IndexFlatL2) and each block updates the lists of both sides.
    """
    K = X32.shape[0]
    sq = np.einsum("ij,ij->i", X32, X32, dtype=np.float64).astype(np.float32)
    n_cand = min(n_cand, K)
    all_rows = queries.size == K and np.array_equal(queries, np.arange(K))
    if not all_rows:
        out = np.empty((queries.size, n_cand), dtype=np.int64)
        for start in range(0, queries.size, block):
            q = queries[start : start + block]
            dist = X32[q] @ X32.T
            dist *= -2.0
            dist += sq[None, :]
            dist += sq[q, None]
            out[start : start + q.size] = np.argpartition(dist, n_cand - 1, axis=1)[:, :n_cand]
        return out
    best_d = np.full((K, n_cand), np.inf, dtype=np.float32)
    best_i = np.full((K, n_cand), -1, dtype=np.int64)
    starts = list(range(0, K, block))
    bar = _progress(len(starts) * (len(starts) + 1) // 2, "neighbours (numpy blocks)", progress)
    for a0 in starts:
        a1 = min(a0 + block, K)
        A = X32[a0:a1]
        for b0 in starts:
            if b0 < a0:
                continue
            b1 = min(b0 + block, K)
            dist = A @ X32[b0:b1].T
            dist *= -2.0
            dist += sq[a0:a1, None]
            dist += sq[None, b0:b1]
            ids_b = np.arange(b0, b1)
            best_d[a0:a1], best_i[a0:a1] = _merge_topk(best_d[a0:a1], best_i[a0:a1], dist, ids_b, n_cand)
            if b0 != a0:
                ids_a = np.arange(a0, a1)
                best_d[b0:b1], best_i[b0:b1] = _merge_topk(best_d[b0:b1], best_i[b0:b1], dist.T, ids_a, n_cand)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return best_i


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

    S = np.asarray(X32[train_rows], dtype=np.float32)
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
        Z[start : start + block] = (X32[start : start + block] - mean) @ P
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
    return _search_in_blocks(index, Z, queries, n_cand, "neighbours (ivf-pca)", progress, block)


# --------------------------------------------------------------------------------------------
# Exact re-ranking
# --------------------------------------------------------------------------------------------


def _rerank(Q, queries, cand, k):
    """Exact squared distances for the candidates, computed from the rows (differences, no
    Gram identity); drop self and invalid ids; keep the k nearest, ties broken by row index.

    Differences are taken in Q's dtype and summed in float64 (geometry.kl_moments): exact to
    the precision Q is stored in, unlike the float32 ``|x|^2 + |y|^2 - 2 x.y`` of the search.
    """
    K, N = Q.shape
    nq, nc = cand.shape
    idx_out = np.full((nq, k), -1, dtype=np.int64)
    d_out = np.full((nq, k), np.inf, dtype=np.float64)
    step = max(1, _GATHER_BYTES // (Q.dtype.itemsize * N * max(1, nc) * 2))
    for start in range(0, nq, step):
        q = queries[start : start + step]
        c = cand[start : start + step]
        valid = (c >= 0) & (c != q[:, None])
        # sort candidates by id first so that the stable sort below breaks ties by index
        c = np.where(valid, c, K)
        order = np.argsort(c, axis=1, kind="stable")
        c = np.take_along_axis(c, order, axis=1)
        valid = c < K
        safe = np.where(valid, c, 0)
        diff = np.asarray(Q[safe.ravel()]).reshape(q.size, nc, N)
        diff -= np.asarray(Q[q])[:, None, :]
        m2, _ = geometry.kl_moments(diff, second_only=True)
        dist = m2 * N
        dist[~valid] = np.inf
        best = np.argsort(dist, axis=1, kind="stable")[:, :k]
        got_d = np.take_along_axis(dist, best, axis=1)
        got_i = np.take_along_axis(safe, best, axis=1)
        got_i[~np.isfinite(got_d)] = -1
        idx_out[start : start + q.size, : got_i.shape[1]] = got_i
        d_out[start : start + q.size, : got_d.shape[1]] = got_d
    return idx_out, d_out


def exact_backend(index: str, use_gpu: bool, all_vs_all: bool) -> str:
    """Which exact search runs: ``"faiss"`` (IndexFlatL2, CPU or GPU) or ``"numpy"``.

    ``index="exact"`` picks the faster one: FAISS on a GPU; on the CPU, the symmetric numpy
    blocks for the all-vs-all search of a map (half the products; 21 vs 33 CPU-seconds for
    10,000 x 10,000 in benchmarks/bench_map.py) and FAISS for a subset of queries.
    """
    if index == "faiss":
        return "faiss"
    if index == "numpy":
        return "numpy"
    if use_gpu or not all_vs_all:
        return "faiss"
    return "numpy"


def nearest_neighbors(
    Q: np.ndarray,
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
    ``[n_queries, k]`` squared distances ``||q_i - q_j||^2 = 2 N KL_ij`` recomputed exactly
    from the rows, ascending (ties broken by row index). ``extra`` additional candidates are
    fetched before the exact re-ranking.
    """
    if index not in INDEX_KINDS:
        raise PylogmapError(f"unknown index {index!r}; choose one of {', '.join(INDEX_KINDS)}.")
    Q = np.asarray(Q)
    if Q.ndim != 2:
        raise PylogmapError(f"Q must be 2-D [models, texts]; got shape {Q.shape}.")
    K, N = Q.shape
    k = int(k)
    if k < 1:
        raise PylogmapError(f"k must be at least 1; got {k}.")
    if K < 2:
        raise PylogmapError("a map needs at least 2 models to have neighbours.")
    if k > K - 1:
        raise PylogmapError(f"k={k} but the map has only {K - 1} other models; use -k {K - 1} or less.")
    if not np.isfinite(Q).all():
        raise PylogmapError("Q contains NaN or infinite entries; build it from the finished rows only.")
    queries = np.arange(K, dtype=np.int64) if queries is None else np.asarray(queries, dtype=np.int64).ravel()
    if queries.size and (queries.min() < 0 or queries.max() >= K):
        raise PylogmapError(f"query row out of range for a map of {K} models.")
    use_gpu = _use_gpu(gpu) if index != "numpy" else False
    X32 = _as_f32(Q)
    if index == "ivf-pca":
        params = (approx or ApproxParams()).resolved(K, N)
        n_cand = min(K, max(k + 1 + extra, params["overfetch"] * (k + 1)))
        cand = _ivf_pca_candidates(X32, queries, n_cand, use_gpu, params, progress)
    else:
        n_cand = min(K, k + 1 + extra)
        backend = exact_backend(index, use_gpu, queries.size == K)
        if backend == "faiss":
            cand = _flat_candidates(X32, queries, n_cand, use_gpu, progress)
        else:
            cand = _numpy_candidates(X32, queries, n_cand, progress)
    del X32
    return _rerank(Q, queries, cand, k)


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
