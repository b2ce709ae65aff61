"""Weight interpolation (method.md section 8): grid, exact plane coordinates, grid comparison."""

from __future__ import annotations

import numpy as np
import pytest

from pylogmap.analysis import interpolation as I
from pylogmap.errors import PylogmapError


def test_grid_weights():
    ab = I.grid_weights(0.2)
    assert ab.shape == (36, 2)
    assert sorted(set(ab[:, 0].tolist())) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert I.grid_weights(0.5, -0.5, 1.5).shape == (25, 2)
    with pytest.raises(PylogmapError, match="positive"):
        I.grid_weights(0)
    with pytest.raises(PylogmapError, match="coarser"):
        I.grid_weights(0.001)


def test_weight_plane_coordinates_are_isometric():
    # Independent reference: explicit weight vectors theta0 + a d1 + b d2 in R^500; the plane
    # coordinates must reproduce all pairwise distances (float64, 1e-9 relative).
    rng = np.random.default_rng(0)
    d1, d2 = rng.normal(size=500), rng.normal(size=500) + 0.5 * rng.normal(size=500)
    ab = I.grid_weights(0.25)
    thetas = ab[:, :1] * d1 + ab[:, 1:] * d2
    xy = I.weight_plane_coordinates(ab, d1 @ d1, d2 @ d2, d1 @ d2)
    from scipy.spatial.distance import pdist

    np.testing.assert_allclose(pdist(xy), pdist(thetas), rtol=1e-9)
    with pytest.raises(PylogmapError, match="collinear"):
        I.weight_plane_coordinates(ab, 1.0, 4.0, 2.0)


def test_compare_grids_linear_loglik_grid_matches_weight_grid():
    # A log-likelihood grid that is a similarity image of the weight plane (an isometric
    # embedding in text space, scaled, plus per-text offsets and tiny noise) has the same shape:
    # Procrustes disparity ~ 0 and perfectly rank-correlated distances. The embedding directions
    # are orthonormal and orthogonal to the all-ones vector, so double centring keeps the shape.
    # A grid scrambled across grid points does not match.
    rng = np.random.default_rng(1)
    ab = I.grid_weights(0.2)
    wxy = I.weight_plane_coordinates(ab, 2.0, 1.0, 0.3)
    G = rng.normal(size=(300, 2))
    G -= G.mean(axis=0)
    A = 10 * np.linalg.qr(G)[0].T
    L = -200 + wxy @ A + rng.normal(size=300) * 30 + rng.normal(size=(len(ab), 300)) * 1e-3
    res = I.compare_grids(L, wxy)
    assert res["disparity"] < 1e-6
    assert res["distance_spearman"] > 0.999
    assert sum(res["explained_variance_ratio"]) == pytest.approx(1.0, abs=1e-4)  # noise 1e-3 per entry
    assert res["loglik_xy"].shape == (36, 2)
    scrambled = I.compare_grids(L[rng.permutation(36)], wxy)
    assert scrambled["disparity"] > 0.3
