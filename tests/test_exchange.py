"""Import and export (`pylogmap.io.exchange`): data-only pickles, maps scored since 'map', --force."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from pylogmap.cli import main
from pylogmap.store import open_map
from pylogmap.testing import synthetic_texts, write_synthetic_map

FAST = ["--tsne-iter", "250", "-q"]


class _Payload:
    """Unpickling this with `pickle.load` creates `path`: a stand-in for a shell command."""

    def __init__(self, path):
        self.path = Path(path)

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.fixture()
def texts_file(tmp_path):
    rng = np.random.default_rng(1)
    texts = synthetic_texts(rng.integers(257, 700, size=20))
    texts.to_jsonl(tmp_path / "texts.jsonl")
    return tmp_path / "texts.jsonl"


def test_import_refuses_a_pickle_that_runs_code_and_writes_nothing(tmp_path, texts_file, capsys):
    marker = tmp_path / "ran"
    vectors = {f"m{i}": -np.abs(np.random.default_rng(i).normal(300, 30, 20)) for i in range(3)}
    (tmp_path / "crafted.pkl").write_bytes(pickle.dumps({**vectors, "evil": _Payload(marker)}))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["import", str(tmp_path / "crafted.pkl"), "--texts", str(texts_file), "-o", str(tmp_path / "o.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "asks to run pathlib.Path.touch" in err[0] and "nothing of it ran" in err[0]
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # the same data without the payload imports
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps(vectors))
    assert main(["import", str(tmp_path / "plain.pkl"), "--texts", str(texts_file), "-o", str(tmp_path / "o.h5")]) == 0


def test_import_replaces_only_with_force_and_notes_minus_inf_rows(tmp_path, texts_file, capsys):
    vectors = {f"m{i}": -np.abs(np.random.default_rng(i).normal(300, 30, 20)) for i in range(4)}
    vectors["m3"][7] = -np.inf
    (tmp_path / "v.pkl").write_bytes(pickle.dumps(vectors))
    args = ["import", str(tmp_path / "v.pkl"), "--texts", str(texts_file), "-o", str(tmp_path / "o.h5")]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "m3" in captured.err and "-inf" in captured.err and "rescore" in captured.err
    assert main(args) == 2
    assert "already exists; pass --force to replace it" in capsys.readouterr().err
    assert main([*args, "--json", "--force"]) == 0
    assert json.loads(capsys.readouterr().out)["infinite_rows"] == ["m3"]


def test_export_of_a_map_scored_since_map_exports_every_row(tmp_path, capsys):
    """Score a new model, export before re-mapping: an ordinary workflow, once three crashes."""
    import anndata
    import pandas as pd

    path = tmp_path / "m.h5"
    mf, pop = write_synthetic_map(path, 12, 40, n_families=3, seed=2)
    mf.close()
    assert main(["map", str(path), "-k", "2", *FAST]) == 0
    with open_map(path, mode="a") as mf:
        mf.append_rows(["new/a", "new/b"], mf.loglik([0, 1]) - 1.0)
    for name in ("x.csv", "x.parquet", "x.h5ad"):
        assert main(["export", str(path), "-o", str(tmp_path / name)]) == 0
        err = capsys.readouterr().err
        assert "2 model(s) scored since the last map have no coordinates yet: new/a, new/b" in err
        assert f"pylogmap map {path}" in err
    df = pd.read_csv(tmp_path / "x.csv")
    assert df["label"].tolist() == pop.names + ["new/a", "new/b"]
    assert df["on_map"].tolist() == [True] * 12 + [False, False]
    assert df["tsne_x"][:12].notna().all() and df["tsne_x"][12:].isna().all()
    assert np.allclose(df["mean_loglik"][12:], [np.mean(pop.L[0] - 1.0), np.mean(pop.L[1] - 1.0)], rtol=1e-6)
    assert pd.read_parquet(tmp_path / "x.parquet")["label"].tolist() == df["label"].tolist()
    ad = anndata.read_h5ad(tmp_path / "x.h5ad")
    assert ad.shape == (14, 40) and np.isnan(ad.obsm["X_tsne"][12:]).all()
    assert main(["export", str(path), "-o", str(tmp_path / "x.csv"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["unplaced"] == ["new/a", "new/b"] and rep["stale"] is True
    # the matrix has no coordinates: no note
    assert main(["export", str(path), "-o", str(tmp_path / "L.npy")]) == 0
    assert capsys.readouterr().err == ""


def test_export_says_when_rows_changed_since_map(tmp_path, capsys):
    path = tmp_path / "m.h5"
    write_synthetic_map(path, 10, 30, n_families=2, seed=4)[0].close()
    assert main(["map", str(path), "-k", "2", *FAST]) == 0
    assert main(["export", str(path), "-o", str(tmp_path / "a.csv")]) == 0
    assert capsys.readouterr().err == ""
    with open_map(path, mode="a") as mf:
        key = mf.keys()[3]
        mf.append_rows([key], mf.loglik([3]) - 5.0)  # rescored in place
    assert main(["export", str(path), "-o", str(tmp_path / "a.csv")]) == 0
    assert "rows changed since the last map" in capsys.readouterr().err
