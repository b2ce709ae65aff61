"""Principal components of a large Q, a block of rows at a time (randomized SVD in passes).

scikit-learn's PCA needs Q in memory and a float64 copy of it (8 GB for 100,000 models x
10,000 texts). Here Q (ndarray or rowstore.DiskRows) is only ever read a block of rows at a
time: the randomized range finder of Halko, Martinsson and Tropp (2011, algorithm 4.4: a
Gaussian test matrix with ``n_components + oversample`` columns, ``n_iter`` power iterations
with re-orthonormalisation), then the SVD of the small projected matrix. Each pass over Q costs
``2 K N (n_components + oversample)`` flops in float64; memory is ``K x l`` and ``N x l``. Signs
follow scikit-learn's convention (the largest entry of each principal axis is positive), so the
coordinates are deterministic for a given seed and identical for an in-memory and an
out-of-core Q holding the same numbers.
"""

from __future__ import annotations

import numpy as np

_BLOCK_BYTES = 64 * 2**20


def _blocks(Q):
    K, N = Q.shape
    step = max(1, _BLOCK_BYTES // max(1, N * 8))
    for start in range(0, K, step):
        yield slice(start, min(start + step, K)), np.array(Q[start : start + step], dtype=np.float64)


def pca_blocks(Q, n_components: int = 2, *, seed: int = 0, oversample: int = 10, n_iter: int = 4):
    """``(coords [K, n_components] float32, explained_variance_ratio list)`` of the rows of Q."""
    K, N = Q.shape
    l = int(min(n_components + oversample, K, N))
    mean = np.zeros(N)
    for _, B in _blocks(Q):
        mean += B.sum(axis=0)
    mean /= K
    total = 0.0
    rng = np.random.default_rng(seed)
    omega = rng.standard_normal((N, l))
    Y = np.empty((K, l))
    for sl, B in _blocks(Q):
        B -= mean
        total += float(np.einsum("ij,ij->", B, B))
        Y[sl] = B @ omega
    for _ in range(n_iter):
        Y, _ = np.linalg.qr(Y)
        Z = np.zeros((N, l))
        for sl, B in _blocks(Q):
            B -= mean
            Z += B.T @ Y[sl]
        Z, _ = np.linalg.qr(Z)
        for sl, B in _blocks(Q):
            B -= mean
            Y[sl] = B @ Z
    Y, _ = np.linalg.qr(Y)
    small = np.zeros((l, N))
    for sl, B in _blocks(Q):
        B -= mean
        small += Y[sl].T @ B
    Us, S, Vt = np.linalg.svd(small, full_matrices=False)
    Us, S, Vt = Us[:, :n_components], S[:n_components], Vt[:n_components]
    signs = np.sign(Vt[np.arange(Vt.shape[0]), np.argmax(np.abs(Vt), axis=1)])
    signs[signs == 0] = 1.0
    coords = (Y @ Us) * (S * signs)
    ratio = (S**2 / total).tolist() if total > 0 else [0.0] * len(S)
    return coords.astype(np.float32), [float(r) for r in ratio]
