"""Format 2: commits in place behind a redo log (store.journal, store.redo), the commit record,
readers pinned to their commit (store.snapshot), and maps of format 1 (store.legacy)."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from pylogmap.errors import MapFileError
from pylogmap.store import FORMAT_VERSION, MODEL_COLUMNS, MapFile, ScoreWriter, open_map
from pylogmap.store import redo as redo_log
from pylogmap.store.markers import make_folder
from pylogmap.store.record import APPLYING, CLEAN, MAGIC, USERBLOCK, read_record
from pylogmap.texts import TextSet

DATA = Path(__file__).resolve().parent / "data"


def texts(n: int = 6, tag: str = "") -> TextSet:
    return TextSet.from_texts([f"text {k}{tag} " * (k + 1) for k in range(n)], name="t")


def row(i: int, n: int):
    rng = np.random.default_rng(i)
    return -rng.uniform(1, 500, n), rng.integers(1, 300, n), rng.random(n) < 0.2


@pytest.fixture
def captured(monkeypatch):
    """The redo logs of the commits made while the test runs, in order."""
    logs = []
    apply = redo_log.apply

    def keep(fd, log):
        logs.append(log)
        apply(fd, log)
    monkeypatch.setattr(redo_log, "apply", keep)
    return logs


def test_a_commit_writes_in_place_and_does_not_copy_the_file(tmp_path, captured):
    ts = texts(300)
    path = tmp_path / "m.h5"
    with ScoreWriter(path, ts, commit_interval=0) as w:
        inode = os.stat(path).st_ino
        for i in range(40):
            w.record(f"m{i}", *row(i, len(ts)))
            assert os.stat(path).st_ino == inode  # the same file, never a copy renamed over it
            assert not (tmp_path / "m.h5.tmp").exists()
    assert len(captured) == 40
    # what a commit writes does not grow with the map: the changed bytes (the last chunk, the
    # indexes, the headers) and the bytes appended stay the same from the 1st to the 40th row
    sizes = [sum(len(d) for _, d in log.regions) for log in captured]
    assert max(sizes[20:]) <= 1.2 * max(sizes[1:20])
    with open_map(path) as mf:
        assert mf.n_models == 40 and mf.format_version == FORMAT_VERSION == 2 and mf.commit_seq == 40
    # the file carries its commit record in the HDF5 user block; plain h5py reads it as before
    assert path.read_bytes()[:8] == MAGIC
    record = read_record(path)
    assert record.state == CLEAN and record.commit_seq == 40 and record.rows_rewritten == 0
    with h5py.File(path, "r") as f:
        assert f.userblock_size == USERBLOCK and f["loglik"].shape == (40, 300) and f["loglik"].fletcher32
        assert f.attrs["map_id"] == record.map_id and f.attrs["commit_seq"] == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]


def _plain_read(path):
    """Everything in the file, read with plain h5py."""
    with h5py.File(path, "r") as f:
        for name in ("loglik", "ntokens", "truncated"):
            f[name][...]
        for col in MODEL_COLUMNS:
            f["models"][col][...]
        for ds in f["annotations"].values():
            ds[...]
        dict(f["map"].attrs)
        for name in f["map"]:
            f["map"][name][...]


def test_a_file_left_at_any_point_of_applying_a_commit_reads_as_one_commit(tmp_path, captured):
    """A writer killed while it writes a commit into the file leaves some of the changed byte
    ranges written (in `redo.write_order`). pylogmap then reads the whole commit, through the redo
    log without touching the file, and after finishing it. For the commits a scorer makes (rows
    appended, failures recorded) and for derived results, plain h5py also reads the whole file at
    every such point; replacing rows or annotation columns is not promised to plain h5py until the
    commit is finished (docs/format.md, "Plain HDF5 readers")."""
    ts = texts(40)
    path = tmp_path / "m.h5"
    MapFile.create_with_rows(path, ts, ["a", "b"], -np.ones((2, 40)), annotations={"f": ["x", "y"]}).close()
    states, plain = [], []
    with ScoreWriter(path, ts, commit_interval=0) as w:
        for i in range(3):
            states.append(path.read_bytes())
            plain.append(True)
            w.record(f"m{i}", *row(i, len(ts)))
        states.append(path.read_bytes())
        plain.append(True)
        w.record_failure("broken", "no such model")
    with open_map(path, mode="a") as mf:
        for write, plain_too in ((lambda: mf.update_map({"tsne": np.zeros((6, 2), np.float32)}, {"tau": -1.5}), True),
                                 (lambda: mf.append_rows(["z"], -2 * np.ones((1, 40))), True),
                                 (lambda: mf.set_annotations({"f": list("abcdefg"), "size": np.arange(7.0)}), False),
                                 (lambda: mf.append_rows(["a"], -3 * np.ones((1, 40))), False)):
            states.append(path.read_bytes())
            plain.append(plain_too)
            write()
    states.append(path.read_bytes())
    assert len(captured) == len(states) - 1 == 8
    trial = tmp_path / "trial.h5"
    journal = tmp_path / "trial.h5.journal"
    for before, after, log, plain_too in zip(states, states[1:], captured, plain):
        regions = redo_log.write_order(log.regions)
        for k in range(len(regions) + 1):
            data = bytearray(after[:log.final_size])  # the kill came after k of the ranges were written
            data[:len(before)] = before[:log.final_size]
            for offset, chunk in regions[:k]:
                data[offset:offset + len(chunk)] = chunk
            data[:68] = log.record.with_state(APPLYING).pack()
            trial.write_bytes(bytes(data))
            if plain_too:
                _plain_read(trial)
            if k not in (0, len(regions) // 2, len(regions)):
                continue
            shutil.rmtree(journal, ignore_errors=True)
            journal.mkdir()
            redo_log.write(redo_log.redo_path(journal), log)
            with MapFile(trial, recover=False) as mf:  # through the log: the file is not touched
                assert mf.commit_seq == log.to_seq
                seen = (mf.labels(), mf.loglik().tobytes(), {k: v.tolist() for k, v in mf.annotations().items()},
                        mf.map_attrs(), mf.derived_names())
            assert trial.read_bytes() == bytes(data)
            with open_map(trial) as mf:  # finished by the reader (no writer is alive)
                assert (mf.labels(), mf.loglik().tobytes(), {k: v.tolist() for k, v in mf.annotations().items()},
                        mf.map_attrs(), mf.derived_names()) == seen
            assert trial.read_bytes() == after  # finished, it is the file the writer made
            assert not journal.exists()


def test_a_torn_redo_log_is_a_commit_never_made(tmp_path, captured):
    ts = texts()
    path = tmp_path / "m.h5"
    with ScoreWriter(path, ts, commit_interval=0) as w:
        w.record("a", *row(0, len(ts)))
        before = path.read_bytes()
        map_id = w._committer.map_id
        w.record("b", *row(1, len(ts)))
    log = captured[-1]
    # the kill came while the log was being written: the file is as it was, plus the appended bytes
    path.write_bytes(before + path.read_bytes()[len(before):log.final_size])
    journal = tmp_path / "m.h5.journal"
    make_folder(journal, "journal", path, map_id)
    (journal / "commit.redo").write_bytes(log.pack()[:-7])
    with open_map(path) as mf:
        assert mf.labels() == ["a"] and mf.commit_seq == log.from_seq
    with h5py.File(path, "r") as f:
        assert f["loglik"].shape[0] == 1
    ScoreWriter(path).close()  # the next writer removes the torn log (and the folder, now empty)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]


def test_readers_keep_their_commit_while_a_writer_appends(tmp_path):
    ts = texts()
    path = tmp_path / "m.h5"
    with ScoreWriter(path, ts, commit_interval=0) as w:
        w.record("a", *row(0, len(ts)))
        first = open_map(path)
        second = open_map(path)  # two handles in one process: HDF5 must not share their caches
        for i in range(1, 5):
            w.record(f"m{i}", *row(i, len(ts)))
        for reader in (first, second):
            assert reader.n_models == 1 and reader.labels() == ["a"] and reader.loglik().shape == (1, len(ts))
            np.testing.assert_array_equal(reader.loglik()[0], row(0, len(ts))[0].astype(np.float32))
            assert reader.changed()
        second.reload()
        assert second.n_models == 5 and not second.changed()
        np.testing.assert_array_equal(second.loglik(4)[0], row(4, len(ts))[0].astype(np.float32))
        assert first.n_models == 1 and first.ntokens().shape == (1, len(ts))
        first.close()
        second.close()


def test_a_reader_is_told_when_what_it_reads_was_rewritten(tmp_path):
    ts = texts(4)
    path = tmp_path / "m.h5"
    MapFile.create_with_rows(path, ts, ["a", "b"], -np.ones((2, 4))).close()
    reader = open_map(path)
    with open_map(path, mode="a") as mf:
        mf.update_map({"tsne": np.zeros((2, 2), np.float32)})
    assert reader.loglik().shape == (2, 4)  # rows were not touched
    with pytest.raises(MapFileError, match=r"changed by another writer while open \(/map rewritten.*reload"):
        reader.derived_names()
    with open_map(path, mode="a") as mf:
        mf.append_rows(["b"], -3 * np.ones((1, 4)))  # a row replaced in place
    with pytest.raises(MapFileError, match=r"rows rewritten by commit 2, this reader shows commit 0"):
        reader.loglik()
    reader.reload()
    assert reader.loglik()[1].tolist() == [-3.0] * 4 and reader.derived_names() == ["tsne"]
    reader.close()


def test_a_commit_that_fails_leaves_the_file_as_it_was(tmp_path):
    ts = texts(4)
    path = tmp_path / "m.h5"
    MapFile.create_with_rows(path, ts, ["a"], -np.ones((1, 4))).close()
    before = path.read_bytes()
    with open_map(path, mode="a") as mf:
        with pytest.raises(MapFileError, match="annotation column 'f' has 3 values for 1 rows"):
            mf._commit({"op": np.array("annotations"), "names": np.array('["f"]'), "c0": np.zeros(3)})
    after = path.read_bytes()
    assert after[:len(before)] == before  # committed bytes untouched; what was appended is ignored
    with open_map(path) as mf:
        assert mf.annotations() == {} and mf.labels() == ["a"]


V1 = DATA / "map-v1.tar.gz"


def test_a_map_of_format_1_reads_and_its_first_write_upgrades_it(tmp_path):
    """A format-1 map, written by the store of the previous release with:

        texts = TextSet.from_texts(["one ü", "two", "three"], recipe={"max_bytes": 8, "seed": 42}, name="v1")
        with MapFile.create_with_rows(path, texts, [("org/a", "s1", -1), ("org/a", "s2", -1)],
                                      [[-1.0, -2.0, -3.0], [-1.5, -2.5, -3.5]], ntokens=[[1, 2, 3], [1, 2, 3]],
                                      annotations={"family": ["x", "y"], "size": [1.0, 2.0]}) as mf:
            mf.update_map({"tsne": (np.zeros((2, 2), np.float32), {"perplexity": 5, "params": {"a": 1}})},
                          {"tau": -12.5})
        with ScoreWriter(path) as w:
            w.record(("org/b", "", 1), [-1.0, -2.0, -3.0], [1, 1, 1], token_logprobs=[[-1.0], [-2.0], [-3.0]])
            w.record_failure("org/c", "could not load")
    """
    with tarfile.open(V1) as tar:
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    path = tmp_path / "map-v1.h5"
    assert path.read_bytes()[:4] == b"\x89HDF"  # no commit record: written by format 1

    def content(mf, m=4):
        ann = {k: [None if isinstance(x, float) and np.isnan(x) else x for x in v[:m].tolist()]
               for k, v in mf.annotations().items()}
        return {"labels": mf.labels()[:m], "status": mf.status()[:m].tolist(), "loglik": mf.loglik(slice(0, m)).tobytes(),
                "ntokens": mf.ntokens(slice(0, m)).tolist(), "annotations": ann,
                "tsne": mf.read_derived("tsne")[0].tolist(), "tsne_attrs": mf.read_derived("tsne")[1],
                "map_attrs": mf.map_attrs(), "texts": mf.texts().texts, "recipe": mf.texts().recipe,
                "hash": mf.text_hash, "tokens": [t.tolist() for t in mf.token_logprobs(2)],
                "errors": mf.models_table()["error"][:m].tolist()}

    with open_map(path) as mf:
        assert mf.format_version == 1 and mf.commit_seq == 3 and mf.map_id is None
        before = content(mf)
    assert before["labels"] == ["org/a@s1", "org/a@s2", "org/b#L1", "org/c"]
    assert before["annotations"] == {"family": ["x", "y", "", ""], "size": [1.0, 2.0, None, None]}
    assert before["tsne_attrs"] == {"perplexity": 5, "params": {"a": 1}} and before["map_attrs"] == {"tau": -12.5}
    assert before["tokens"] == [[-1.0], [-2.0], [-3.0]] and before["errors"][3] == "could not load"
    assert path.read_bytes()[:4] == b"\x89HDF"  # reading changed nothing
    reader = open_map(path)  # a reader of the old file keeps reading it while it is upgraded
    with ScoreWriter(path) as w:  # the first write upgrades the file, then commits in place
        w.record("org/d", [-5.0, -5.0, -5.0], [2, 2, 2])
    assert content(reader) == before
    reader.close()
    assert path.read_bytes()[:8] == MAGIC
    with open_map(path) as mf:
        assert mf.format_version == 2 and mf.commit_seq == 4 and mf.map_id == read_record(path).map_id
        assert content(mf) == before  # everything that was there reads as before
        assert mf.labels()[4] == "org/d" and mf.loglik(4).tolist() == [[-5.0, -5.0, -5.0]]
        assert mf.annotations()["family"][4] == "" and np.isnan(mf.annotations()["size"][4])
