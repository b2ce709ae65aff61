"""Principal components of a large Q, a block of rows at a time (randomized SVD in passes).

scikit-learn's PCA needs Q in memory and a float64 copy of it (8 GB for 100,000 models x
10,000 texts). Here Q (ndarray or rowstore.DiskRows) is only ever read a block of rows at a
time: the randomized range finder of Halko, Martinsson and Tropp (2011, algorithm 4.4: a
Gaussian test matrix with ``n_components + oversample`` columns, ``n_iter`` (2) power
iterations with re-orthonormalisation: 7 passes over Q in all), then the SVD of the small projected matrix. Each pass over Q costs
``2 K N (n_components + oversample)`` flops (float32 products of the blocks, float64 for the
small matrices); memory is ``K x l`` and ``N x l``. Signs
follow scikit-learn's convention (the largest entry of each principal axis is positive), so the
coordinates are deterministic for a given seed and identical for an in-memory and an
out-of-core Q holding the same numbers.
"""

from __future__ import annotations

import numpy as np

_BLOCK_BYTES = 64 * 2**20


def _blocks(Q):
    K, N = Q.shape
    step = max(1, _BLOCK_BYTES // max(1, N * 4))
    for start in range(0, K, step):
        yield slice(start, min(start + step, K)), np.ascontiguousarray(Q[start : start + step], dtype=np.float32)


def pca_blocks(Q, n_components: int = 2, *, seed: int = 0, oversample: int = 10, n_iter: int = 2):
    """``(coords [K, n_components] float32, explained_variance_ratio list)`` of the rows of Q.

    The column mean m is never subtracted from a block: ``(B - 1 m^T) W = B W - 1 (m^T W)`` and
    ``(B - 1 m^T)^T Y = B^T Y - m (1^T Y)``, so each pass is one float32 product per block (the
    coordinates only need float32's accuracy) and the small matrices stay in float64.
    """
    K, N = Q.shape
    l = int(min(n_components + oversample, K, N))
    col_sum = np.zeros(N)
    total_sq = 0.0
    for _, B in _blocks(Q):
        col_sum += B.sum(axis=0, dtype=np.float64)
        total_sq += float(np.einsum("ij,ij->", B, B, dtype=np.float64))
    mean = col_sum / K
    total = total_sq - K * float(mean @ mean)
    rng = np.random.default_rng(seed)

    def times(W):  # (Q - 1 m^T) W, W [N, l]
        W32 = W.astype(np.float32)
        out = np.empty((K, W.shape[1]))
        shift = mean @ W
        for sl, B in _blocks(Q):
            out[sl] = B @ W32
            out[sl] -= shift
        return out

    def times_t(Y):  # (Q - 1 m^T)^T Y, Y [K, l]
        out = np.zeros((N, Y.shape[1]))
        for sl, B in _blocks(Q):
            out += B.T @ Y[sl].astype(np.float32)
        out -= np.outer(mean, Y.sum(axis=0))
        return out

    Y = times(rng.standard_normal((N, l)))
    for _ in range(n_iter):
        Y, _ = np.linalg.qr(Y)
        Z, _ = np.linalg.qr(times_t(Y))
        Y = times(Z)
    Y, _ = np.linalg.qr(Y)
    small = times_t(Y).T
    Us, S, Vt = np.linalg.svd(small, full_matrices=False)
    Us, S, Vt = Us[:, :n_components], S[:n_components], Vt[:n_components]
    signs = np.sign(Vt[np.arange(Vt.shape[0]), np.argmax(np.abs(Vt), axis=1)])
    signs[signs == 0] = 1.0
    coords = (Y @ Us) * (S * signs)
    ratio = (S**2 / total).tolist() if total > 0 else [0.0] * len(S)
    return coords.astype(np.float32), [float(r) for r in ratio]
