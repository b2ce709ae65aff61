"""Synthetic populations: realistic where the map side depends on it, valid map files, fast."""

from __future__ import annotations

import numpy as np

from pylogmap.store import open_map
from pylogmap.testing import synthetic_population, write_synthetic_map


def test_population_is_deterministic_negative_and_heavy_tailed():
    a = synthetic_population(300, 400, n_families=4, seed=3)
    b = synthetic_population(300, 400, n_families=4, seed=3)
    np.testing.assert_array_equal(a.L, b.L)
    assert a.names == b.names and len(set(a.names)) == 300
    assert a.L.dtype == np.float32 and a.L.shape == (300, 400)
    assert (a.L < 0).all() and np.isfinite(a.L).all()
    assert not np.array_equal(a.L, synthetic_population(300, 400, n_families=4, seed=4).L)
    tau = np.quantile(a.L, 0.02)
    # like the published matrix (min about 14.5x the 2 % quantile): clipping changes the data
    assert a.L.min() < 4 * tau
    assert -1500 < np.median(a.L) < -300  # texts of ~1 kB cost a few hundred nats
    assert set(a.family_index.tolist()) == {0, 1, 2, 3}
    assert a.ntokens.shape == (300, 400) and (a.ntokens > 0).all()
    assert ((a.n_bytes > 256) & (a.n_bytes <= 1024)).all()


def test_families_are_closer_to_each_other_than_to_other_families():
    """The structure the map should recover: the KL estimate (method.md s.3) between two models of
    one family is smaller, on average, than between families."""
    pop = synthetic_population(120, 500, n_families=3, seed=0)
    L = np.maximum(pop.L, np.quantile(pop.L, 0.02))
    Q = L - L.mean(1, keepdims=True)
    Q -= Q.mean(0, keepdims=True)
    sq = (Q**2).sum(1)
    D = sq[:, None] + sq[None, :] - 2 * Q @ Q.T
    same = pop.family_index[:, None] == pop.family_index[None, :]
    off = ~np.eye(len(D), dtype=bool)
    ok = ~pop.broken
    mask = ok[:, None] & ok[None, :] & off
    assert D[same & mask].mean() < 0.7 * D[~same & mask].mean()


def test_write_synthetic_map_is_a_valid_map(tmp_path):
    path = tmp_path / "syn.h5"
    mf, pop = write_synthetic_map(path, 2000, 50, n_families=6, seed=1)
    mf.close()
    with open_map(path) as mf:
        assert (mf.n_models, mf.n_texts) == (2000, 50)
        np.testing.assert_array_equal(mf.loglik(), pop.L)
        np.testing.assert_array_equal(mf.ntokens(), pop.ntokens)
        assert mf.model_names() == pop.names
        assert mf.annotations()["family"].tolist() == pop.families
        np.testing.assert_array_equal(mf.text_bytes(), pop.n_bytes)
        texts = mf.texts()
        assert [len(t.encode()) for t in texts.texts] == pop.n_bytes.tolist()
        assert texts.hash == mf.text_hash
        assert (mf.models_table()["n_params"] > 0).all()
