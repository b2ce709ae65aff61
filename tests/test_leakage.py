"""Leakage hints: a planted memorised source is found; residuals match a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from pylogmap.analysis import leakage as LK
from pylogmap.errors import PylogmapError

from _analysis_helpers import single_thread_blas  # noqa: F401  (autouse fixture)


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


def _leaky_map_file(path):
    """A map file (through the store) whose texts come from three sources; model-7 memorised 40
    of the 100 'wiki' texts (+60 nats each, far beyond the ~1 nat noise)."""
    from _analysis_helpers import family_population

    from pylogmap.store import MapFile
    from pylogmap.texts import TextSet

    L, _, _ = family_population(K=40, N=300, seed=5)
    sources = np.array(["web", "wiki", "code"])[np.arange(300) % 3]
    leaked = np.nonzero(sources == "wiki")[0][:40]
    L = L.copy()
    L[7, leaked] += 60.0
    texts = TextSet.from_texts([f"text number {k}\nfrom {sources[k]}" for k in range(300)], sources=list(sources))
    keys = [(f"model-{i}", "", -1) for i in range(40)]
    MapFile.create_with_rows(path, texts, keys, L.astype(np.float32)).close()
    return path, set(leaked.tolist())


def test_a_label_names_its_row_even_when_lens_layers_share_the_name():
    """'llama-s1' is a row's label and the name of its logit-lens rows: the label wins (it used to
    count as five rows)."""
    from _analysis_helpers import family_population, make_mapdata

    L, Z, fam = family_population(K=12, N=100, seed=2)
    names = [f"model-{i}" for i in range(9)] + ["model-0"] * 3
    layers = [-1] * 9 + [0, 1, 2]
    data = make_mapdata(L, names=names, layers=layers)
    assert LK.leakage_map(data, "model-0", k=3, top=2)["model"] == "model-0"
    assert LK.leakage_map(data, "model-0#L1", k=3, top=2)["model"] == "model-0#L1"


def test_leakage_command_finds_planted_leak_table_and_json(tmp_path, capsys):
    import json

    from pylogmap.cli import main

    path, leaked = _leaky_map_file(tmp_path / "m.h5")
    assert main(["leakage", str(path), "model-7", "-k", "5", "--top", "40", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["model"] == "model-7" and res["k"] == 5 and "z" not in res
    found = {r["text"] for r in res["top_texts"]}
    assert len(found & leaked) >= 38
    assert all(r["source"] == "wiki" for r in res["top_texts"] if r["text"] in leaked)
    assert res["sources"][0]["source"] == "wiki" and res["sources"][0]["t"] > 3
    assert {s["source"] for s in res["sources"]} == {"web", "wiki", "code"}

    assert main(["leakage", str(path), "model-7", "-k", "5", "--top", "5"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split() == ["text", "source", "z", "snippet"]
    first = lines[3].split()  # header, underline, then the most anomalous text
    assert int(first[0]) in leaked and first[1] == "wiki" and float(first[2]) > 10
    assert f"text number {first[0]} from wiki" in lines[3]  # newline folded in the snippet
    assert "per source" in out and out.count("\n") > 12


def test_leakage_command_errors(tmp_path, capsys):
    from pylogmap.cli import main

    path, _ = _leaky_map_file(tmp_path / "m.h5")
    assert main(["leakage", str(path), "modle-7"]) == 2
    err = capsys.readouterr().err
    assert "no model 'modle-7'" in err and "Did you mean" in err and "model-7" in err
    assert main(["leakage", str(path), "model-7", "-k", "0"]) == 2
    assert "-k must be at least 1" in capsys.readouterr().err
    assert main(["leakage", str(tmp_path / "missing.h5"), "model-7"]) == 2
