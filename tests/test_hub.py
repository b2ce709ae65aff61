"""Hub ids and revisions through a real Hugging Face cache (written by huggingface_hub itself), offline
and against a hub on 127.0.0.1: rows per revision, commits, failures, model lists, moved branches."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("torch")

import _hub_helpers as HH  # noqa: E402
import _score_helpers as H  # noqa: E402
from pylogmap import scoring  # noqa: E402
from pylogmap.cli import main  # noqa: E402
from pylogmap.errors import PylogmapError  # noqa: E402
from pylogmap.scoring import hub as hubmod  # noqa: E402
from pylogmap.store import open_map  # noqa: E402

TEXTS = [t.replace("\n", " ") for t in H.shakespeare_texts(5, seed=3, max_lines=4)]
CACHED = [("org/tiny", f"step{s}") for s in HH.CHECKPOINTS] + [
    ("org/tiny", "main"), ("org/tiny-bos", "main"), ("org/tiny-gguf", "main"),
    ("org/encoder", "main"), ("org/distil", "main"), ("org/custom", "main")]


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """The test hub, running for the whole session and stopped whatever happens."""
    served = HH.build_hub(tmp_path_factory.mktemp("hub-models"))
    try:
        yield served
    finally:
        served.server.close()


@pytest.fixture(scope="session")
def hf_home(hub, tmp_path_factory):
    """An HF_HOME whose hub cache holds CACHED, downloaded from the test hub by huggingface_hub."""
    home = tmp_path_factory.mktemp("hf-home")
    HH.fill_cache(hub, home / "hub", CACHED)
    return home


@pytest.fixture
def offline(hf_home, monkeypatch):
    """This process reads the filled cache with HF_HUB_OFFLINE=1 (what the environment would set)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hf_home


@pytest.fixture
def texts_file(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


def hub_env(**extra) -> dict:
    """The environment of a `pylogmap` subprocess: no HF_* settings of this machine, no token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def rows(path):
    with open_map(path) as mf:
        table = mf.models_table()
        return table, mf.loglik(), mf.ntokens(), [json.loads(m) for m in table["meta"]]


def test_the_cache_is_the_one_huggingface_hub_writes(hub, hf_home):
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(hf_home / "hub")
    assert not info.warnings
    refs = {(repo.repo_id, ref): rev.commit_hash for repo in info.repos for rev in repo.revisions for ref in rev.refs}
    for repo, revision in CACHED:
        if (repo, revision) in hub.commits:
            assert refs[(repo, revision)] == hub.commits[(repo, revision)]
    tiny = next(r for r in info.repos if r.repo_id == "org/tiny")
    assert len(tiny.revisions) == len(HH.CHECKPOINTS)  # main is step400: one snapshot, two refs


@pytest.mark.slow  # scores five revisions twice: about 30 s
def test_revisions_offline_are_rows_by_revision_equal_to_the_folders(hub, hf_home, texts_file, tmp_path):
    """`pylogmap score --models org/tiny --revisions step100:step400:100` with HF_HUB_OFFLINE=1 and
    HF_HOME on the cache: one row per revision, its step and commit recorded, the numbers bit for
    bit those of the same weights scored from folders; `pylogmap trajectory` reads them in order."""
    out = tmp_path / "ckpt.h5"
    subprocess.run(
        H.cli_command(["score", "--texts", str(texts_file), "--models", "org/tiny",
                       "--revisions", "step100:step400:100", "-o", str(out), "--quiet"]),
        env=hub_env(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1"), check=True, capture_output=True, timeout=600)
    table, L, T, meta = rows(out)
    assert list(zip(table["name"], table["revision"])) == [("org/tiny", f"step{s}") for s in HH.CHECKPOINTS]
    assert list(table["step"]) == list(HH.CHECKPOINTS) and list(table["status"]) == ["ok"] * 4
    assert [m["commit"] for m in meta] == [hub.commits[("org/tiny", f"step{s}")] for s in HH.CHECKPOINTS]
    assert {m["source"] for m in meta} == {"hub"}

    # the same weights as folders, scored the same way: equal bit for bit
    folders = [hub.folders[("org/tiny", f"step{s}")] for s in HH.CHECKPOINTS]
    folder_out = tmp_path / "folders.h5"
    subprocess.run(H.cli_command(["score", "--texts", str(texts_file), "--models", *folders, "-o", str(folder_out),
                                  "--quiet"]),
                   env=hub_env(HF_HUB_OFFLINE="1"), check=True, capture_output=True, timeout=600)
    ftable, FL, FT, _ = rows(folder_out)
    assert list(ftable["name"]) == [f"tiny-step{s}" for s in HH.CHECKPOINTS]
    np.testing.assert_array_equal(L, FL)
    np.testing.assert_array_equal(T, FT)

    assert main(["trajectory", str(out), "--model", "org/tiny", "--json", "--window", "2"]) == 0


def test_trajectory_reads_the_revisions_in_step_order(hub, offline, tmp_path, capsys):
    out = tmp_path / "traj.h5"
    # given out of order: the trajectory orders them by step
    summary = scoring.score_models(TEXTS, ["org/tiny@step300,step100,step400,step200"], out, progress=False)
    assert [r.status for r in summary.rows] == ["ok"] * 4
    capsys.readouterr()
    assert main(["trajectory", str(out), "--json", "--window", "2"]) == 0
    (traj,) = json.loads(capsys.readouterr().out)["trajectories"]
    assert traj["name"] == "org/tiny" and traj["kind"] == "checkpoints"
    assert traj["positions"] == list(HH.CHECKPOINTS)
    assert traj["labels"] == [f"org/tiny@step{s}" for s in HH.CHECKPOINTS]


def test_bos_and_gguf_repositories(hub, offline, tmp_path):
    out = tmp_path / "kinds.h5"
    bos_folder, gguf_folder = hub.folders[("org/tiny-bos", "main")], hub.folders[("org/tiny-gguf", "main")]
    specs = ["org/tiny-bos", bos_folder, "org/tiny-gguf/tiny.gguf", gguf_folder]
    summary = scoring.score_models(TEXTS, specs, out, progress=False)
    assert [r.status for r in summary.rows] == ["ok"] * 4, summary.table()
    table, L, T, meta = rows(out)
    assert meta[0]["adds_bos"] is True and meta[2]["adds_bos"] is False
    assert meta[0]["commit"] == hub.commits[("org/tiny-bos", "main")]
    assert meta[2]["commit"] == hub.commits[("org/tiny-gguf", "main")] and meta[2]["source"] == "hub"
    bos_ids = scoring.tokenize_texts(H.tokenizer("llama"), TEXTS)
    np.testing.assert_array_equal(T[0], [len(t) - 1 for t in bos_ids])  # the BOS makes the first token scored
    np.testing.assert_array_equal(L[0], L[1])  # hub and folder: the same weights, the same numbers
    np.testing.assert_array_equal(T[2], T[3])  # the GGUF's tokenizer is the folder's
    np.testing.assert_array_equal(L[2], L[3])  # float32 GGUF weights are the folder's weights


def test_offline_failures_are_one_line_each_and_the_run_goes_on(hub, offline, tmp_path):
    out = tmp_path / "fail.h5"
    specs = ["nobody/none", "org/tiny@step500", "org/encoder", "org/distil", "org/custom", "org/tiny@step100"]
    summary = scoring.score_models(TEXTS, specs, out, progress=False)
    assert [r.status for r in summary.rows] == ["failed"] * 5 + ["ok"]
    errors = {r.label: r.error for r in summary.rows}
    assert all("\n" not in e for e in errors.values())
    none = errors["nobody/none"]
    assert "HF_HUB_OFFLINE is set" in none and "not in the local cache" in none
    assert "`hf download nobody/none`" in none and "huggingface-cli" not in none
    missing = errors["org/tiny@step500"]
    assert ("revision 'step500' is not in the local cache, which holds main, step100, step200, step300, "
            "step400") in missing
    assert "`hf download org/tiny --revision step500`" in missing
    assert "not a causal language model" in errors["org/encoder"]  # BERT: loaded with a head, but bidirectional
    assert "DistilBert model has no causal language-model head" in errors["org/distil"]
    assert "--trust-remote-code" in errors["org/custom"]


def test_the_cli_says_each_failure_once(hub, hf_home, texts_file, tmp_path):
    out = tmp_path / "once.h5"
    command = H.cli_command(["score", "--texts", str(texts_file), "--models", "nobody/none", "-o", str(out)])
    done = subprocess.run(command, env=hub_env(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1"), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 1
    assert done.stderr.count("not in the local cache") == 1, done.stderr
    assert "1 of 1 rows failed" in done.stderr


def test_online_failures_against_a_hub_that_answers_like_the_hub(hub, texts_file, tmp_path):
    """HF_ENDPOINT on the test hub, an empty cache, no token: gated, private or unknown repositories
    and unknown revisions fail with what to do; a tag is downloaded and recorded at its commit."""
    out = tmp_path / "online.h5"
    specs = ["org/gated", "org/private", "nobody/none", "org/tiny@step999", "org/tiny@v1"]
    done = subprocess.run(H.cli_command(["score", "--texts", str(texts_file), "--models", *specs, "-o", str(out),
                                         "--quiet"]),
                          env=hub_env(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "empty-home")),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr
    table, L, _, meta = rows(out)
    status = dict(zip(table["name"] + "@" + table["revision"], table["status"]))
    error = dict(zip(table["name"] + "@" + table["revision"], table["error"]))
    assert status["org/tiny@v1"] == "ok" and meta[-1]["commit"] == hub.commits[("org/tiny", "step200")]
    gated = error["org/gated@"]
    assert "gated" in gated and "HF_TOKEN" in gated and "hf auth login" in gated
    for private in ("org/private@", "nobody/none@"):
        assert "no repository" in error[private] and "private" in error[private] and "HF_TOKEN" in error[private]
    assert "has no revision 'step999'; it has main, step100, step200, step300, step400, v1" in error["org/tiny@step999"]
    assert all("\n" not in e for e in error.values())


def test_a_model_list_with_pinned_commits_and_ranges(hub, offline, tmp_path, capsys):
    commit = hub.commits[("org/tiny", "step300")]
    listing = tmp_path / "models.txt"
    listing.write_text(
        "# the paper's list: one id per line\n\n"
        "org/tiny@step100   # a branch\n"
        f"org/tiny@{commit}\n"
        "org/tiny@step200:step400:200\n"
        "org/tiny-bos\n", encoding="utf-8")
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "list.h5"
    assert main(["score", "--texts", str(texts), "--models", f"@{listing}", "-o", str(out), "--quiet"]) == 0
    table, _, _, meta = rows(out)
    assert list(zip(table["name"], table["revision"])) == [
        ("org/tiny", "step100"), ("org/tiny", commit), ("org/tiny", "step200"), ("org/tiny", "step400"),
        ("org/tiny-bos", "")]
    assert [m["commit"] for m in meta[:4]] == [hub.commits[("org/tiny", r)] for r in
                                              ("step100", "step300", "step200", "step400")]
    assert list(table["step"])[:4] == [100, -1, 200, 400]  # a commit names no step


def test_a_rerun_says_when_a_branch_has_moved(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "cache"
    step100, step200 = hub.commits[("org/tiny", "step100")], hub.commits[("org/tiny", "step200")]
    hub.server.point("org/tiny", "moving", step100)
    try:
        HH.fill_cache(hub, cache, [("org/tiny", "moving"), ("org/tiny", "step100")])
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        out = tmp_path / "moving.h5"
        first = scoring.score_models(TEXTS, ["org/tiny@moving", "org/tiny@step100"], out, progress=False)
        assert [r.status for r in first.rows] == ["ok", "ok"]
        again = scoring.score_models(TEXTS, ["org/tiny@moving", "org/tiny@step100"], out, progress=False)
        assert [(r.status, r.note) for r in again.rows] == [("skipped", ""), ("skipped", "")]

        hub.server.point("org/tiny", "moving", step200)  # the branch moves on the hub; the cache follows
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        HH.fill_cache(hub, cache, [("org/tiny", "moving")])
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        moved = scoring.score_models(TEXTS, ["org/tiny@moving", "org/tiny@step100"], out, progress=False)
        assert [r.status for r in moved.rows] == ["skipped", "skipped"]
        note = moved.rows[0].note
        assert f"now points to commit {step200[:12]}" in note and step100[:12] in note and "--force" in note
        assert moved.rows[1].note == ""
        assert "note: org/tiny@moving: moving now points" in moved.table()
        _, _, _, meta = rows(out)
        assert meta[0]["commit"] == step100  # kept as scored
        forced = scoring.score_models(TEXTS, ["org/tiny@moving"], out, progress=False, force=True)
        assert [r.status for r in forced.rows] == ["ok"]
        assert rows(out)[3][0]["commit"] == step200
    finally:
        del hub.server.repos["org/tiny"].branches["moving"]


def test_resolve_commit_and_messages(hub, offline):
    assert scoring.resolve_commit("org/tiny", "step200") == hub.commits[("org/tiny", "step200")]
    assert scoring.resolve_commit("org/tiny", None) == hub.commits[("org/tiny", "main")]
    assert scoring.resolve_commit("org/tiny", "a" * 40) == "a" * 40  # a commit is its own answer
    assert hubmod.cached_revisions("org/tiny") == ["main", "step100", "step200", "step300", "step400"]
    assert hubmod.cached_revisions("nobody/none") is None
    with pytest.raises(PylogmapError, match="not in the local cache"):
        scoring.resolve_commit("org/tiny", "step999")


def test_split_revision_and_model_revisions(tmp_path):
    assert scoring.split_revision("org/name@step100") == ("org/name", "step100")
    assert scoring.split_revision("org/name") == ("org/name", None)
    folder = tmp_path / "run@v2"
    folder.mkdir()
    assert scoring.split_revision(str(folder)) == (str(folder), None)  # an existing path is never split
    for bad in ("org/name@", "@step1"):
        with pytest.raises(PylogmapError, match="org/name@revision"):
            scoring.split_revision(bad)
    pairs = scoring.model_revisions(["a/b@s1:s3:1", "c/d", "a/b@s2"], revisions="step5,step6")
    assert pairs == [("a/b", "s1"), ("a/b", "s2"), ("a/b", "s3"), ("c/d", "step5"), ("c/d", "step6")]
    assert scoring.model_revisions(["a/b"], revision="r") == [("a/b", "r")]
    with pytest.raises(PylogmapError, match="not both"):
        scoring.model_revisions(["a/b"], revision="r", revisions="s")


def test_a_copied_snapshot_folder_scores_like_the_hub_row(hub, offline, tmp_path):
    """A snapshot folder of the cache is a plain model folder too (the way `hf download --local-dir` works)."""
    snapshot = offline / "hub" / "models--org--tiny" / "snapshots" / hub.commits[("org/tiny", "step100")]
    copy = tmp_path / "copied"
    shutil.copytree(snapshot, copy)  # links resolved: a folder of real files
    out = tmp_path / "snap.h5"
    summary = scoring.score_models(TEXTS, ["org/tiny@step100", str(copy)], out, progress=False)
    assert [r.status for r in summary.rows] == ["ok", "ok"]
    _, L, _, _ = rows(out)
    np.testing.assert_array_equal(L[0], L[1])
