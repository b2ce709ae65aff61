"""`pylogmap score`: the command line, bad input, exit codes, and crash safety (kill -9, resume)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import _score_helpers as H  # noqa: E402
from pylogmap.cli import main  # noqa: E402


@pytest.fixture
def texts_file(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(t.replace("\n", " ") for t in H.shakespeare_texts(6, max_lines=6)) + "\n",
                    encoding="utf-8")
    return path


def run_cli(*args):
    return main(["score", *map(str, args), "--quiet"])


def read(path):
    from pylogmap.store import open_map

    with open_map(path) as mf:
        return mf.loglik(), mf.ntokens(), mf.models_table()


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as err:
        main(["score", "--help"])
    assert err.value.code == 0
    out = capsys.readouterr().out
    for option in ("--texts", "--models", "--dtype", "--device", "--batch-tokens", "--revision",
                   "--revisions", "--layers", "--force", "--retry-failed", "--save-token-logprobs",
                   "--trust-remote-code", "--executor", "@FILE"):
        assert option in out


@pytest.mark.parametrize("module", ["pylogmap.scoring", "pylogmap.experiments", "pylogmap.kernels"])
def test_the_model_side_imports_without_torch(module):
    """torch and transformers load when a model is scored, not when the package is imported, so
    'pylogmap score/add/interpolate --help' stay light (their command modules import these)."""
    import sys

    code = f"import sys, {module}\nprint(' '.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_scores_models_given_directly_and_from_a_list(tmp_path, texts_file):
    listing = tmp_path / "models.txt"
    listing.write_text(f"# tiny models\n{H.model_dir('llama')}   # llama style\n\n", encoding="utf-8")
    out = tmp_path / "map.h5"
    assert run_cli("--texts", texts_file, "--models", H.model_dir("gpt2"), f"@{listing}", "-o", out) == 0
    L, T, table = read(out)
    assert list(table["name"]) == [Path(H.model_dir("gpt2")).name, Path(H.model_dir("llama")).name]
    assert L.shape == (2, 6) and np.isfinite(L).all() and (T > 0).all()


def test_missing_texts_file(tmp_path, capsys):
    out = tmp_path / "map.h5"
    assert run_cli("--texts", tmp_path / "nope.jsonl", "--models", H.model_dir("gpt2"), "-o", out) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_empty_text_set(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    out = tmp_path / "map.h5"
    assert run_cli("--texts", empty, "--models", H.model_dir("gpt2"), "-o", out) == 2
    assert "no texts" in capsys.readouterr().err
    assert not out.exists()


def test_empty_model_list(tmp_path, texts_file, capsys):
    listing = tmp_path / "models.txt"
    listing.write_text("# nothing here\n", encoding="utf-8")
    assert run_cli("--texts", texts_file, "--models", f"@{listing}", "-o", tmp_path / "m.h5") == 2
    assert "model list is empty" in capsys.readouterr().err
    assert run_cli("--texts", texts_file, "--models", "@" + str(tmp_path / "none.txt"), "-o", tmp_path / "m.h5") == 2


def test_unknown_model_offline_is_recorded_failed(tmp_path, texts_file, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "map.h5"
    assert run_cli("--texts", texts_file, "--models", "nobody/no-such-model", H.model_dir("gpt2"), "-o", out) == 1
    err = capsys.readouterr().err
    assert "1 of 2 rows failed" in err and "--retry-failed" in err
    L, _, table = read(out)
    assert list(table["status"]) == ["failed", "ok"] and "HF_HUB_OFFLINE" in table["error"][0]
    assert np.isnan(L[0]).all() and np.isfinite(L[1]).all()


def test_other_text_set_and_corrupt_file_are_not_written_over(tmp_path, texts_file, capsys):
    out = tmp_path / "map.h5"
    assert run_cli("--texts", texts_file, "--models", H.model_dir("gpt2"), "-o", out) == 0
    before = out.read_bytes()
    other = tmp_path / "other.txt"
    other.write_text("A different text.\nAnd another one.\n", encoding="utf-8")
    assert run_cli("--texts", other, "--models", H.model_dir("gpt2"), "-o", out) == 2
    assert "another text set" in capsys.readouterr().err
    assert out.read_bytes() == before

    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"this is not an HDF5 file")
    for extra in ([], ["--force"]):
        assert run_cli("--texts", texts_file, "--models", H.model_dir("gpt2"), "-o", corrupt, *extra) == 2
        assert "nothing was written" in capsys.readouterr().err.lower()
        assert corrupt.read_bytes() == b"this is not an HDF5 file"


def test_bad_layers_and_revisions(tmp_path, texts_file, capsys):
    out = tmp_path / "map.h5"
    assert run_cli("--texts", texts_file, "--models", H.model_dir("gpt2"), "-o", out, "--layers", "x") == 2
    assert "layer list" in capsys.readouterr().err
    assert run_cli("--texts", texts_file, "--models", "a/b", "-o", out, "--revisions", "step5:step1:1") == 2
    assert "ends before it starts" in capsys.readouterr().err
    assert run_cli("--texts", texts_file, "--models", "a/b@step5:step1:1", "-o", out) == 2  # a model's own range
    assert "ends before it starts" in capsys.readouterr().err
    assert run_cli("--texts", texts_file, "--models", "a/b@", "-o", out) == 2
    assert "write org/name@revision" in capsys.readouterr().err
    assert not out.exists()


def _crash_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONHASHSEED="0")
    return env


def _wait_for_models(path, n, proc, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if H.finished_rows(path) >= n:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow  # kills real runs at several points: about 30 s
def test_kill_9_then_resume_gives_the_uninterrupted_result(tmp_path, texts_file):
    archs = ["gpt2", "neox", "llama"]
    models = [H.model_dir(a) for a in archs]
    common = ["score", "--texts", str(texts_file), "--models", *models, "--quiet", "--batch-tokens", "256"]
    env = _crash_env()

    full = tmp_path / "full.h5"
    subprocess.run(H.cli_command([*common, "-o", str(full)]), env=env, check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    crashed = tmp_path / "crashed.h5"
    proc = subprocess.Popen(H.cli_command([*common, "-o", str(crashed)]), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = _wait_for_models(crashed, 1, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert started, "the scorer ended before finishing its first model"
    L_mid, _, table_mid = read(crashed)  # readable right after the kill (journal applied)
    assert 1 <= len(table_mid["name"]) < len(models), "the kill should land in the middle of the run"
    assert np.isfinite(L_mid).all()

    subprocess.run(H.cli_command([*common, "-o", str(crashed)]), env=env, check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    L_full, T_full, table_full = read(full)
    L_res, T_res, table_res = read(crashed)
    order = [list(table_res["name"]).index(name) for name in table_full["name"]]
    assert sorted(table_res["name"]) == sorted(table_full["name"])
    np.testing.assert_array_equal(L_res[order], L_full)
    np.testing.assert_array_equal(T_res[order], T_full)
    assert list(table_res["status"]) == ["ok"] * len(models)
    assert not list(tmp_path.glob("*.tmp"))
