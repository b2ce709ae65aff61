"""Every command, fed broken paths and files, answers in one line and leaves nothing behind.

For each command and each kind of bad input (a missing path, an empty file, a folder, a file that
is not HDF5, a truncated HDF5 file, binary garbage as CSV/JSONL/pickle/.npy/text, a path under a
missing folder, an output in a folder that refuses new files or a read-only one) the promise is
the same: no traceback; either exit status 2 with exactly one line on stderr that names the
problem, or a clean success; and no file is created, changed or left half-written in the folders
involved (temporary files included). The commands run in-process through `cli.main`, so the
whole sweep takes seconds.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from pylogmap.cli import main
from pylogmap.testing import write_synthetic_map

N_MODELS, N_TEXTS = 8, 30


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Valid inputs, in a folder of their own (never written by the sweep)."""
    d = tmp_path_factory.mktemp("good")
    mf, pop = write_synthetic_map(d / "map.h5", N_MODELS, N_TEXTS, n_families=2, seed=1)
    mf.close()
    assert main(["map", str(d / "map.h5"), "--no-tsne", "-k", "2", "-q"]) == 0
    assert main(["export", str(d / "map.h5"), "-o", str(d / "L.npy")]) == 0
    with open(d / "published.pkl", "wb") as f:
        pickle.dump({n: -np.abs(np.random.default_rng(0).normal(300, 30, N_TEXTS)) for n in pop.names}, f)
    (d / "scores.csv").write_text("model,ARC\n" + "".join(f"{n},{40 + i}\n" for i, n in enumerate(pop.names)))
    (d / "corpus.txt").write_text("".join(f"document {i} " + "word " * 80 + "\n" for i in range(40)))
    return {"dir": d, "map": d / "map.h5", "npy": d / "L.npy", "names": d / "L.models.txt",
            "texts": d / "L.texts.jsonl", "pkl": d / "published.pkl", "csv": d / "scores.csv",
            "corpus": d / "corpus.txt", "model": pop.names[0], "other": pop.names[1]}


@pytest.fixture(scope="module")
def broken(tmp_path_factory, good):
    """name -> a bad input path (in a folder of their own)."""
    d = tmp_path_factory.mktemp("broken")
    rng = np.random.default_rng(5)
    garbage = rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes()
    out = {"missing": d / "missing.h5", "folder": d / "folder", "under_missing": d / "nope" / "x.h5"}
    (d / "folder").mkdir()
    for suffix in (".h5", ".csv", ".jsonl", ".pkl", ".npy", ".txt"):
        (d / f"empty{suffix}").write_bytes(b"")
        (d / f"garbage{suffix}").write_bytes(garbage)
        out[f"empty{suffix}"] = d / f"empty{suffix}"
        out[f"garbage{suffix}"] = d / f"garbage{suffix}"
    (d / "notes.h5").write_text("this is not an HDF5 file\n")
    out["not_hdf5"] = d / "notes.h5"
    data = good["map"].read_bytes()
    (d / "truncated.h5").write_bytes(data[: len(data) // 2])
    out["truncated"] = d / "truncated.h5"
    (d / "pickled_code.pkl").write_bytes(pickle.dumps({"a": _Exploit(d / "pwned")}))
    out["pickled_code.pkl"] = d / "pickled_code.pkl"
    return out


class _Exploit:
    """A pickle payload that would create a file if it were ever executed."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _tree(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `folders`: path -> (size, mtime_ns)."""
    out = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for p in [folder, *folder.rglob("*")]:
            st = p.lstat()
            out[str(p)] = (st.st_size if p.is_file() else -1, st.st_mtime_ns if p.is_file() else 0)
    return out


def _run(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exit_:  # argparse: the test's own argv is wrong
        pytest.fail(f"{argv}: argparse exit {exit_.code}: {capsys.readouterr().err}")
    except BaseException as err:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{argv}: traceback instead of a message: {type(err).__name__}: {err}")
    return rc, capsys.readouterr().err


def _check(argv, capsys, folders, *, may_succeed=False):
    before = _tree(*folders)
    rc, err = _run([str(a) for a in argv], capsys)
    after = _tree(*folders)
    lines = [line for line in err.splitlines() if line.strip()]
    if rc == 0 and may_succeed:
        left = [p for p in set(after) - set(before) if ".tmp" in Path(p).name]
        assert not left, f"{argv}: temporary files left: {left}"
        return rc, err
    assert rc == 2, f"{argv}: exit {rc}, stderr {err!r}"
    assert len(lines) == 1, f"{argv}: expected one line on stderr, got {lines}"
    command = argv[0]
    assert lines[0].startswith(f"pylogmap {command}: error: "), lines[0]
    assert after == before, f"{argv}: files created or changed: {set(after) ^ set(before)}"
    return rc, err


MAP_COMMANDS = [
    ["info", "{}"],
    ["map", "{}", "-q", "--no-tsne"],
    ["neighbors", "{}", "{model}"],
    ["kl", "{}", "{model}", "{other}"],
    ["annotate", "{}"],
    ["annotate", "{}", "{csv}"],
    ["export", "{}", "-o", "{out}/x.csv"],
    ["export", "{}", "-o", "{out}/x.npy"],
    ["predict", "{}", "{csv}", "--seeds", "1"],
    ["resample", "{}", "--seeds", "2"],
    ["trajectory", "{}"],
    ["leakage", "{}", "{model}"],
]

MAP_INPUTS = ["missing", "folder", "empty.h5", "not_hdf5", "truncated", "garbage.h5", "under_missing"]


def _fill(template, bad, good, out):
    return [t.format(bad, model=good["model"], other=good["other"], csv=good["csv"], out=out) for t in template]


@pytest.mark.parametrize("kind", MAP_INPUTS)
def test_broken_map_files(kind, good, broken, tmp_path, capsys):
    folders = [good["dir"], broken[kind].parent, tmp_path]
    for template in MAP_COMMANDS:
        _check(_fill(template, broken[kind], good, tmp_path), capsys, folders)
    # a file that is not HDF5 is read as a text set (one text per line): it may be one
    _check(["texts", "info", broken[kind]], capsys, folders, may_succeed=kind == "not_hdf5")


TEXT_INPUTS = ["missing", "folder", "empty.jsonl", "empty.txt", "garbage.jsonl", "garbage.txt", "garbage.h5",
               "under_missing"]


@pytest.mark.parametrize("kind", TEXT_INPUTS)
def test_broken_text_sets_and_corpora(kind, good, broken, tmp_path, capsys):
    bad = broken[kind]
    folders = [good["dir"], bad.parent, tmp_path]
    for argv in (
        ["texts", "make", bad, "-o", tmp_path / "t.jsonl", "--sample-size", "5", "--pool-size", "10"],
        ["texts", "info", bad],
        ["import", good["npy"], "--models", good["names"], "--texts", bad, "-o", tmp_path / "o.h5"],
        ["import", good["pkl"], "--texts", bad, "-o", tmp_path / "o.h5"],
    ):
        # An empty folder is a text set of no texts, a folder of garbage is refused: both fail.
        _check(argv, capsys, folders)


@pytest.mark.parametrize("kind", ["missing", "folder", "empty.jsonl", "garbage.jsonl", "truncated"])
def test_commands_with_models_fail_on_their_files_before_loading_any(kind, good, broken, tmp_path, capsys):
    """score, add, interpolate and view: a bad text set or map is reported before any model loads."""
    bad = broken[kind]
    folders = [good["dir"], bad.parent, tmp_path]
    for argv in (
        ["score", "--texts", bad, "--models", "no/such-model", "-o", tmp_path / "s.h5", "--quiet"],
        ["interpolate", "no/a", "no/b", "no/c", "--texts", bad, "-o", tmp_path / "i.h5"],
        ["add", bad, "--models", "no/such-model"],
        ["view", bad, "--screenshot", tmp_path / "v.png"],
    ):
        if argv[0] in ("add", "view") and kind in ("empty.jsonl", "garbage.jsonl"):
            argv[1] = broken["garbage.h5"]
        _check(argv, capsys, folders)


TABLE_INPUTS = ["missing", "folder", "empty.csv", "garbage.csv", "garbage.h5"]


@pytest.mark.parametrize("kind", TABLE_INPUTS)
def test_broken_tables(kind, good, broken, tmp_path, capsys):
    work = tmp_path / "map.h5"
    shutil.copy(good["map"], work)
    for argv in (["annotate", work, broken[kind]], ["predict", work, broken[kind], "--seeds", "1"]):
        _check(argv, capsys, [good["dir"], broken[kind].parent, tmp_path])


MATRIX_INPUTS = ["missing", "folder", "empty.npy", "garbage.npy", "empty.pkl", "garbage.pkl", "pickled_code.pkl",
                 "garbage.txt"]


@pytest.mark.parametrize("kind", MATRIX_INPUTS)
def test_broken_matrices_pickles_and_names(kind, good, broken, tmp_path, capsys):
    bad = broken[kind]
    folders = [good["dir"], bad.parent, tmp_path]
    if bad.suffix == ".pkl":
        argv = ["import", bad, "--texts", good["texts"], "-o", tmp_path / "o.h5"]
    elif bad.suffix == ".npy":
        argv = ["import", bad, "--models", good["names"], "--texts", good["texts"], "-o", tmp_path / "o.h5"]
    else:
        argv = ["import", good["npy"], "--models", bad, "--texts", good["texts"], "-o", tmp_path / "o.h5"]
    _check(argv, capsys, folders)
    assert not (bad.parent / "pwned").exists(), "the pickle ran code"


def _unwritable_targets(tmp_path):
    """Output places a file cannot be written to: (name, path)."""
    (tmp_path / "adir.out").mkdir()
    targets = [("missing folder", tmp_path / "nope" / "out"), ("a folder", tmp_path / "adir.out"),
               ("a file as folder", tmp_path / "file" / "out")]
    (tmp_path / "file").write_text("x")
    if Path("/proc").is_dir():
        targets.append(("no new files", Path("/proc") / "pylogmap-out"))
    for folder in ("/sys", "/"):  # read-only or refused for this user, where the machine has one
        probe = Path(folder) / ".pylogmap-probe"
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            probe.unlink()
        except OSError:
            targets.append((f"read-only {folder}", probe.with_name("pylogmap-out")))
            break
    return targets


def _output_commands(good, target: Path):
    def with_suffix(suffix):
        return target if target.is_dir() else target.with_name(target.name + suffix)

    return [
        ["export", good["map"], "-o", with_suffix(".csv")],
        ["export", good["map"], "-o", with_suffix(".parquet")],
        ["export", good["map"], "-o", with_suffix(".npy")],
        ["export", good["map"], "-o", with_suffix(".h5ad")],
        ["texts", "make", good["corpus"], "-o", with_suffix(".jsonl"), "--sample-size", "5", "--pool-size", "10",
         "--max-bytes", "64", "--min-bytes", "16", "--force"],
        ["import", good["npy"], "--models", good["names"], "--texts", good["texts"], "-o", with_suffix(".h5"), "--force"],
        ["import", good["pkl"], "--texts", good["texts"], "-o", with_suffix(".h5"), "--force"],
        ["resample", good["map"], "--seeds", "2", "--sizes", "5", "--plot", with_suffix(".png")],
        ["trajectory", good["map"], "--plot", with_suffix(".png")],
    ]


def test_outputs_that_cannot_be_written(good, tmp_path, capsys):
    for name, target in _unwritable_targets(tmp_path):
        folders = [good["dir"], tmp_path] + ([target.parent] if target.parent.is_dir() and
                                             target.parent != Path("/") else [])
        for argv in _output_commands(good, target):
            if target.parent in (Path("/proc"), Path("/sys"), Path("/")):
                folders = [good["dir"], tmp_path]
            _check(argv, capsys, folders)


def test_an_existing_output_is_kept_without_force(good, tmp_path, capsys):
    for path, argv in (
        (tmp_path / "t.jsonl", ["texts", "make", good["corpus"], "-o", tmp_path / "t.jsonl"]),
        (tmp_path / "o.h5", ["import", good["pkl"], "--texts", good["texts"], "-o", tmp_path / "o.h5"]),
    ):
        path.write_text("keep me")
        _, err = _check(argv, capsys, [good["dir"], tmp_path])
        assert "already exists; pass --force" in err
        assert path.read_text() == "keep me"


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EACCES])
def test_write_errors_midway_leave_nothing(code, good, tmp_path, capsys, monkeypatch):
    """The disk fills up (or turns read-only) while an export is written: one line, the old file
    untouched, no temporary left."""
    out = tmp_path / "x.csv"
    out.write_text("old content")

    def failing_fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    for argv in (["export", good["map"], "-o", out], ["export", good["map"], "-o", tmp_path / "x.npy"],
                 ["texts", "make", good["corpus"], "-o", tmp_path / "t.jsonl", "--sample-size", "5",
                  "--pool-size", "10", "--max-bytes", "64", "--min-bytes", "16"]):
        _, err = _check(argv, capsys, [good["dir"], tmp_path])
        assert os.strerror(code).split()[0].lower() in err.lower() or "read-only" in err or "space" in err
    assert out.read_text() == "old content"


def test_a_good_run_of_each_output_leaves_only_its_files(good, tmp_path, capsys):
    """The sweep's control: the same commands on writable targets succeed, with no temporaries."""
    for argv in _output_commands(good, tmp_path / "out"):
        if argv[0] == "trajectory":  # the synthetic map has no trajectories to plot
            continue
        rc, _ = _check(argv, capsys, [good["dir"], tmp_path], may_succeed=True)
        assert rc == 0, argv
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert hidden == []


@pytest.mark.parametrize("argv, message", [
    (["texts", "make", "{corpus}", "-o", "{out}/t.jsonl", "--max-documents", "-1"], "--max-documents must be at least 1"),
    (["texts", "make", "{corpus}", "-o", "{out}/t.jsonl", "--max-bytes", "0"], "need 0 <= --min-bytes < --max-bytes"),
    (["texts", "make", "{corpus}", "-o", "{out}/t.jsonl", "--sample-size", "0"], "--sample-size must be at least 1"),
    (["texts", "make", "{corpus}", "-o", "{out}/t.jsonl", "--pool-size", "-3"], "--pool-size must be 0 (all chunks)"),
    (["info", "{map}", "--limit", "-1"], "--limit must be 0 or more"),
    (["resample", "{map}", "--methods", ",", "--seeds", "2"], "--methods names no method"),
    (["resample", "{map}", "--sizes", "1000000000000", "--seeds", "1"], "draws per text"),
    (["predict", "{map}", "{csv}", "--targets", ",", "--no-write"], "--targets names no column"),
    (["score", "--texts", "{texts}", "--models", "@{garbage}", "-o", "{out}/s.h5"], "not valid UTF-8"),
])
def test_bad_option_values_are_one_line(argv, message, good, broken, tmp_path, capsys):
    filled = [a.format(corpus=good["corpus"], out=tmp_path, map=good["map"], csv=good["csv"], texts=good["texts"],
                       garbage=broken["garbage.txt"]) for a in argv]
    _, err = _check(filled, capsys, [good["dir"], tmp_path])
    assert message in err


def test_info_with_limit_zero_lists_no_rows(good, capsys):
    assert main(["info", str(good["map"]), "--limit", "0"]) == 0
    out = capsys.readouterr().out
    assert f"... {N_MODELS} more (use --all)" in out and "mean loglik" not in out
