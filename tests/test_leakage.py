"""Leakage hints: a planted memorised source is found; residuals match a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from pylogmap.analysis import leakage as LK
from pylogmap.errors import PylogmapError


def test_neighbour_residuals_match_brute_force():
    rng = np.random.default_rng(0)
    Q = rng.normal(size=(9, 30))
    R = LK.neighbour_residuals(Q, k=3)
    for i in range(9):
        d = [(np.sum((Q[i] - Q[j]) ** 2), j) for j in range(9) if j != i]
        nn = [j for _, j in sorted(d)[:3]]
        np.testing.assert_allclose(R[i], Q[i] - Q[nn].mean(0), rtol=1e-12, atol=1e-12)
    with pytest.raises(PylogmapError, match="at least 3"):
        LK.neighbour_residuals(Q[:2])


def test_planted_leak_is_found_in_texts_and_sources():
    from _analysis_helpers import family_population, make_mapdata

    from pylogmap.texts import TextSet

    L, Z, fam = family_population(K=40, N=300, seed=5)
    sources = np.array(["web", "wiki", "code"])[np.arange(300) % 3]
    leaked = np.nonzero(sources == "wiki")[0][:40]  # model 7 memorised 40 wiki texts
    L = L.copy()
    L[7, leaked] += 60.0  # memorised: far easier than its neighbours find them
    texts = TextSet.from_texts([f"text {k}" for k in range(300)], sources=list(sources))
    data = make_mapdata(L)
    res = LK.leakage_map(data, "model-7", k=5, top=40, texts=texts)
    found = {r["text"] for r in res["top_texts"]}
    assert len(found & set(leaked.tolist())) >= 38
    assert res["sources"][0]["source"] == "wiki" and res["sources"][0]["t"] > 3  # 40 of its 100 texts leak
    clean = LK.leakage_map(data, "model-8", k=5, top=40, texts=texts)
    assert max(abs(s["t"]) for s in clean["sources"]) < 4
    with pytest.raises(PylogmapError, match="names 0"):
        LK.leakage_map(data, "nobody")
