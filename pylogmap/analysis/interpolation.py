"""Weight interpolation of three models on a grid (method.md section 8).

Merged models `theta(a, b) = (1 - a - b) theta0 + a theta1 + b theta2` lie on an exact plane in
weight space; scoring each merged model on a text set gives a grid of log-likelihood vectors.
The map paper compares the two grids: PCA of the log-likelihood grid to 2-D against the
weight-space grid. Here the weight grid is drawn in its own exact plane coordinates (from the
inner products of `theta1 - theta0` and `theta2 - theta0`), the log-likelihood grid by PCA of its
double-centred matrix, and the two are compared by Procrustes disparity (0 = same shape up to
translation, rotation, reflection and scale; 1 = unrelated) and by the rank correlation of their
pairwise squared distances.

This module is the numpy side: `grid_weights`, `weight_plane_coordinates` and `compare_grids`.
Building and scoring the merged models (torch, the real scorer) is
`pylogmap.experiments.interpolate_models`.
"""

from __future__ import annotations

import numpy as np

from pylogmap.errors import PylogmapError
from pylogmap.mapping import geometry


def grid_weights(step: float = 0.2, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """All `(a, b)` with a, b in `lo, lo+step, ..., hi` (the full square), `[n, 2]` float64.

    Values are rounded to 10 decimals so that 0.2-steps give 0.6, not 0.6000000000000001.
    """
    if not step > 0:
        raise PylogmapError(f"the grid step must be positive, got {step}.")
    if not hi >= lo:
        raise PylogmapError(f"the grid range must have hi >= lo, got {lo}..{hi}.")
    n = int(np.floor((hi - lo) / step + 1e-9)) + 1
    if n > 51:
        raise PylogmapError(f"a step of {step} gives {n * n} merged models; use a coarser --grid.")
    vals = np.round(lo + step * np.arange(n), 10)
    a, b = np.meshgrid(vals, vals, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1)


def weight_plane_coordinates(ab: np.ndarray, ip11: float, ip22: float, ip12: float) -> np.ndarray:
    """Exact 2-D coordinates of `a (theta1-theta0) + b (theta2-theta0)` in their plane.

    With the Gram matrix `M = [[ip11, ip12], [ip12, ip22]] = C C^T` (Cholesky), the point's
    squared norm is `[a, b] M [a, b]^T = ||[a, b] C||^2`, so `[a, b] C` are isometric coordinates.
    """
    M = np.array([[ip11, ip12], [ip12, ip22]], dtype=np.float64)
    try:
        C = np.linalg.cholesky(M)
    except np.linalg.LinAlgError as err:
        raise PylogmapError(
            "the three models' weight differences are collinear or zero (two of them are the same "
            "model?); interpolation needs three different models."
        ) from err
    return np.asarray(ab, dtype=np.float64) @ C


def _double_center(L):
    return geometry.double_center(np.asarray(L, dtype=np.float64))


def compare_grids(L_grid: np.ndarray, weight_xy: np.ndarray) -> dict:
    """Compare a log-likelihood grid `[n, N]` with the weight grid coordinates `[n, 2]`.

    Returns `loglik_xy` (PCA of the double-centred grid, Procrustes-aligned onto the weight
    grid's standardised frame), `weight_xy_std` (the standardised weight grid),
    `explained_variance_ratio` of the two components, `disparity` (scipy Procrustes) and
    `distance_spearman` (rank correlation of pairwise squared distances in both spaces).
    """
    from scipy.spatial import procrustes
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr
    from sklearn.decomposition import PCA

    L_grid = np.asarray(L_grid, dtype=np.float64)
    weight_xy = np.asarray(weight_xy, dtype=np.float64)
    if L_grid.shape[0] != weight_xy.shape[0] or L_grid.shape[0] < 3:
        raise PylogmapError("comparing grids needs the same (>= 3) merged models in both spaces.")
    Q = _double_center(L_grid)
    pca = PCA(n_components=2, svd_solver="full")
    ll_xy = pca.fit_transform(Q)
    w_std, ll_aligned, disparity = procrustes(weight_xy, ll_xy)
    rho = spearmanr(pdist(Q, "sqeuclidean"), pdist(weight_xy, "sqeuclidean"))[0]
    return {
        "loglik_xy": ll_aligned,
        "weight_xy_std": w_std,
        "explained_variance_ratio": pca.explained_variance_ratio_.tolist(),
        "disparity": float(disparity),
        "distance_spearman": float(rho),
    }
