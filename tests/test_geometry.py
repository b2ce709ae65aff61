"""geometry.py against float64 brute-force loops on random matrices.

Tolerances: the brute-force references are plain float64 loops, so agreement is limited only
by float64 rounding of sums over N <= 2000 terms of magnitude <= ~1e3: relative 1e-10 is
generous yet would catch any formula error (a wrong 1/N vs 1/(N-1) is a 1e-3 effect).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pylogmap.mapping import geometry
from pylogmap.errors import PylogmapError

RTOL = 1e-10


def _random_L(K=12, N=300, seed=0):
    rng = np.random.default_rng(seed)
    # Log-likelihood-like: per-text difficulty + per-model offset + model-text interaction,
    # plus a heavy lower tail so that clipping matters.
    text = rng.gamma(2.0, 150.0, size=N)
    L = -(text[None, :] * rng.uniform(0.8, 1.2, size=(K, 1))) + rng.normal(0, 5, size=(K, N))
    tail = rng.random((K, N)) < 0.03
    L[tail] -= rng.uniform(500, 5000, size=int(tail.sum()))
    return L


def _brute_quantile(values, q):
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def test_clip_threshold_matches_numpy_and_brute_force():
    L = _random_L(seed=1)
    tau = geometry.clip_threshold(L)
    assert tau == np.quantile(L, 0.02)  # bit-identical to the paper's np.quantile call
    assert tau == pytest.approx(_brute_quantile(L.ravel().tolist(), 0.02), rel=1e-13)
    L32 = L.astype(np.float32)
    assert geometry.clip_threshold(L32) == pytest.approx(float(np.quantile(L32.astype(np.float64), 0.02)), rel=1e-12)


def test_clip_reuses_existing_tau_and_never_touches_input():
    L = _random_L(seed=2)
    before = L.copy()
    Lc, tau = geometry.clip(L)
    assert np.array_equal(L, before)
    K, N = L.shape
    for i in range(K):
        for k in range(N):
            assert Lc[i, k] == max(L[i, k], tau)
    Lc2, tau2 = geometry.clip(L[:3], tau=-100.0)
    assert tau2 == -100.0 and Lc2.min() == -100.0


def test_double_center_matches_loops():
    L = _random_L(K=9, N=120, seed=3)
    Q = geometry.double_center(L)
    K, N = L.shape
    row = [sum(L[i]) / N for i in range(K)]
    col = [sum(L[i][k] for i in range(K)) / K for k in range(N)]
    tot = sum(row) / K
    for i in range(K):
        for k in range(N):
            assert Q[i, k] == pytest.approx(L[i, k] - row[i] - col[k] + tot, rel=RTOL, abs=1e-9)
    # float32 input: float32 output, means in float64 (error = one float32 rounding of |Q|)
    Q32 = geometry.double_center(L.astype(np.float32))
    assert Q32.dtype == np.float32
    Qref = geometry.double_center(L.astype(np.float32).astype(np.float64))
    assert np.max(np.abs(Q32 - Qref)) <= 1e-6 * np.max(np.abs(Qref)) + 1e-6


def test_identity_norm_over_N_equals_variance_of_difference():
    L, _ = geometry.clip(_random_L(seed=4))
    Q = geometry.double_center(L)
    K, N = L.shape
    for i in range(K):
        for j in range(K):
            d = [L[i, k] - L[j, k] for k in range(N)]
            m = sum(d) / N
            var = sum((x - m) ** 2 for x in d) / N
            sq = sum((Q[i, k] - Q[j, k]) ** 2 for k in range(N))
            assert sq / N == pytest.approx(var, rel=1e-9, abs=1e-9)


def test_kl_estimate_and_se_match_loops():
    rng = np.random.default_rng(5)
    a = rng.normal(-300, 30, size=500)
    b = a + rng.standard_t(4, size=500) * 3 + 2.0
    kl, se = geometry.kl_estimate(a, b)
    d = [x - y for x, y in zip(a, b)]
    N = len(d)
    m = sum(d) / N
    m2 = sum((x - m) ** 2 for x in d) / N
    m4 = sum((x - m) ** 4 for x in d) / N
    assert kl == pytest.approx(m2 / 2, rel=RTOL)
    assert se == pytest.approx(math.sqrt((m4 - m2 * m2) / N) / 2, rel=RTOL)
    # symmetric, zero on itself
    assert geometry.kl_estimate(b, a) == pytest.approx((kl, se), rel=1e-12)
    assert geometry.kl_estimate(a, a) == (0.0, 0.0)


def test_se_agrees_with_bootstrap_over_texts():
    """The delta-method SE vs the bootstrap SD of the estimate (B = 2000 resamples).

    The bootstrap SD has Monte-Carlo relative error ~ 1/sqrt(2B) ~ 1.6 %, and the delta method
    is first-order; for N = 2000 heavy-ish tailed differences we accept 10 %.
    """
    rng = np.random.default_rng(6)
    N = 2000
    a = rng.normal(0, 20, size=N)
    b = a + rng.standard_t(6, size=N) * 2
    _, se = geometry.kl_estimate(a, b)
    boot = np.empty(2000)
    for r in range(boot.size):
        idx = rng.integers(0, N, size=N)
        boot[r] = geometry.kl_estimate(a[idx], b[idx])[0]
    assert se == pytest.approx(boot.std(), rel=0.10)


def test_bits_per_byte():
    assert geometry.to_bits_per_byte(math.log(2) * 1000, 1000) == pytest.approx(1.0, rel=1e-15)
    arr = geometry.to_bits_per_byte(np.array([0.0, 2 * math.log(2)]), 2.0)
    assert np.allclose(arr, [0.0, 1.0])
    # scaling Q by bits_per_byte_scale makes squared distances KL in bits/byte
    L, _ = geometry.clip(_random_L(seed=7))
    Q = geometry.double_center(L)
    B = 972.0
    s = geometry.bits_per_byte_scale(Q.shape[1], B)
    kl_nats, _ = geometry.kl_estimate(L[0], L[1])
    assert np.sum((s * Q[0] - s * Q[1]) ** 2) == pytest.approx(geometry.to_bits_per_byte(kl_nats, B), rel=1e-9)
    with pytest.raises(PylogmapError, match="mean text length"):
        geometry.to_bits_per_byte(1.0, 0)


@pytest.mark.parametrize("block", [1, 5, None])
def test_pairwise_kl_blockwise_matches_brute_force(block):
    L, _ = geometry.clip(_random_L(K=13, N=150, seed=8))
    Q = geometry.double_center(L)
    P = geometry.pairwise_kl(Q, block=block)
    K = L.shape[0]
    for i in range(K):
        for j in range(K):
            ref = np.var(L[i] - L[j]) / 2  # population variance
            assert P[i, j] == pytest.approx(ref, rel=1e-9, abs=1e-9)
    assert np.array_equal(np.diag(P), np.zeros(K))
    # rows subset, L vs Q give the same numbers (centring cancels), float32 input accepted
    Psub = geometry.pairwise_kl(L, rows=[4, 0])
    assert np.allclose(Psub, P[[4, 0]], rtol=1e-9, atol=1e-9)
    P32 = geometry.pairwise_kl(Q.astype(np.float32))
    assert np.allclose(P32, P, rtol=1e-5, atol=1e-6 * P.max())


def test_pairwise_kl_is_accurate_for_near_identical_models():
    """Gram-identity cancellation: two rows differing by 1e-3 nats with |L| ~ 1e3."""
    rng = np.random.default_rng(9)
    base = -np.abs(rng.normal(800, 200, size=1000))
    L = np.vstack([base, base + rng.normal(0, 1e-3, size=1000), base * 0.9])
    P = geometry.pairwise_kl(L)
    ref = np.var(L[0] - L[1]) / 2
    assert P[0, 1] == pytest.approx(ref, rel=1e-4)


def test_pairwise_kl_refuses_huge_outputs(monkeypatch):
    monkeypatch.setattr(geometry, "MAX_PAIRWISE_BYTES", 100)
    with pytest.raises(PylogmapError, match="rows="):
        geometry.pairwise_kl(np.zeros((10, 4)))


def test_kl_estimate_pairs_matches_single_calls():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(20, 64))
    a = rng.integers(0, 20, size=(7, 3))
    b = rng.integers(0, 20, size=(7, 3))
    kl, se = geometry.kl_estimate_pairs(X, a, b, scratch_bytes=64 * 8 * 3 * 2)
    for p in range(7):
        for q in range(3):
            ref = geometry.kl_estimate(X[a[p, q]], X[b[p, q]])
            assert (kl[p, q], se[p, q]) == pytest.approx(ref, rel=1e-12, abs=1e-15)


def test_mean_loglik_and_text_variance():
    L = _random_L(K=8, N=40, seed=11)
    ml = geometry.mean_loglik(L)
    for i in range(8):
        assert ml[i] == pytest.approx(sum(L[i]) / 40, rel=RTOL)
    L2 = L.copy()
    L2[3, 5] = np.nan
    assert np.isnan(geometry.mean_loglik(L2)[3])
    Lc, _ = geometry.clip(L)
    Q = geometry.double_center(Lc)
    tv = geometry.text_variance(Q)
    R = Lc - Lc.mean(axis=1, keepdims=True)  # row-centred
    for k in range(40):
        col = [R[i, k] for i in range(8)]
        m = sum(col) / 8
        assert tv[k] == pytest.approx(sum((x - m) ** 2 for x in col) / 8, rel=1e-9, abs=1e-9)
        assert tv[k] == pytest.approx(np.mean(Q[:, k] ** 2), rel=1e-9, abs=1e-9)


def test_select_rows_reports_nan_inf_and_status():
    L = _random_L(K=6, N=30, seed=12)
    L[1, 3] = np.nan
    L[1, 4] = np.nan
    L[2] = np.nan
    L[4, 0] = -np.inf
    sel = geometry.select_rows(L, status=["ok", "ok", "ok", "ok", "ok", "failed"])
    assert sel.used.tolist() == [True, False, False, True, False, False]
    assert sel.excluded[1] == "2 NaN entries (not scored)"
    assert sel.excluded[2] == "30 NaN entries (not scored)"
    assert sel.excluded[4] == "1 infinite entries"
    assert sel.excluded[5] == "status failed"
    text = sel.describe(labels=[f"m{i}" for i in range(6)])
    assert text.startswith("4 row(s) excluded") and "m1 (2 NaN" in text


def test_nan_input_is_a_clear_error():
    L = _random_L(K=4, N=10, seed=13)
    L[0, 0] = np.nan
    for fn in (geometry.clip, geometry.double_center, geometry.pairwise_kl):
        with pytest.raises(PylogmapError, match="NaN"):
            fn(L)


def test_build_geometry_excludes_rows_and_keeps_caller_matrix():
    L = _random_L(K=7, N=50, seed=14).astype(np.float32)
    L[2, 7] = np.nan
    before = L.copy()
    geo = geometry.build_geometry(L, text_bytes=np.full(50, 900))
    assert np.array_equal(L, before, equal_nan=True)
    assert geo.rows.tolist() == [0, 1, 3, 4, 5, 6]
    assert geo.Q.dtype == np.float32 and geo.Q.shape == (6, 50)
    ref_tau = float(np.quantile(L[geo.rows].astype(np.float64), 0.02))
    assert geo.tau == pytest.approx(ref_tau, rel=1e-12)
    kl, se = geo.kl(0, 1)
    Lc = np.maximum(L[geo.rows].astype(np.float64), np.float32(geo.tau))
    assert kl == pytest.approx(np.var(Lc[0] - Lc[1]) / 2, rel=1e-5)
    assert geo.bits(kl) == pytest.approx(kl / (900 * math.log(2)))
    with pytest.raises(PylogmapError, match="score some models"):
        geometry.build_geometry(np.full((3, 4), np.nan))


def test_kl_estimate_lists_matches_single_calls_and_marks_missing():
    rng = np.random.default_rng(15)
    X = rng.normal(size=(30, 80))
    queries = np.array([0, 4, 29])
    lists = rng.integers(0, 30, size=(3, 5))
    lists[1, 3] = -1
    kl, se = geometry.kl_estimate_lists(X, queries, lists, scratch_bytes=80 * 8 * 5 * 2)
    for a, q in enumerate(queries):
        for c in range(5):
            if lists[a, c] < 0:
                assert np.isnan(kl[a, c]) and np.isnan(se[a, c])
            else:
                ref = geometry.kl_estimate(X[q], X[lists[a, c]])
                assert (kl[a, c], se[a, c]) == pytest.approx(ref, rel=1e-12, abs=1e-15)


def test_float32_moments_have_no_cancellation_with_large_offsets():
    """Rows of L (not centred) differ by a large offset; float32 differences summed in float64
    must still give the variance to float32 precision (1e-6), not the 1e-2 a naive
    E[d^2] - E[d]^2 in float32 would give."""
    rng = np.random.default_rng(16)
    a = (-800 + rng.normal(0, 3, size=10_000)).astype(np.float32)
    b = (a - 150 + rng.normal(0, 0.5, size=10_000)).astype(np.float32)
    kl32, se32 = geometry.kl_estimate(a, b)
    X = np.vstack([a, b])
    assert geometry.kl_estimate_pairs(X, [0], [1])[0][0] == pytest.approx(kl32, rel=1e-12)
    assert geometry.kl_estimate_lists(X, [0], [[1]])[0][0, 0] == pytest.approx(kl32, rel=1e-12)
    d = a.astype(np.float64) - b.astype(np.float64)
    assert kl32 == pytest.approx(np.var(d) / 2, rel=1e-6)
    m2, m4 = np.mean((d - d.mean()) ** 2), np.mean((d - d.mean()) ** 4)
    assert se32 == pytest.approx(np.sqrt((m4 - m2**2) / d.size) / 2, rel=1e-5)


def test_pairwise_tiles_cover_every_pair_once_and_stream_out_of_core(tmp_path):
    from pylogmap.mapping.rowstore import DiskRows

    L, _ = geometry.clip(_random_L(K=23, N=80, seed=12))
    Q = geometry.double_center(L).astype(np.float32)
    full = geometry.pairwise_kl(Q)
    seen = np.zeros((23, 23), dtype=int)
    with DiskRows(23, 80, directory=tmp_path) as X:
        X.write(0, Q)
        for ra, rb, tile in geometry.iter_pairwise_kl_tiles(X, block=5):
            assert ra.start <= rb.start
            assert np.allclose(tile, full[ra, rb], rtol=1e-12, atol=1e-12)
            seen[ra, rb] += 1
            if ra != rb:
                seen[rb, ra] += 1
    assert np.all(seen == 1)
