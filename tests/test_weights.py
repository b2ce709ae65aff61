"""Weight-space distances along checkpoints (pylogmap.experiments.weights): float64 sums over
every parameter, numpy and torch alike, and the windowed distances with and without caching."""

from __future__ import annotations

import numpy as np
import pytest

from pylogmap.errors import PylogmapError
from pylogmap.experiments import weights as W


def test_squared_weight_distance_float64_numpy_and_torch():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    a = {"w": torch.randn(30, 20, generator=g), "b": torch.randn(20, generator=g)}
    b = {k: v + 1e-3 * torch.randn(v.shape, generator=g) for k, v in a.items()}
    ref = sum(((a[k].double() - b[k].double()) ** 2).sum().item() for k in a)
    assert W.squared_weight_distance(a, b) == pytest.approx(ref, rel=1e-12)
    # bf16 parameters: differences formed after the exact upcast to float64.
    a16 = {k: v.bfloat16() for k, v in a.items()}
    b16 = {k: v.bfloat16() for k, v in b.items()}
    ref16 = sum(((a16[k].double() - b16[k].double()) ** 2).sum().item() for k in a)
    assert W.squared_weight_distance(a16, b16) == pytest.approx(ref16, rel=1e-12)
    npd = {k: v.numpy() for k, v in a.items()}
    assert W.squared_weight_distance(npd, a) == 0.0
    with pytest.raises(PylogmapError, match="same parameters"):
        W.squared_weight_distance(a, {"w": a["w"]})
    with pytest.raises(PylogmapError, match="shape"):
        W.squared_weight_distance(a, {"w": a["w"][:3], "b": a["b"]})


def test_weight_window_distances_loads_and_caches():
    rng = np.random.default_rng(14)
    path = np.cumsum(rng.normal(size=(6, 50)), axis=0)
    calls = []

    def loader(i):
        def load():
            calls.append(i)
            return {"p": path[i]}
        return load

    loaders = [loader(i) for i in range(6)]
    D = W.weight_window_distances(loaders, window=2, cache=True)
    assert sorted(calls) == list(range(6))
    for a in range(6):
        for b in range(6):
            if a < b <= a + 2:
                assert D[a, b] == pytest.approx(np.sum((path[a] - path[b]) ** 2))
            else:
                assert np.isnan(D[a, b])
    calls.clear()
    D2 = W.weight_window_distances(loaders, window=2)
    np.testing.assert_array_equal(np.isnan(D), np.isnan(D2))
    assert len(calls) > 6


def _write_checkpoints(root, path):
    """One model folder per row of `path` (a [T, 50] walk), its weights split over two tensors."""
    from safetensors.numpy import save_file

    folders = []
    for t, theta in enumerate(path):
        folder = root / f"checkpoint-{t + 1}"
        folder.mkdir(parents=True)
        save_file({"a.weight": theta[:30].reshape(5, 6).copy(), "b.bias": theta[30:].copy()},
                  str(folder / "model.safetensors"))
        folders.append(folder)
    return folders


def test_checkpoint_weight_distances_reads_the_folders(tmp_path):
    rng = np.random.default_rng(3)
    path = np.cumsum(rng.normal(size=(5, 50)), axis=0).astype(np.float32)
    folders = _write_checkpoints(tmp_path / "run", path)
    D = W.checkpoint_weight_distances([(str(f), "") for f in folders], window=2)
    p64 = path.astype(np.float64)
    for a in range(5):
        for b in range(5):
            if a < b <= a + 2:
                assert D[a, b] == pytest.approx(np.sum((p64[a] - p64[b]) ** 2), rel=1e-12)
            else:
                assert np.isnan(D[a, b])
    assert W.load_state_dict(folders[0])["b.bias"].dtype == np.float32  # read as numpy, no torch


def test_checkpoint_folder_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PylogmapError, match="not available locally.*Leave out --weights"):
        W.checkpoint_weight_distances([("nobody/no-such-model", "step1"), ("nobody/no-such-model", "step2")])
    with pytest.raises(PylogmapError, match="no weights"):
        W.load_state_dict(tmp_path)


def test_trajectories_map_uses_the_weight_distances_it_is_given():
    """The map side fits weight-space exponents on distances from the function it is handed,
    called once per checkpoint trajectory with its (name, revision) rows in step order."""
    from _analysis_helpers import make_mapdata

    from pylogmap.analysis import trajectories_map

    rng = np.random.default_rng(4)
    T_len, N = 8, 300
    L = -300 + np.cumsum(rng.normal(size=(T_len, N)), axis=0)
    order = rng.permutation(T_len)  # rows not in step order
    revs = [f"step{100 * (t + 1)}" for t in order]
    data = make_mapdata(L[order], names=["pythia"] * T_len, revisions=revs)
    calls = []

    def distances(checkpoints, window):
        calls.append((list(checkpoints), window))
        steps = np.array([int(r[4:]) for _, r in checkpoints], dtype=np.float64)
        return np.abs(steps[None, :] - steps[:, None]) ** 0.5  # exponent 0.5 exactly

    res = trajectories_map(data, window=3, weight_distances=distances)
    assert calls == [([("pythia", f"step{100 * (t + 1)}") for t in range(T_len)], 3)]
    (t,) = res["trajectories"]
    assert t["diffusion"]["weights"]["summary"]["mean"] == pytest.approx(0.5, abs=1e-9)
    assert "weights" not in trajectories_map(data, window=3)["trajectories"][0]["diffusion"]
