"""neighbors.py: exact search equals brute-force top-k, approximate recall is measured.

References are float64 loops over all pairs (np.var of row differences), independent of the
Gram identity used by geometry.iter_pairwise_kl and of FAISS.
"""

from __future__ import annotations

import numpy as np
import pytest

from pylogmap.errors import PylogmapError
from pylogmap.mapping import geometry, neighbors


@pytest.fixture(params=["native", "numpy", "bf16"])
def exact_stage(request, monkeypatch):
    """Runs a test with the compiled exact stage (pair_moments), with numpy's own, and with the
    bf16 tiles of gram_bf16.py (forced, so also where the CPU has no AMX; needs MKL)."""
    if request.param == "numpy":
        monkeypatch.setenv("PYLOGMAP_NATIVE_PAIRS", "0")
        monkeypatch.setenv("PYLOGMAP_GEMM", "float32")
    elif request.param == "bf16":
        from pylogmap.mapping import gram_bf16

        if not gram_bf16.available():
            pytest.skip(f"bf16 tiles unavailable: {gram_bf16.unavailable_reason()}")
        monkeypatch.setenv("PYLOGMAP_GEMM", "bf16")
    else:
        monkeypatch.setenv("PYLOGMAP_GEMM", "float32")
    return request.param


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


@pytest.mark.usefixtures("exact_stage")
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


@pytest.mark.usefixtures("exact_stage")
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


@pytest.mark.usefixtures("exact_stage")
def test_self_excluded_even_with_duplicate_rows():
    Q = _clustered_Q(K=40, N=30, seed=3)
    Q = np.vstack([Q, Q[5], Q[5]])  # rows 40 and 41 are copies of row 5
    idx, sq = neighbors.nearest_neighbors(Q, 3, gpu=False)
    for row, others in ((5, {40, 41}), (40, {5, 41}), (41, {5, 40})):
        assert set(idx[row, :2].tolist()) == others
        assert row not in idx[row].tolist()
        assert sq[row, 0] == 0.0 and sq[row, 1] == 0.0


@pytest.mark.usefixtures("exact_stage")
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


@pytest.mark.usefixtures("exact_stage")
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


# --------------------------------------------------------------------------------------------
# The proven float32 margin (gram_bound, knn_search)
# --------------------------------------------------------------------------------------------


def _near_tie_Q(N=1500, seed=11):
    """A base model, close copies, and planted near-ties: pairs of rows whose distances to the
    base differ by 1e-9 relative (float32 Gram values cannot separate them, float64 can), and
    one exact tie (broken by row index)."""
    rng = np.random.default_rng(seed)
    base = -np.abs(rng.normal(800, 300, size=N))
    d = rng.normal(0, 1, size=N)
    d -= d.mean()
    rows = [base] + [base + rng.normal(0, e, size=N) for e in (1e-3, 2e-3, 4e-3)]
    rows += [base + 0.01 * d, base - 0.01 * d * (1 + 1e-9), base - 0.01 * d]  # 4 and 6 tie exactly, 5 is 2e-9 farther
    rows += [base * 0.97, base * 1.03] + [base + rng.normal(0, 4, size=N) for _ in range(30)]
    return geometry.double_center(np.vstack(rows))


def _random_Q(K=120, N=60, seed=12):
    return np.random.default_rng(seed).normal(size=(K, N)) * np.random.default_rng(seed + 1).uniform(0.5, 2, size=(K, 1))


@pytest.mark.usefixtures("exact_stage")
@pytest.mark.parametrize("kind", ["numpy", "faiss"])
@pytest.mark.parametrize("make", [_random_Q, lambda: _clustered_Q(K=150, N=120, seed=18), _near_tie_Q])
def test_neighbour_sets_equal_float64_brute_force(kind, make):
    Q = make()
    for X in (Q, Q.astype(np.float32)):  # the float64 answer for the rows as given
        idx, sq = neighbors.nearest_neighbors(X, 6, index=kind, gpu=False)
        ref, ref_sq = neighbors.brute_force_neighbors(X, 6)  # float64 Gram: sets, and values to its precision
        assert [set(a) for a in idx.tolist()] == [set(b) for b in ref.tolist()]
        assert np.allclose(sq, ref_sq, rtol=1e-6, atol=1e-9 * ref_sq.max())
        # float64 differences (no Gram cancellation): the order too, near-ties included
        assert np.array_equal(idx, _loop_topk(X.astype(np.float64), 6))


@pytest.mark.usefixtures("exact_stage")
def test_planted_near_ties_are_ranked_in_float64():
    Q = _near_tie_Q()
    idx, sq = neighbors.nearest_neighbors(Q, 6, gpu=False)
    assert idx[0].tolist() == [1, 2, 3, 4, 6, 5]  # 4 and 6 tie (up to the centring's rounding), 5 just behind
    assert sq[0, 4] - sq[0, 3] < 1e-11 * sq[0, 3] and sq[0, 5] - sq[0, 4] > 1e-9 * sq[0, 4]


def test_float32_bracket_holds_for_every_pair():
    """lower <= N Var(x_i - x_j) <= lower + w_i + w_j, on uncentred rows with large offsets too."""
    from pylogmap.mapping import gram_bound

    rng = np.random.default_rng(13)
    for X in (_clustered_Q(K=120, N=700, seed=14), -800 + rng.normal(0, 30, size=(120, 700)) + rng.normal(0, 50, size=(120, 1))):
        for panels in (1, 3):
            stats = gram_bound.row_stats(X, panels)
            maker = gram_bound.TileMaker(stats, X.shape[1])
            A = gram_bound.BlockReader(X).read(0, 120)
            low = maker.lower(A * np.float32(-2), slice(0, 120), A, slice(0, 120)).astype(np.float64)
            diag = maker.lower_diagonal(A, slice(0, 120)).astype(np.float64)
            ref = np.array([[np.var(X[i] - X[j]) * X.shape[1] for j in range(120)] for i in range(120)])
            width = stats.width[:, None] + stats.width[None, :]
            for tile in (low, diag):
                assert np.all(tile <= ref) and np.all(ref <= tile + width)
    assert gram_bound.gram_depth(10_000, 5) == 2004
    assert gram_bound.margin_coefficient(10_000, 5) < gram_bound.margin_coefficient(10_000, 1) / 4


def test_bf16_bracket_holds_for_every_pair():
    """gram_bf16's tiles: lower <= N Var(x_i - x_j) <= lower + w_i + w_j, also with large offsets,
    rows of very different norms and N beyond one bf16 product's exactness."""
    from pylogmap.mapping import gram_bf16, gram_bound

    if not gram_bf16.available():
        pytest.skip(f"bf16 tiles unavailable: {gram_bf16.unavailable_reason()}")
    rng = np.random.default_rng(31)
    cases = [_clustered_Q(K=90, N=700, seed=14),
             -800 + rng.normal(0, 30, size=(90, 700)) + rng.normal(0, 50, size=(90, 1)),
             rng.normal(size=(90, 3000)) * np.logspace(-3, 3, 90)[:, None]]
    for X in cases:
        N = X.shape[1]
        stats = gram_bound.row_stats(X, 1)
        stats = gram_bound.with_coefficient(stats, gram_bf16.margin_coefficient(N), N, gram_bf16.ABSOLUTE)
        maker = gram_bf16.TileMakerBF16(stats)
        A = gram_bound.BlockReader(X).read(0, 90)
        tiles = [maker.lower(maker.query_operand(A[:50]), slice(0, 50), A, slice(0, 90)).astype(np.float64),
                 maker.lower_diagonal(A, slice(0, 90)).astype(np.float64)[:50]]
        ref = np.array([[np.var(X[i] - X[j]) * N for j in range(90)] for i in range(50)])
        width = stats.width[:50, None] + stats.width[None, :]
        for tile in tiles:
            assert np.all(tile <= ref) and np.all(ref <= tile + width)
        if X is not cases[0]:  # offsets and huge norms: float32's rounding of the alpha terms dominates
            continue
        # and the tiles are bf16 products: they err far more than float32 tiles of the same rows
        f32_stats = gram_bound.row_stats(X, 1)
        f32 = gram_bound.TileMaker(f32_stats, N).lower(A[:50] * np.float32(-2), slice(0, 50), A, slice(0, 90))
        gram = -2.0 * A[:50].astype(np.float64) @ A.astype(np.float64).T
        alpha_bf16 = stats.alpha[:50, None].astype(np.float64) + stats.alpha[None, :]
        alpha_f32 = f32_stats.alpha[:50, None].astype(np.float64) + f32_stats.alpha[None, :]
        err_bf16 = np.abs(tiles[0] - alpha_bf16 - gram).max()
        err_f32 = np.abs(f32.astype(np.float64) - alpha_f32 - gram).max()
        assert err_bf16 > 30 * err_f32
    assert gram_bf16.margin_coefficient(10_000) == pytest.approx(8.43e-3, rel=1e-3)


def test_bf16_tiles_are_chosen_only_where_they_are_exact_and_fast(monkeypatch):
    from pylogmap.mapping import gram_bf16, knn_search

    Q = _clustered_Q(K=120, N=64, seed=32)
    monkeypatch.setenv("PYLOGMAP_GEMM", "float32")
    assert knn_search.search(Q, 5).gemm == "float32"
    monkeypatch.setenv("PYLOGMAP_GEMM", "sometimes")
    with pytest.raises(PylogmapError, match="PYLOGMAP_GEMM='sometimes' is not one of auto, bf16, float32"):
        knn_search.search(Q, 5)
    monkeypatch.setenv("PYLOGMAP_GEMM", "auto")
    monkeypatch.setattr(gram_bf16, "cpu_has_amx_bf16", lambda: False)
    assert knn_search.search(Q, 5).gemm == "float32"  # without AMX, MKL's bf16 is slower than float32
    if not gram_bf16.available():
        monkeypatch.setenv("PYLOGMAP_GEMM", "bf16")
        with pytest.raises(PylogmapError, match="needs MKL"):
            knn_search.search(Q, 5)
        return
    monkeypatch.setattr(gram_bf16, "cpu_has_amx_bf16", lambda: True)
    auto = knn_search.search(Q, 5)
    assert auto.gemm == "bf16"
    monkeypatch.setenv("PYLOGMAP_GEMM", "bf16")
    wide = knn_search.search(Q, 5, n_wide=20)  # wide lists are read off the bracket: float32
    assert wide.gemm == "float32" and np.array_equal(wide.idx, auto.idx)
    short = knn_search.search(Q, 5, n_keep=5, block=32)  # overflowing lists are searched again in float32
    assert short.gemm == "bf16" and short.n_retried > 0
    assert np.array_equal(short.idx, _loop_topk(Q, 5))


@pytest.mark.usefixtures("exact_stage")
def test_short_lists_are_searched_again_and_stay_exact():
    from pylogmap.mapping import knn_search

    Q = _random_Q(K=300, N=40, seed=15)
    res = knn_search.search(Q, 5, n_keep=5, block=64)
    assert res.n_retried > 0
    assert np.array_equal(res.idx, neighbors.brute_force_neighbors(Q, 5)[0])


@pytest.mark.usefixtures("exact_stage")
def test_out_of_core_rows_give_the_same_neighbours(tmp_path):
    from pylogmap.mapping import knn_search
    from pylogmap.mapping.rowstore import DiskRows

    Q = _clustered_Q(K=200, N=64, seed=16).astype(np.float32)
    with DiskRows(200, 64, directory=tmp_path) as X:
        X.write(0, Q[:150])
        X.write(150, Q[150:])
        assert np.array_equal(X[10:20], Q[10:20]) and np.array_equal(X[np.array([5, 199, 5])], Q[[5, 199, 5]])
        a = knn_search.search(X, 7, block=48, moments=True, n_wide=20)
        b = knn_search.search(Q, 7, block=48, moments=True, n_wide=20)
        assert np.array_equal(a.idx, b.idx) and np.array_equal(a.sqdist, b.sqdist) and np.array_equal(a.m4, b.m4)
        assert np.array_equal(a.wide_idx, b.wide_idx)
        assert np.array_equal(geometry.text_variance(X), geometry.text_variance(Q))
        with pytest.raises(PylogmapError, match="block of rows"):
            np.asarray(X)
    assert not any(tmp_path.iterdir())  # the file is gone


def test_out_of_core_rows_are_read_as_asked(tmp_path):
    """DiskRows reads exactly the rows asked for, in the order asked, into the caller's buffer."""
    from pylogmap.mapping.rowstore import DiskRows

    rng = np.random.default_rng(21)
    Q = rng.normal(size=(50, 9)).astype(np.float32)
    with DiskRows(50, 9, directory=tmp_path) as X:
        X.write(0, Q)
        for idx in ([3, 4, 5, 6], [7, 2, 2, 49, 0, 1, 2], [-1, -50, 10], list(range(50))[::-1], [11]):
            out = np.full((len(idx), 9), np.nan, dtype=np.float32)
            assert X.take_into(np.array(idx), out) is out
            assert np.array_equal(out, Q[idx])
            assert np.array_equal(X[np.array(idx)], Q[idx])
        assert np.array_equal(X[np.array([[1, 2], [40, 1]])], Q[[[1, 2], [40, 1]]])
        mask = rng.random(50) < 0.3
        assert np.array_equal(X[mask], Q[mask])
        buf = np.empty((5, 9), dtype=np.float32)
        assert X.read_into(45, buf) is buf and np.array_equal(buf, Q[45:])
        with pytest.raises(IndexError):
            X.take_into(np.array([50]), np.empty((1, 9), dtype=np.float32))
        with pytest.raises(IndexError):
            X.read_into(46, buf)
        with pytest.raises(ValueError, match="float32"):
            X.take_into(np.array([1, 2]), np.empty((2, 9)))
        assert X[np.array([], dtype=np.int64)].shape == (0, 9)


def test_block_reader_gives_views_in_memory_and_one_reused_buffer_otherwise(tmp_path):
    from pylogmap.mapping import gram_bound
    from pylogmap.mapping.rowstore import DiskRows

    rng = np.random.default_rng(22)
    X64 = rng.normal(size=(30, 7)) * 1e3
    X32 = X64.astype(np.float32)
    r = gram_bound.BlockReader(X32)
    assert np.shares_memory(r.read(0, 10), X32)
    with DiskRows(30, 7, directory=tmp_path) as D:
        D.write(0, X32)
        for X in (X64, D, X32[:, :7].copy(order="F")):
            r = gram_bound.BlockReader(X)
            first = r.read(0, 16)
            assert first.dtype == np.float32 and first.flags.c_contiguous
            assert np.array_equal(first, X32[:16])
            last = r.read(16, 30)  # shorter block, same buffer
            assert np.shares_memory(first, last)
            assert np.array_equal(last, X32[16:30])


def test_exact_stage_rows_are_never_rounded_through_float32(tmp_path):
    """float64 rows reach the float64 answer stage as they are; float32 and out-of-core rows
    exactly as stored."""
    from pylogmap.mapping import knn_search
    from pylogmap.mapping.rowstore import DiskRows

    rng = np.random.default_rng(23)
    X64 = rng.normal(size=(40, 11)) * (1 + 1e-9)
    idx = np.array([[3, 39], [0, 3], [7, 7]])
    got = knn_search._Rows64(X64, 6).take(idx)
    assert got.dtype == np.float64 and np.array_equal(got, X64[idx.ravel()])
    assert not np.array_equal(got, X64[idx.ravel()].astype(np.float32))
    X32 = X64.astype(np.float32)
    with DiskRows(40, 11, directory=tmp_path) as D:
        D.write(0, X32)
        for X in (X32, D):
            assert np.array_equal(knn_search._Rows64(X, 6).take(idx), X32[idx.ravel()].astype(np.float64))
    with pytest.raises(ValueError, match="buffer"):
        knn_search._Rows64(X64, 2).take(idx)


def test_map_neighbors_carries_kl_se_and_wide_lists():
    Q = _clustered_Q(K=160, N=70, seed=17)
    for kind in ("exact", "faiss", "ivf-pca"):
        res = neighbors.map_neighbors(Q, 5, index=kind, gpu=False, n_wide=30, mean_bytes=1000.0)
        idx, _ = neighbors.nearest_neighbors(Q, 5, index=kind, gpu=False)
        ref = neighbors.with_kl(Q, np.arange(160), idx, 1000.0)
        assert np.array_equal(res.table.idx, idx)
        assert np.allclose(res.table.kl_nats, ref.kl_nats, rtol=1e-9)
        assert np.allclose(res.table.se_nats, ref.se_nats, rtol=1e-8)
        assert res.wide_idx.shape == (160, 30) and not np.any(res.wide_idx == np.arange(160)[:, None])
        assert np.array_equal(res.wide_idx[:, :5], idx) or kind == "ivf-pca"
        assert np.all(np.diff(res.wide_sqdist, axis=1) >= -1e-6 * res.wide_sqdist.max())


def test_a_100k_row_map_reduced_to_few_texts(tmp_path):
    """100,000 models (reduced to 12 texts so that it runs in seconds): the out-of-core
    preparation equals the in-memory one bit for bit, and sampled neighbour lists equal brute force."""
    from pylogmap.mapping import knn_search
    from pylogmap.mapping.prepare import MapRows
    from pylogmap.testing import write_synthetic_map

    mf, _ = write_synthetic_map(tmp_path / "big.h5", 100_000, 12, n_families=40, seed=3)
    try:
        memory = MapRows(mf)
        Qm, tvm = memory.build()
        disk = MapRows(mf, memory_budget=1, workdir=tmp_path)
        assert disk.out_of_core and not memory.out_of_core
        assert disk.tau == memory.tau == geometry.clip_threshold(mf.loglik())
        assert disk.digest == memory.digest and np.array_equal(disk.mean_loglik, memory.mean_loglik)
        Qd, tvd = disk.build()
        assert np.array_equal(Qd[0:100_000], Qm) and np.array_equal(tvd, tvm)
        queries = np.random.default_rng(4).choice(100_000, size=64, replace=False)
        got = knn_search.search(Qd, 10, queries=queries, block=8192)
        ref_idx, ref_sq = neighbors.brute_force_neighbors(Qm, 10, queries)
        assert np.array_equal(got.idx, ref_idx) and np.allclose(got.sqdist, ref_sq, rtol=1e-9)
        disk.close()
        memory.close()
    finally:
        mf.close()


def test_the_tiles_in_use_are_described_with_the_fix(monkeypatch):
    """What `pylogmap doctor` prints: the arithmetic in use, and what to install for bf16 tiles."""
    from pylogmap.mapping import gram_bf16

    monkeypatch.delenv("PYLOGMAP_GEMM", raising=False)
    monkeypatch.setattr(gram_bf16, "_tried", False)
    monkeypatch.setattr(gram_bf16, "_lib", None)
    monkeypatch.setattr(gram_bf16, "_mkl_paths", lambda: [])  # MKL not installed
    monkeypatch.setattr(gram_bf16, "cpu_has_amx_bf16", lambda: True)
    assert not gram_bf16.available()
    assert gram_bf16.describe() == ('float32 tiles (this CPU has AMX-BF16: pip install "pylogmap[mkl]" for bf16 '
                                    'tiles, x2 faster)')
    assert not gram_bf16.use_bf16(1000, 1e6)
    monkeypatch.setattr(gram_bf16, "cpu_has_amx_bf16", lambda: False)
    assert gram_bf16.describe() == "float32 tiles (no AMX-BF16 on this CPU)"
    monkeypatch.setenv("PYLOGMAP_GEMM", "bf16")
    assert gram_bf16.describe().startswith("PYLOGMAP_GEMM=bf16 cannot work here: MKL is not installed")
