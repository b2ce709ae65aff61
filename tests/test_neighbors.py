"""neighbors.py: exact search equals brute-force top-k, approximate recall is measured.

References are float64 loops over all pairs (np.var of row differences), independent of the
Gram identity used by geometry.iter_pairwise_kl and of FAISS.
"""

from __future__ import annotations

import numpy as np
import pytest

from pylogmap.mapping import geometry, neighbors
from pylogmap.errors import PylogmapError


def _clustered_Q(K=300, N=200, seed=0):
    """Models in families (clusters) like a real map, with distinct pairwise distances."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, size=(12, N))
    fam = rng.integers(0, 12, size=K)
    L = -500 + centres[fam] + rng.normal(0, 1.0, size=(K, N)) * rng.uniform(0.3, 3, size=(K, 1))
    return geometry.double_center(L)


def _loop_topk(Q, k):
    K = Q.shape[0]
    out = []
    for i in range(K):
        d = [(np.var(Q[i] - Q[j]) * Q.shape[1], j) for j in range(K) if j != i]
        d.sort()
        out.append([j for _, j in d[:k]])
    return np.array(out)


@pytest.mark.parametrize("kind", ["exact", "faiss", "numpy"])
def test_exact_search_equals_brute_force(kind):
    Q = _clustered_Q(K=150, N=120, seed=1)
    idx, sq = neighbors.nearest_neighbors(Q, 7, index=kind, gpu=False)
    ref = _loop_topk(Q, 7)
    assert np.array_equal(idx, ref)
    N = Q.shape[1]
    for i in range(0, 150, 17):
        for c in range(7):
            assert sq[i, c] == pytest.approx(np.var(Q[i] - Q[idx[i, c]]) * N, rel=1e-9)
    assert np.all(np.diff(sq, axis=1) >= 0)
    assert not np.any(idx == np.arange(150)[:, None])  # never itself


@pytest.mark.parametrize("kind", ["exact", "faiss", "numpy"])
def test_query_subsets_equal_all_vs_all(kind):
    Q = _clustered_Q(K=120, N=60, seed=8)
    full, full_d = neighbors.nearest_neighbors(Q, 6, index=kind, gpu=False)
    queries = np.array([3, 50, 119, 7])
    part, part_d = neighbors.nearest_neighbors(Q, 6, index=kind, gpu=False, queries=queries)
    assert np.array_equal(part, full[queries]) and np.array_equal(part_d, full_d[queries])


def test_exact_backend_choice():
    assert neighbors.exact_backend("exact", use_gpu=True, all_vs_all=True) == "faiss"
    assert neighbors.exact_backend("exact", use_gpu=False, all_vs_all=True) == "numpy"
    assert neighbors.exact_backend("exact", use_gpu=False, all_vs_all=False) == "faiss"
    assert neighbors.exact_backend("faiss", use_gpu=False, all_vs_all=True) == "faiss"
    assert neighbors.exact_backend("numpy", use_gpu=True, all_vs_all=False) == "numpy"


def test_brute_force_helper_equals_loops():
    Q = _clustered_Q(K=60, N=50, seed=2)
    idx, _ = neighbors.brute_force_neighbors(Q, 5)
    assert np.array_equal(idx, _loop_topk(Q, 5))


def test_self_excluded_even_with_duplicate_rows():
    Q = _clustered_Q(K=40, N=30, seed=3)
    Q = np.vstack([Q, Q[5], Q[5]])  # rows 40 and 41 are copies of row 5
    idx, sq = neighbors.nearest_neighbors(Q, 3, gpu=False)
    for row, others in ((5, {40, 41}), (40, {5, 41}), (41, {5, 40})):
        assert set(idx[row, :2].tolist()) == others
        assert row not in idx[row].tolist()
        assert sq[row, 0] == 0.0 and sq[row, 1] == 0.0


def test_near_identical_models_ordered_correctly():
    """Distances that float32 Gram cancellation cannot resolve are re-ranked in float64."""
    rng = np.random.default_rng(4)
    base = -np.abs(rng.normal(800, 300, size=2000))
    eps = [1e-3, 2e-3, 4e-3, 8e-3]
    L = np.vstack([base] + [base + rng.normal(0, e, size=2000) for e in eps] + [base * 0.95])
    Q = geometry.double_center(L)
    idx, sq = neighbors.nearest_neighbors(Q, 4, gpu=False, extra=1)
    assert idx[0].tolist() == [1, 2, 3, 4]
    assert sq[0, 0] == pytest.approx(np.var(L[0] - L[1]) * 2000, rel=1e-6)


def test_ivf_pca_recall_is_measured_and_high_on_clustered_maps():
    Q = _clustered_Q(K=600, N=300, seed=5)
    rep = neighbors.measure_recall(Q, 10, n_queries=100, gpu=False)
    assert 0.0 <= rep["recall"] <= 1.0
    assert rep["recall"] >= 0.9, rep
    assert rep["pca_dim"] <= 300 and rep["nlist"] >= 1 and rep["nprobe"] <= rep["nlist"]
    # a deliberately crippled index (1 dimension, 1 probe of many cells) must show lower recall
    poor = neighbors.measure_recall(
        Q, 10, n_queries=100, gpu=False, approx=neighbors.ApproxParams(pca_dim=1, nlist=15, nprobe=1, overfetch=1)
    )
    assert poor["recall"] < rep["recall"]


def test_recall_function():
    assert neighbors.recall([[1, 2, 3]], [[3, 2, 9]]) == pytest.approx(2 / 3)


def test_with_kl_carries_estimates_and_errors():
    Q = _clustered_Q(K=50, N=80, seed=6)
    idx, sq = neighbors.nearest_neighbors(Q, 4, gpu=False)
    table = neighbors.with_kl(Q, np.arange(50), idx, mean_bytes=1000.0)
    assert np.allclose(table.kl_nats, sq / (2 * 80), rtol=1e-9)
    kl, se = geometry.kl_estimate(Q[3], Q[idx[3, 2]])
    assert table.kl_nats[3, 2] == pytest.approx(kl) and table.se_nats[3, 2] == pytest.approx(se)
    assert np.allclose(table.kl_bpb, table.kl_nats / (1000 * np.log(2)))
    one = neighbors.neighbors_of(Q, 3, 4, mean_bytes=1000.0)
    assert one.idx[0].tolist() == idx[3].tolist()


def test_bad_arguments():
    Q = _clustered_Q(K=10, N=20, seed=7)
    with pytest.raises(PylogmapError, match="only 9 other models"):
        neighbors.nearest_neighbors(Q, 10)
    with pytest.raises(PylogmapError, match="unknown index"):
        neighbors.nearest_neighbors(Q, 2, index="hnsw")
    Qn = Q.copy()
    Qn[0, 0] = np.nan
    with pytest.raises(PylogmapError, match="NaN"):
        neighbors.nearest_neighbors(Qn, 2)
    if not neighbors.faiss_gpu_available():
        with pytest.raises(PylogmapError, match="GPU"):
            neighbors.nearest_neighbors(Q, 2, gpu=True)
