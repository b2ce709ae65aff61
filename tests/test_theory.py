"""The theory behind the map, checked on models whose distributions can be enumerated exactly.

Each "language model" is a Markov chain over a 3-token vocabulary producing sequences of 6
tokens, so there are 3^6 = 729 possible texts and every probability is exact. Models are
perturbations ``logits = base + eps * direction_i`` of a base chain; the texts are sampled from
the base chain (the "text distribution"), as the map paper samples texts from the Pile.

What is checked:
1. The estimator converges to its population value ``Var_r(log p_i - log p_j) / 2`` as N grows,
   within the reported (delta-method) standard error, and the SE is calibrated (coverage).
2. That population value approaches the exact Jeffreys divergence / 2,
   ``J/2 = sum_x (p_i(x) - p_j(x)) (log p_i(x) - log p_j(x)) / 2``, as the models get closer
   (relative gap O(eps), the next order of the expansion).
3. Hence the estimate from N sampled texts approaches J/2, and the all-pairs matrix of
   geometry.pairwise_kl matches the exact Jeffreys matrix.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pylogmap.mapping import geometry

V, T = 3, 6
SEQS = np.array(list(itertools.product(range(V), repeat=T)))


def chain_logp(init_logits, trans_logits):
    """Exact log-probability of every sequence in SEQS under a Markov chain."""
    li = init_logits - np.logaddexp.reduce(init_logits)
    lt = trans_logits - np.logaddexp.reduce(trans_logits, axis=1, keepdims=True)
    lp = li[SEQS[:, 0]]
    for t in range(1, T):
        lp = lp + lt[SEQS[:, t - 1], SEQS[:, t]]
    return lp


def family(eps, n_models=5, seed=0):
    """Reference chain and n_models perturbed chains (fixed directions, scale eps)."""
    rng = np.random.default_rng(seed)
    bi, bt = rng.normal(0, 1, V), rng.normal(0, 1, (V, V))
    dirs = [(rng.normal(0, 1, V), rng.normal(0, 1, (V, V))) for _ in range(n_models)]
    ref = chain_logp(bi, bt)
    models = np.stack([chain_logp(bi + eps * di, bt + eps * dt) for di, dt in dirs])
    return ref, models


def jeffreys_half(a, b):
    return float(np.sum((np.exp(a) - np.exp(b)) * (a - b)) / 2)


def population_half_var(ref, a, b):
    pr = np.exp(ref)
    d = a - b
    m = np.sum(pr * d)
    return float(np.sum(pr * (d - m) ** 2) / 2)


def sample_L(ref, models, N, rng):
    idx = rng.choice(ref.size, size=N, p=np.exp(ref) / np.exp(ref).sum())
    return models[:, idx]


def test_enumeration_is_a_distribution():
    ref, models = family(0.1)
    assert np.exp(ref).sum() == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(np.exp(models).sum(axis=1), 1.0, atol=1e-12)


def test_population_variance_approaches_jeffreys_as_models_get_closer():
    gaps = []
    for eps in (0.4, 0.2, 0.1, 0.05, 0.025):
        ref, models = family(eps)
        j = jeffreys_half(models[0], models[1])
        v = population_half_var(ref, models[0], models[1])
        gaps.append(abs(v - j) / j)
    # relative gap shrinks with eps (first order), below 1 % for the closest models
    assert all(g2 < g1 for g1, g2 in zip(gaps[1:], gaps[2:]))
    assert gaps[-1] < 0.01
    assert gaps[-1] < gaps[1] / 4  # eps / 8 -> gap at least / 4


def test_estimate_converges_to_jeffreys_within_reported_se():
    ref, models = family(0.05)
    a, b = models[0], models[1]
    j = jeffreys_half(a, b)
    v = population_half_var(ref, a, b)
    rng = np.random.default_rng(1)
    errors, ses = [], []
    for N in (1_000, 10_000, 100_000):
        L = sample_L(ref, models[:2], N, rng)
        kl, se = geometry.kl_estimate(L[0], L[1])
        # the estimator is consistent for v, within its SE (4 SE: a 6e-5 two-sided tail)
        assert abs(kl - v) <= 4 * se, (N, kl, v, se)
        # and v differs from J/2 only by the approximation's next-order term
        assert abs(kl - j) <= 4 * se + abs(v - j)
        errors.append(abs(kl - j) / j)
        ses.append(se)
    # the SE shrinks like 1/sqrt(N): a factor ~10 over a factor 100 in N
    assert ses[2] / ses[0] == pytest.approx(0.1, rel=0.3)
    assert errors[-1] < 0.03


def test_standard_error_is_calibrated():
    """Over repeated samples of N texts, |estimate - truth| <= 1.96 SE about 95 % of the time.

    400 replications: the binomial SD of the coverage is 1.1 %; we accept [0.90, 0.985].
    """
    ref, models = family(0.2, seed=3)
    a, b = models[0], models[1]
    v = population_half_var(ref, a, b)
    rng = np.random.default_rng(4)
    N = 2000
    p = np.exp(ref) / np.exp(ref).sum()
    draws = rng.choice(ref.size, size=(400, N), p=p)
    kl, se = geometry.kl_estimate(a[draws], b[draws])
    coverage = np.mean(np.abs(kl - v) <= 1.96 * se)
    assert 0.90 <= coverage <= 0.985, coverage
    # the SE is also close to the actual spread of the estimates
    assert np.mean(se) == pytest.approx(np.std(kl), rel=0.15)


def test_all_pairs_matrix_matches_exact_jeffreys():
    ref, models = family(0.05, n_models=6, seed=5)
    K = models.shape[0]
    J = np.array([[jeffreys_half(models[i], models[j]) for j in range(K)] for i in range(K)])
    L = sample_L(ref, models, 200_000, np.random.default_rng(6))
    P = geometry.pairwise_kl(geometry.double_center(L))
    off = ~np.eye(K, dtype=bool)
    rel = np.abs(P[off] - J[off]) / J[off]
    assert rel.max() < 0.05, rel.max()
    assert np.all(np.diag(P) == 0)
    # the geometry of the population (what the map shows) is preserved
    assert np.corrcoef(P[off], J[off])[0, 1] > 0.999
