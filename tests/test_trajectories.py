"""Trajectories and diffusion exponents (method.md section 7) on paths with known exponents."""

from __future__ import annotations

import numpy as np
import pytest

from pylogmap.analysis import trajectories as T
from pylogmap.errors import PylogmapError

from _analysis_helpers import single_thread_blas  # noqa: F401  (autouse fixture)


def _fbm(T_len, dims, hurst, rng):
    """Exact fractional Brownian motion at t = 1..T_len (Cholesky of its covariance), `dims` copies."""
    t = np.arange(1, T_len + 1, dtype=np.float64)
    h2 = 2 * hurst
    cov = 0.5 * (t[:, None] ** h2 + t[None, :] ** h2 - np.abs(t[:, None] - t[None, :]) ** h2)
    chol = np.linalg.cholesky(cov)
    return t, chol @ rng.normal(size=(T_len, dims))


def _sq_dist_window(X, window):
    return T.window_distances(len(X), lambda a, b: float(np.sum((X[a] - X[b]) ** 2)), window)


@pytest.mark.parametrize("hurst, expected", [(0.5, 1.0), (0.3, 0.6), (0.7, 1.4)])
def test_fractional_brownian_motion_exponent_is_2h(hurst, expected):
    # E||x_t - x_t0||^2 = dims * (t - t0)^(2H) exactly; with 400 independent coordinates the
    # relative fluctuation of D is ~ sqrt(2/400) = 7 %, which moves the fitted slope over
    # log(1..10) by a few hundredths; averaged over ~100 starts, 0.03 is a safe bound.
    rng = np.random.default_rng(11)
    t, X = _fbm(120, 400, hurst, rng)
    res = T.diffusion_exponents(t, _sq_dist_window(X, 10), window=10)
    assert res["summary"]["n_starts"] == 118  # the last two starts have < 2 later points
    assert res["summary"]["mean"] == pytest.approx(expected, abs=0.03)
    assert np.all(res["n_points"] <= 10)


def test_brownian_random_walk_in_steps_of_1000():
    # A Pythia-like step axis: positions 1000, 2000, ...; the exponent does not depend on units.
    rng = np.random.default_rng(12)
    X = np.cumsum(rng.normal(size=(80, 500)), axis=0)
    steps = 1000 * np.arange(1, 81)
    res = T.diffusion_exponents(steps, _sq_dist_window(X, 10))
    assert res["summary"]["median"] == pytest.approx(1.0, abs=0.03)
    # The intercept carries the units: log D = c log(1000 k) + b with D ~ 500 k.
    assert np.median(res["b"]) == pytest.approx(np.log(500) - np.log(1000), abs=0.15)


def test_diffusion_fit_matches_polyfit_on_exact_power_law():
    pos = np.arange(15, dtype=float)
    D = np.full((15, 15), np.nan)
    for a in range(15):
        for b in range(a + 1, 15):
            D[a, b] = 3.0 * (b - a) ** 0.45
    res = T.diffusion_exponents(pos, D, window=4)
    np.testing.assert_allclose(res["c"], 0.45, atol=1e-12)
    np.testing.assert_allclose(res["b"], np.log(3.0), atol=1e-12)
    assert res["n_points"].tolist() == [4] * 11 + [3, 2]
    with pytest.raises(PylogmapError, match="increase"):
        T.diffusion_exponents(pos[::-1], D)


def test_group_trajectories_checkpoints_layers_and_folders():
    names = ["EleutherAI/pythia-70m"] * 3 + ["llama"] * 3 + ["runs/a/checkpoint-200", "runs/a/checkpoint-50", "solo"]
    revisions = ["step2000", "step1000", "step11000", "", "", "", "", "", ""]
    layers = [-1, -1, -1, 2, 0, 1, -1, -1, -1]
    steps = [-1, -1, -1, -1, -1, -1, -1, -1, -1]
    trajs = T.group_trajectories(names, revisions, layers, steps)
    by = {(t.name, t.kind): t for t in trajs}
    assert set(by) == {("EleutherAI/pythia-70m", "checkpoints"), ("llama", "layers"), ("runs/a", "checkpoints")}
    assert by[("EleutherAI/pythia-70m", "checkpoints")].positions.tolist() == [1000, 2000, 11000]
    assert by[("EleutherAI/pythia-70m", "checkpoints")].rows.tolist() == [1, 0, 2]
    assert by[("llama", "layers")].rows.tolist() == [4, 5, 3]
    assert by[("runs/a", "checkpoints")].positions.tolist() == [50, 200]
    # A stored step wins over the revision text.
    trajs = T.group_trajectories(["m", "m"], ["main", "later"], [-1, -1], [5, 3])
    assert trajs[0].rows.tolist() == [1, 0]
    assert [t.name for t in T.group_trajectories(names, revisions, layers, steps, model="llama")] == ["llama"]


def test_a_stepless_final_model_beside_checkpoints_is_left_out():
    trajs = T.group_trajectories(["m", "m", "m"], ["", "step10", "step20"], [-1, -1, -1])
    (t,) = trajs
    assert t.rows.tolist() == [1, 2] and t.skipped == ["m"]
    with pytest.raises(PylogmapError, match="no step number"):
        T.group_trajectories(["m", "m", "m"], ["", "main", "step20"], [-1, -1, -1])


def test_checkpoints_without_step_numbers_is_a_clear_error():
    with pytest.raises(PylogmapError, match="no step number"):
        T.group_trajectories(["m", "m"], ["main", "dev"], [-1, -1], [-1, -1])
    with pytest.raises(PylogmapError, match="repeat step"):
        T.group_trajectories(["m", "m"], ["step1", "ckpt-1"], [-1, -1])


def test_jumpy_texts_drops_the_largest_changes():
    rng = np.random.default_rng(13)
    L = np.cumsum(rng.normal(size=(10, 200)) * 0.1, axis=0)
    L[4, [7, 50, 123]] += 30.0  # three texts jump once
    L[5:, [7, 50, 123]] += 30.0
    keep = T.jumpy_texts([L], frac=0.03)  # round(200 * 0.03) = 6
    assert keep.sum() == 194
    assert not keep[[7, 50, 123]].any()
    assert T.jumpy_texts([L], frac=0.0).all()


# ------------------------------------------------------------------ map level

from _analysis_helpers import make_mapdata  # noqa: E402


def _checkpoint_map(T_len=40, N=3000, seed=21):
    """Checkpoints whose log-likelihood vectors follow a random walk (exponent 1), plus a
    3-layer logit-lens trajectory and an unrelated model."""
    rng = np.random.default_rng(seed)
    base = -300 + rng.normal(size=N) * 50
    walk = np.cumsum(rng.normal(size=(T_len, N)), axis=0)
    L = np.vstack([base + walk, base + rng.normal(size=(3, N)) * 5, base[None] + 1.0])
    names = ["pythia"] * T_len + ["llama"] * 3 + ["other"]
    revs = [f"step{1000 * (t + 1)}" for t in range(T_len)] + ["", "", "", ""]
    layers = [-1] * T_len + [0, 1, 2, -1]
    return make_mapdata(L, names=names, revisions=revs, layers=layers), L


def test_trajectories_map_checkpoints_and_layers():
    from pylogmap.mapping import geometry

    data, L = _checkpoint_map()
    res = T.trajectories_map(data)
    by = {(t["name"], t["kind"]): t for t in res["trajectories"]}
    assert set(by) == {("pythia", "checkpoints"), ("llama", "layers")}
    ck = by[("pythia", "checkpoints")]
    assert ck["positions"].tolist() == [1000 * (t + 1) for t in range(40)]
    # consecutive KLs equal geometry's estimate on the clipped vectors, in nats and bits/byte
    Lc, tau = geometry.clip(L[data.used])
    kl0, se0 = geometry.kl_estimate(Lc[0], Lc[1])
    assert ck["consecutive"]["kl_nats"][0] == pytest.approx(kl0, rel=1e-12)
    assert ck["consecutive"]["se_nats"][0] == pytest.approx(se0, rel=1e-12)
    assert ck["consecutive"]["kl_bpb"][0] == pytest.approx(kl0 / (1000 * np.log(2)), rel=1e-9)
    # a random walk in log-likelihood space: exponent 1 (KL ~ Var of the increments / 2)
    assert ck["diffusion"]["loglik"]["summary"]["mean"] == pytest.approx(1.0, abs=0.05)
    assert "loglik" not in by[("llama", "layers")]["diffusion"]
    only = T.trajectories_map(data, model="llama")
    assert [t["name"] for t in only["trajectories"]] == ["llama"]
    with pytest.raises(PylogmapError, match="no trajectory for 'nobody'"):
        T.trajectories_map(data, model="nobody")


def test_trajectories_map_drops_jumpy_texts():
    data, L = _checkpoint_map(T_len=12, N=1000)
    res = T.trajectories_map(data, drop_jumpy=0.03)
    assert res["n_texts_dropped"] == 30 and res["n_texts_used"] == 970
    ck = [t for t in res["trajectories"] if t["kind"] == "checkpoints"][0]
    assert np.all(np.isfinite(ck["consecutive"]["kl_nats"]))


def test_dropping_nearly_every_text_says_which_option_to_change():
    data, L = _checkpoint_map(T_len=12, N=50)
    with pytest.raises(PylogmapError, match=r"dropping 0.99 of the 50 texts as jumpy leaves 0.*smaller --drop-jumpy"):
        T.trajectories_map(data, drop_jumpy=0.99)


def test_trajectory_command_json_and_table(tmp_path, capsys):
    import json

    from _analysis_helpers import write_map

    from pylogmap.cli import main

    data, L = _checkpoint_map(T_len=14, N=400)
    keys = [(n, r, int(ly)) for n, r, ly in zip(data.names, data.revisions, data.layers)]
    path = write_map(tmp_path / "m.h5", L, keys)
    assert main(["trajectory", str(path), "--json", "--drop-jumpy", "0.03"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_texts_dropped"] == 12
    ck = [t for t in out["trajectories"] if t["kind"] == "checkpoints"][0]
    assert len(ck["consecutive"]["kl_bpb"]) == 13 and all(v > 0 for v in ck["consecutive"]["kl_bpb"])
    assert ck["diffusion"]["loglik"]["summary"]["n_starts"] == 12
    png = tmp_path / "t.png"
    args = ["trajectory", str(path), "--model", "pythia"]
    try:
        import matplotlib  # noqa: F401

        args += ["--plot", str(png)]
    except ImportError:
        png = None
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "diffusion exponent (loglik space" in text and "KL bits/byte" in text
    if png is not None:
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_trajectory_command_checkpoints_without_steps(tmp_path, capsys):
    from _analysis_helpers import write_map

    from pylogmap.cli import main

    rng = np.random.default_rng(0)
    L = -100 + rng.normal(size=(3, 50))
    path = write_map(tmp_path / "m.h5", L, [("m", "main", -1), ("m", "dev", -1), ("x", "", -1)])
    assert main(["trajectory", str(path)]) == 2
    assert "no step number" in capsys.readouterr().err


# ------------------------------------------------------------------ end to end with the scorer

@pytest.mark.slow  # trains and scores tiny models: ~10 s alone, a minute on a loaded machine
def test_trajectory_end_to_end_on_tiny_trained_checkpoints(tmp_path, capsys):
    """A tiny model trained here with a checkpoint after every step; the real scorer scores the
    checkpoint folders; the trajectory command orders them by step and gives finite KLs and
    exponents in log-likelihood and weight space. Weight distances are checked against a
    direct float64 torch computation from the saved folders."""
    pytest.importorskip("torch")
    pytest.importorskip("pylogmap.scoring")
    import json

    from _analysis_helpers import train_with_checkpoints, write_texts
    from transformers import AutoModelForCausalLM

    from pylogmap.cli import main

    ckpts = train_with_checkpoints(tmp_path / "run", steps=8)
    texts = write_texts(tmp_path / "texts.jsonl", n=10)
    out = tmp_path / "ckpt.h5"
    order = [ckpts[i] for i in (3, 0, 8, 5, 1, 2, 7, 4, 6)]  # scoring order does not matter
    assert main(["score", "--texts", str(texts), "--models", *order, "-o", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["trajectory", str(out), "--json", "--weights", "--window", "4"]) == 0
    res = json.loads(capsys.readouterr().out)
    (t,) = res["trajectories"]
    assert t["kind"] == "checkpoints" and t["positions"] == list(range(9))
    assert t["name"] == "run"  # folders run/checkpoint-<step> are rows run/checkpoint-<step>
    kl = np.array(t["consecutive"]["kl_nats"], dtype=float)
    assert kl.shape == (8,) and np.all(np.isfinite(kl)) and np.all(kl > 0)
    assert np.all(np.isfinite(t["consecutive"]["se_bpb"]))
    for space in ("loglik", "weights"):
        c = np.array(t["diffusion"][space]["c"], dtype=float)
        assert len(c) == 7 and np.all(np.isfinite(c))
    # weight distance of the first fit point against torch float64 over all parameters
    m0, m1 = (AutoModelForCausalLM.from_pretrained(ckpts[i]) for i in (0, 1))
    p1 = dict(m1.named_parameters())
    ref = sum(float(((p.detach().double() - p1[n].detach().double()) ** 2).sum()) for n, p in m0.named_parameters())
    b = t["diffusion"]["weights"]["b"][0]
    c0 = t["diffusion"]["weights"]["c"][0]
    assert ref > 0 and np.isfinite(b) and np.isfinite(c0)
    from pylogmap.experiments import load_state_dict, squared_weight_distance

    got = squared_weight_distance(load_state_dict(ckpts[0]), load_state_dict(ckpts[1]))
    # The saved state dict holds the tied embedding once (GPT-2 ties lm_head): same sum.
    assert got == pytest.approx(ref, rel=1e-12)
