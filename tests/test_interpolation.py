"""Weight interpolation (method.md section 8): grid, exact plane coordinates, grid comparison
(pylogmap.analysis.interpolation), merged weights and the scored grid (pylogmap.experiments)."""

from __future__ import annotations

import numpy as np
import pytest

from pylogmap import experiments
from pylogmap.analysis import interpolation as I
from pylogmap.errors import PylogmapError

from _analysis_helpers import single_thread_blas  # noqa: F401  (autouse fixture)


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


# ------------------------------------------------------------------ end to end with the scorer

def test_merge_state_dicts_is_the_affine_combination():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    sds = [{"w": torch.randn(4, 3, generator=g), "h": torch.randn(5, generator=g).half(),
            "pos": torch.arange(6)} for _ in range(3)]
    for sd in sds[1:]:
        sd["pos"] = sds[0]["pos"].clone()
    m = experiments.merge_state_dicts(sds, 0.3, -0.2)
    ref = 0.9 * sds[0]["w"].double() + 0.3 * sds[1]["w"].double() - 0.2 * sds[2]["w"].double()
    torch.testing.assert_close(m["w"].double(), ref, rtol=1e-6, atol=1e-6)  # float32 arithmetic
    assert m["h"].dtype == torch.float16 and torch.equal(m["pos"], sds[0]["pos"])
    # the corners are the models themselves, exactly
    for k, (a, b) in enumerate([(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]):
        corner = experiments.merge_state_dicts(sds, a, b)
        assert torch.equal(corner["w"], sds[k]["w"]) and torch.equal(corner["h"], sds[k]["h"])
    sds[2]["pos"] = sds[2]["pos"] + 1
    with pytest.raises(PylogmapError, match="integer buffer pos"):
        experiments.merge_state_dicts(sds, 0.5, 0.5)


@pytest.mark.slow  # trains and scores tiny models: ~10 s alone, a minute on a loaded machine
def test_interpolate_end_to_end_on_tiny_models(tmp_path, capsys):
    """Three tiny GPT-2 models trained here; the grid's corners must score exactly like the
    models themselves scored directly (their merged weights are bit-identical)."""
    pytest.importorskip("torch")
    pytest.importorskip("pylogmap.scoring")
    import json

    from _analysis_helpers import write_texts
    from _score_helpers import model_dir

    from pylogmap.cli import main
    from pylogmap.store import open_map

    base, a, b = (model_dir("gpt2", seed=s) for s in (0, 1, 2))
    texts = write_texts(tmp_path / "t.jsonl", n=8)
    out = tmp_path / "interp.h5"
    assert main(["interpolate", base, a, b, "--grid", "0.5", "--texts", str(texts), "-o", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["ab"]) == 9
    assert 0.0 <= res["disparity"] <= 1.0 and np.isfinite(res["distance_spearman"])
    ip = res["inner_products"]
    assert ip["ip11"] > 0 and ip["ip22"] > 0 and ip["ip12"] ** 2 < ip["ip11"] * ip["ip22"]
    direct = tmp_path / "direct.h5"
    assert main(["score", "--texts", str(texts), "--models", base, a, b, "-o", str(direct), "--quiet"]) == 0
    with open_map(out) as m:
        names = m.model_names()
        L = m.loglik()
        ann = m.annotations()
    with open_map(direct) as d:
        Ld = d.loglik()
    for (wa, wb), k in (((0.0, 0.0), 0), ((1.0, 0.0), 1), ((0.0, 1.0), 2)):
        row = [i for i in range(len(names)) if ann["interp_a"][i] == wa and ann["interp_b"][i] == wb]
        assert len(row) == 1
        np.testing.assert_allclose(L[row[0]], Ld[k], rtol=1e-6)
    assert not (tmp_path / "interp.h5.models" / "interp_a+0.000_b+0.000").exists()  # deleted after scoring


def test_interpolate_refuses_different_architectures(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("pylogmap.scoring")
    from _analysis_helpers import write_texts
    from _score_helpers import model_dir

    from pylogmap.cli import main

    texts = write_texts(tmp_path / "t.jsonl", n=4)
    code = main(["interpolate", model_dir("gpt2"), model_dir("gpt2", seed=1), model_dir("neox"),
                 "--texts", str(texts), "-o", str(tmp_path / "x.h5")])
    assert code == 2
    assert "one architecture" in capsys.readouterr().err
