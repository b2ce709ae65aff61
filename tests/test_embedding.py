"""embedding.py: published t-SNE settings, reproducibility, small-map cap, PCA, UMAP error."""

from __future__ import annotations

import numpy as np
import pytest

from pylogmap.mapping import embedding, geometry, tsne_fft
from pylogmap.errors import PylogmapError


def _clusters(K=93, N=60, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 8, size=(3, N))
    fam = np.repeat(np.arange(3), K // 3)
    L = -300 + centres[fam] + rng.normal(0, 1, size=(fam.size, N))
    return geometry.double_center(L), fam


def test_tsne_reproducible_and_separates_families():
    Q, fam = _clusters()
    a, params = embedding.tsne(Q, return_params=True, max_iter=350)
    b = embedding.tsne(Q, max_iter=350)
    assert a.dtype == np.float32 and a.shape == (Q.shape[0], 2)
    assert np.array_equal(a, b)  # same seed -> identical coordinates
    # (with init="pca" the seed only matters for the randomized PCA solver of big maps)
    assert params["perplexity"] == 30.0 and params["init"] == "pca"
    assert params["metric"] == "sqeuclidean" and params["random_state"] == 42
    # every point is closer to its own family's centroid than to the others'
    cent = np.stack([a[fam == f].mean(axis=0) for f in range(3)])
    nearest = np.argmin(((a[:, None, :] - cent[None]) ** 2).sum(-1), axis=1)
    assert np.array_equal(nearest, fam)


def test_tsne_matches_direct_sklearn_call_with_published_settings():
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    Q, _ = _clusters(K=45, seed=1)
    ours = embedding.tsne(Q, max_iter=300)
    with threadpool_limits(limits=1):
        ref = TSNE(n_components=2, perplexity=min(30, 44 / 3), init="pca", metric="sqeuclidean",
                   random_state=42, max_iter=300).fit_transform(Q)
    assert np.allclose(ours, ref.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_perplexity_capped_for_small_maps():
    assert embedding.effective_perplexity(1000) == 30.0
    assert embedding.effective_perplexity(91) == 30.0
    assert embedding.effective_perplexity(31) == pytest.approx(10.0)
    assert embedding.effective_perplexity(3) == 1.0
    Q, _ = _clusters(K=6, N=10, seed=2)
    coords, params = embedding.tsne(Q[:4], return_params=True, max_iter=250)
    assert params["perplexity"] == 1.0 and params["perplexity_requested"] == 30.0
    assert np.isfinite(coords).all()


def test_too_few_models_and_nan_are_clear_errors():
    Q, _ = _clusters(K=6, N=10, seed=3)
    with pytest.raises(PylogmapError, match="at least 3 models"):
        embedding.tsne(Q[:2])
    bad = Q.copy()
    bad[1, 1] = np.nan
    with pytest.raises(PylogmapError, match="NaN"):
        embedding.pca(bad)


def test_pca_matches_svd():
    Q, _ = _clusters(K=30, N=20, seed=4)
    coords, params = embedding.pca(Q, return_params=True)
    X = Q - Q.mean(axis=0)
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    ref = U[:, :2] * S[:2]
    # same up to the sign of each component
    for c in range(2):
        sign = np.sign(ref[:, c] @ coords[:, c])
        assert np.allclose(coords[:, c], sign * ref[:, c], rtol=1e-4, atol=1e-4)
    assert params["explained_variance_ratio"][0] == pytest.approx(S[0] ** 2 / np.sum(S**2), rel=1e-9)
    assert np.array_equal(coords, embedding.pca(Q))


def test_umap_without_package_is_a_clear_error():
    Q, _ = _clusters(K=20, N=10, seed=5)
    if embedding.umap_available():
        coords = embedding.umap(Q)
        assert coords.shape == (20, 2)
    else:
        with pytest.raises(PylogmapError, match="pip install umap-learn"):
            embedding.umap(Q)
    with pytest.raises(PylogmapError, match="unknown embedding"):
        embedding.embed(Q, "mds")


def test_tsne_method_is_chosen_by_size():
    assert embedding.tsne_method(1018) == "sklearn"  # the published map keeps the published call
    assert embedding.tsne_method(embedding.FFT_FROM_MODELS) == "fft"
    assert embedding.tsne_method(500, out_of_core=True) == "fft"
    assert embedding.tsne_method(100_000, "sklearn") == "sklearn"
    with pytest.raises(PylogmapError, match="out of core"):
        embedding.tsne_method(500, "sklearn", out_of_core=True)
    with pytest.raises(PylogmapError, match="unknown t-SNE"):
        embedding.tsne_method(500, "bh")


def _fft_inputs(K=150, seed=6):
    from pylogmap.mapping import neighbors

    Q, fam = _clusters(K=K, N=60, seed=seed)
    perp = embedding.effective_perplexity(K, 30.0)
    res = neighbors.map_neighbors(Q, 5, gpu=False, n_wide=embedding.neighbours_needed(perp))
    init = embedding.pca(Q, method="blocks")
    return Q, fam, res, init, perp


def test_fft_tsne_from_the_map_neighbours_is_reproducible_and_separates_families():
    Q, fam, res, init, perp = _fft_inputs()
    a, params = embedding.tsne_fft(res.wide_idx, res.wide_sqdist, init, perplexity=perp, max_iter=300)
    b, _ = embedding.tsne_fft(res.wide_idx, res.wide_sqdist, init, perplexity=perp, max_iter=300)
    assert a.dtype == np.float32 and a.shape == (Q.shape[0], 2)
    assert np.array_equal(a, b)  # same inputs and seed -> identical coordinates
    one, _ = embedding.tsne_fft(res.wide_idx, res.wide_sqdist, init, perplexity=perp, max_iter=300, n_jobs=1)
    two, p2 = embedding.tsne_fft(res.wide_idx, res.wide_sqdist, init, perplexity=perp, max_iter=300, n_jobs=2)
    assert np.array_equal(one, two) and p2["n_jobs"] == 2  # the thread count does not change the map
    assert params["method"] == "fft" and params["neighbors"] == 90 and params["metric"] == "sqeuclidean"
    cent = np.stack([a[fam == f].mean(axis=0) for f in range(3)])
    assert np.array_equal(np.argmin(((a[:, None, :] - cent[None]) ** 2).sum(-1), axis=1), fam)
    with pytest.raises(PylogmapError, match="iterations"):
        embedding.tsne_fft(res.wide_idx, res.wide_sqdist, init, perplexity=perp, max_iter=200)


def test_fft_tsne_keeps_neighbours_at_least_as_well_as_sklearn():
    """The issue's quality measure: the fraction of each model's 10 nearest (in KL) that stay among
    its 10 nearest on the 2-D map."""
    from scipy.spatial import cKDTree

    Q, fam, res, init, perp = _fft_inputs(K=300, seed=8)
    exact = res.wide_idx[:, :10]

    def kept(coords):
        _, near = cKDTree(coords).query(coords, k=11)
        return np.mean([len(set(a) & set(b[1:])) / 10 for a, b in zip(exact.tolist(), near.tolist())])

    fft, params = embedding.tsne_fft(res.wide_idx, res.wide_sqdist, init, perplexity=perp)  # the defaults
    assert params["max_iter"] == tsne_fft.default_iterations(300) == 650
    ref = embedding.tsne(Q)
    assert kept(fft) >= kept(ref) - 0.02


def test_blockwise_pca_matches_svd():
    Q, _ = _clusters(K=60, N=40, seed=9)
    coords, params = embedding.pca(Q, method="blocks", return_params=True)
    X = Q - Q.mean(axis=0)
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    ref = U[:, :2] * S[:2]
    for c in range(2):
        sign = np.sign(ref[:, c] @ coords[:, c])
        assert np.allclose(coords[:, c], sign * ref[:, c], rtol=1e-4, atol=1e-4 * np.abs(ref[:, c]).max())
    assert params["explained_variance_ratio"][0] == pytest.approx(S[0] ** 2 / np.sum(S**2), rel=1e-6)
    assert np.array_equal(coords, embedding.pca(Q, method="blocks"))
    with pytest.raises(PylogmapError, match="PCA method"):
        embedding.pca(Q, method="svd")
