"""The HDF5 map file: schema, resume, refusals, bad files, readers during writes, the writer lock,
and crash safety under SIGKILL at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pylogmap.errors import MapFileError
from pylogmap.store import (
    FORMAT_VERSION,
    MODEL_COLUMNS,
    MapFile,
    RowKey,
    ScoreWriter,
    as_key,
    open_map,
    tokens_path,
)
from pylogmap.texts import TextSet

ROOT = Path(__file__).resolve().parent.parent


def small_texts(n: int = 7, tag: str = "") -> TextSet:
    return TextSet.from_texts([f"text {k}{tag} ü" * (k + 1) for k in range(n)], sources=[f"s{k % 2}" for k in range(n)],
                              meta=[{"index": k} for k in range(n)], name="small")


def row_values(i: int, n: int):
    rng = np.random.default_rng(i)
    L = -rng.uniform(1, 500, n)
    T = rng.integers(1, 300, n).astype(np.int32)
    tr = rng.random(n) < 0.2
    return L, T, tr


def test_schema_round_trip(tmp_path):
    ts = small_texts()
    path = tmp_path / "m.h5"
    with ScoreWriter(path, ts, commit_interval=0) as w:
        L, T, tr = row_values(0, len(ts))
        w.record("org/a", L, T, tr, {"dtype": "torch.bfloat16", "architecture": "LlamaForCausalLM", "n_params": 1234,
                                     "tokenizer": "tok", "max_length": 2048, "wall_time_s": 1.5, "tokens_per_s": 99.0,
                                     "step": 1000, "device": "cpu", "meta": {"batch_tokens": 4096}})
        w.record(("org/a", "step2", 3), L - 1, T, None, None)
        assert w.record_failure("org/broken", "CUDA exploded", {"architecture": "X"}) is True
    with open_map(path) as mf:
        assert (mf.n_models, mf.n_texts, mf.text_hash) == (3, len(ts), ts.hash)
        assert mf.labels() == ["org/a", "org/a@step2#L3", "org/broken"]
        assert mf.keys()[1] == RowKey("org/a", "step2", 3)
        assert mf.model_names() == ["org/a", "org/a", "org/broken"]
        np.testing.assert_array_equal(mf.loglik(0), L[None].astype(np.float32))
        np.testing.assert_array_equal(mf.loglik(1), (L - 1)[None].astype(np.float32))
        assert np.isnan(mf.loglik(2)).all() and (mf.ntokens(2) == -1).all()
        np.testing.assert_array_equal(mf.ntokens(0)[0], T)
        np.testing.assert_array_equal(mf.truncated(0)[0], tr)
        assert not mf.truncated(1).any()
        t = mf.models_table()
        assert set(MODEL_COLUMNS) | {"label"} == set(t)
        assert t["dtype"][0] == "bfloat16" and t["architecture"][0] == "LlamaForCausalLM"
        assert t["n_params"].tolist() == [1234, -1, -1] and t["step"].tolist() == [1000, -1, -1]
        assert t["n_truncated"].tolist() == [int(tr.sum()), 0, 0]
        assert t["status"].tolist() == ["ok", "ok", "failed"] and t["error"][2] == "CUDA exploded"
        assert json.loads(t["meta"][0]) == {"device": "cpu", "batch_tokens": 4096}
        assert t["wall_time_s"][0] == 1.5 and np.isnan(t["wall_time_s"][1])
        back = mf.texts()
        assert back.texts == ts.texts and back.sources == ts.sources and back.meta == ts.meta
        assert back.hash == ts.hash and back.name == "small"
        np.testing.assert_array_equal(mf.text_bytes(), ts.n_bytes)
    # plain h5py sees the documented layout (docs/format.md)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "pylogmap" and f.attrs["format_version"] == FORMAT_VERSION
        assert f.attrs["text_set_hash"] == ts.hash
        assert f["loglik"].dtype == np.float32 and f["loglik"].maxshape == (None, len(ts))
        assert f["ntokens"].dtype == np.int32 and f["truncated"].dtype == bool
        assert f["models/name"].asstr()[...].tolist() == ["org/a", "org/a", "org/broken"]
        assert f["models/layer"].dtype == np.int32 and f["models/n_params"].dtype == np.int64
        assert f["texts/n_bytes"].dtype == np.int64 and json.loads(f["texts/meta"].asstr()[0]) == {"index": 0}
    with h5py.File(path, "r", swmr=True) as f:  # SWMR readers work too
        assert f["loglik"].shape == (3, len(ts))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]  # no journal, tmp or lock left


def test_row_selection_forms(tmp_path):
    ts = small_texts(5)
    keys = [f"m{i}" for i in range(6)]
    L = -np.arange(30, dtype=np.float32).reshape(6, 5) - 1
    with MapFile.create_with_rows(tmp_path / "m.h5", ts, keys, L) as mf:
        np.testing.assert_array_equal(mf.loglik(), L)
        np.testing.assert_array_equal(mf.loglik([4, 1, 1, 5]), L[[4, 1, 1, 5]])
        np.testing.assert_array_equal(mf.loglik(slice(1, 6, 2)), L[1:6:2])
        np.testing.assert_array_equal(mf.loglik(np.arange(6) % 2 == 0), L[::2])
        np.testing.assert_array_equal(mf.loglik(-1), L[-1:])
        np.testing.assert_array_equal(mf.loglik([]), L[:0])
    # many scattered rows (the block-wise gather) in random order with repeats
    rng = np.random.default_rng(0)
    big = rng.standard_normal((700, 5)).astype(np.float32) - 10
    with MapFile.create_with_rows(tmp_path / "big.h5", ts, [f"m{i}" for i in range(700)], big) as mf:
        for n in (3, 150, 1000):
            rows = rng.integers(0, 700, n)
            np.testing.assert_array_equal(mf.loglik(rows), big[rows])
            np.testing.assert_array_equal(mf.ntokens(rows), np.full((n, 5), -1))
        with pytest.raises(MapFileError, match="out of range"):
            mf.loglik([700])


def test_resume_semantics(tmp_path):
    ts = small_texts()
    path = tmp_path / "m.h5"
    keys = ["a", "b", "c", ("a", "r1", -1)]
    with ScoreWriter(path, ts) as w:
        assert w.rows_to_do(keys) == [as_key(k) for k in keys]
        w.record("a", *row_values(1, len(ts)))
        w.record_failure("b", "no such model")
    with ScoreWriter(path, ts) as w:
        assert w.status("a") == "ok" and w.status("b") == "failed" and w.status("c") is None
        assert w.rows_to_do(keys) == [RowKey("c"), RowKey("a", "r1")]
        assert w.rows_to_do(keys, retry_failed=True) == [RowKey("b"), RowKey("c"), RowKey("a", "r1")]
        assert len(w.rows_to_do(keys, force=True)) == 4
        w.record("b", *row_values(2, len(ts)))  # the retry succeeds: the failed row is replaced
        assert w.record_failure("a", "failed on a forced rescore") is False  # keeps the good result
    with open_map(path) as mf:
        assert mf.labels() == ["a", "b"]
        assert mf.status().tolist() == ["ok", "ok"]
        np.testing.assert_array_equal(mf.loglik(1)[0], row_values(2, len(ts))[0].astype(np.float32))
        np.testing.assert_array_equal(mf.loglik(0)[0], row_values(1, len(ts))[0].astype(np.float32))


def test_another_text_set_is_refused_showing_both_hashes(tmp_path):
    path = tmp_path / "m.h5"
    a, b = small_texts(), small_texts(tag="x")
    ScoreWriter(path, a).close()
    with pytest.raises(MapFileError) as err:
        ScoreWriter(path, b)
    assert a.hash in str(err.value) and b.hash in str(err.value)
    assert not (tmp_path / "m.h5.lock").exists()


def test_overwrite_protection(tmp_path):
    path = tmp_path / "m.h5"
    ts = small_texts()
    with ScoreWriter(path, ts) as w:
        L, T, tr = row_values(0, len(ts))
        w.record("a", L, T, tr, token_logprobs=[np.zeros(t) for t in T])
    with pytest.raises(MapFileError, match="already exists; pass overwrite=True"):
        MapFile.create(path, ts)
    with open_map(path) as mf:
        assert mf.n_models == 1  # nothing written over
    MapFile.create(path, small_texts(tag="new"), overwrite=True).close()
    with open_map(path) as mf:
        assert mf.n_models == 0 and mf.text_hash == small_texts(tag="new").hash
    assert not tokens_path(path, "a").exists()  # the old map's sidecar went with it
    with ScoreWriter(path, ts, overwrite=True) as w:
        assert w.rows_to_do(["a"]) == [RowKey("a")]
    with pytest.raises(MapFileError, match="folder"):
        MapFile.create(tmp_path / "nope" / "m.h5", ts)


def test_bad_files_are_clear_map_file_errors(tmp_path):
    with pytest.raises(MapFileError, match="does not exist"):
        open_map(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"this is not hdf5 at all" * 100)
    with pytest.raises(MapFileError, match="not an HDF5 file"):
        open_map(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["loglik"] = np.zeros((2, 2))
    with pytest.raises(MapFileError, match="not a pylogmap map"):
        open_map(other)
    good = tmp_path / "good.h5"
    ts = small_texts(200)
    MapFile.create_with_rows(good, ts, ["a", "b"], -np.ones((2, 200))).close()
    truncated = tmp_path / "truncated.h5"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MapFileError, match="corrupt or truncated|damaged"):
        open_map(truncated)
    newer = tmp_path / "newer.h5"
    newer.write_bytes(data)
    with h5py.File(newer, "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(MapFileError, match="newer than this pylogmap"):
        open_map(newer)
    flipped = tmp_path / "flipped.h5"  # one bit flipped inside the matrix data: the checksum catches it
    with h5py.File(good, "r") as f:
        offset = f["loglik"].id.get_chunk_info(0).byte_offset
    bad = bytearray(data)
    bad[offset + 100] ^= 0x10
    flipped.write_bytes(bytes(bad))
    with open_map(flipped) as mf:
        with pytest.raises(MapFileError, match="checksum"):
            mf.loglik()
    broken = tmp_path / "broken.h5"
    broken.write_bytes(data)
    with h5py.File(broken, "r+") as f:
        del f["ntokens"]
    with pytest.raises(MapFileError, match="lacks ntokens"):
        open_map(broken)
    with h5py.File(broken, "r+") as f:
        f.create_dataset("ntokens", data=np.zeros((3, 200), np.int32))
    with pytest.raises(MapFileError, match="shape"):
        open_map(broken)


def test_reader_during_writes_sees_last_commit_and_is_told_of_changes(tmp_path):
    ts = small_texts()
    path = tmp_path / "m.h5"
    with ScoreWriter(path, ts, commit_interval=0) as w:
        w.record("a", *row_values(0, len(ts)))
        reader = open_map(path)
        assert reader.n_models == 1 and not reader.changed()
        w.record("b", *row_values(1, len(ts)))
        # the reader's view is stable (the file it opened is never modified) ...
        assert reader.n_models == 1
        np.testing.assert_array_equal(reader.loglik()[0], row_values(0, len(ts))[0].astype(np.float32))
        # ... and it is told that a newer commit exists
        assert reader.changed()
        reader.reload()
        assert reader.labels() == ["a", "b"] and not reader.changed()
        reader.close()
        # (HDF5 refuses a SWMR and a non-SWMR handle on one file in one process, hence after close)
        with h5py.File(path, "r", swmr=True) as f:
            assert f["loglik"].shape[0] == 2


def test_rate_limited_commits_keep_results_in_the_journal(tmp_path):
    ts = small_texts()
    path = tmp_path / "m.h5"
    w = ScoreWriter(path, ts, commit_interval=3600)
    w.record("a", *row_values(0, len(ts)))
    with open_map(path) as mf:  # the writer is alive: a reader leaves its journal alone
        assert mf.n_models == 0 and mf.pending_journal() == 1
    # the writer "dies" (lock released by the kernel): the next reader commits its journal
    w._committer.lock.release()
    with open_map(path) as mf:
        assert mf.labels() == ["a"] and mf.pending_journal() == 0
    assert not (tmp_path / "m.h5.journal").exists()


def test_journal_of_another_file_is_not_applied(tmp_path):
    """A file replaced by hand while a killed writer's journal waits: readers still open it, and
    a writer says what is wrong instead of mixing results of two text sets."""
    a, b = small_texts(), small_texts(tag="b")
    path = tmp_path / "m.h5"
    w = ScoreWriter(path, a, commit_interval=3600)
    w.record("a", *row_values(0, len(a)))
    w._committer.lock.release()  # the writer dies with its result in the journal
    MapFile.create(tmp_path / "other.h5", b).close()
    os.replace(tmp_path / "other.h5", path)
    with open_map(path) as mf:
        assert mf.n_models == 0 and mf.text_hash == b.hash and mf.pending_journal() == 1
    with pytest.raises(MapFileError, match="journal entry .* was written for a map of text set"):
        ScoreWriter(path, b)


def test_unreadable_journal_entry_is_a_clear_error_and_readers_still_work(tmp_path):
    ts = small_texts()
    path = tmp_path / "m.h5"
    with ScoreWriter(path, ts) as w:
        w.record("a", *row_values(0, len(ts)))
    (tmp_path / "m.h5.journal").mkdir()
    (tmp_path / "m.h5.journal" / "000000000099.npz").write_bytes(b"not a zip file")
    with open_map(path) as mf:
        assert mf.labels() == ["a"] and mf.pending_journal() == 1
    with pytest.raises(MapFileError, match="000000000099.npz cannot be read.*move it out"):
        ScoreWriter(path, ts)


def test_second_writer_is_refused_and_stale_lock_recovered(tmp_path):
    ts = small_texts()
    path = tmp_path / "m.h5"
    with ScoreWriter(path, ts):
        with pytest.raises(MapFileError, match=rf"another process \(pid {os.getpid()}\) is writing"):
            ScoreWriter(path, ts)
        with open_map(path, mode="a") as mf:  # readers are never blocked; a second writer is refused
            with pytest.raises(MapFileError, match="another process"):
                mf.write_derived("x", np.zeros(3))
    # another process holding the lock
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            "from pylogmap.store import ScoreWriter\nfrom pylogmap.texts import TextSet\n"
            f"w = ScoreWriter({str(path)!r}, TextSet.from_texts({ts.texts!r}))\n"
            "print('locked', flush=True)\nimport time; time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(MapFileError, match=rf"pid {proc.pid}"):
            ScoreWriter(path, ts)
    finally:
        proc.kill()
        proc.wait()
    # the killed holder left its lock file (marked as pylogmap's, with its dead pid): it does not block anyone
    assert (tmp_path / "m.h5.lock").read_text().strip() == f"pylogmap writer {proc.pid}"
    with ScoreWriter(path, ts) as w:
        w.record("a", *row_values(0, len(ts)))
    assert not (tmp_path / "m.h5.lock").exists()


def test_find_rows(tmp_path):
    ts = small_texts(3)
    keys = [("EleutherAI/pythia-70m", "step1000", -1), ("EleutherAI/pythia-70m", "step2000", -1),
            ("gpt2", "", -1), ("gpt2", "", 4)]
    with MapFile.create_with_rows(tmp_path / "m.h5", ts, keys, -np.ones((4, 3))) as mf:
        assert mf.labels() == ["EleutherAI/pythia-70m@step1000", "EleutherAI/pythia-70m@step2000", "gpt2", "gpt2#L4"]
        assert mf.find_rows("gpt2") == [2]  # the exact label wins over the name
        assert mf.find_rows("gpt2#L4") == [3]
        assert mf.find_rows("EleutherAI/pythia-70m") == [0, 1]
        assert mf.find_rows("GPT2") == [2]
        assert mf.find_row("EleutherAI/pythia-70m@step2000") == 1
        with pytest.raises(MapFileError, match="names 2 rows; pick one label: EleutherAI/pythia-70m@step1000"):
            mf.find_row("EleutherAI/pythia-70m")
        with pytest.raises(MapFileError, match="Did you mean: EleutherAI/pythia-70m"):
            mf.find_rows("EleutherAI/pythia-70")
        with pytest.raises(MapFileError, match="no model 'zzz'"):
            mf.find_rows("zzz")


# ---------------------------------------------------------------------------------------------
# Finding rows from what a user typed: one rule (store.lookup) for find_rows/find_row, annotation
# tables (io.annotations.match_table) and benchmark tables (analysis.prediction.match_rows).


def _lookup(*keys):
    from pylogmap.store import RowLookup

    return RowLookup([as_key(k) for k in keys], where="m.h5")


def test_the_three_row_finders_agree_on_revisions(tmp_path):
    """Rows Org/A@s1, Org/A@s2: `org/a` and `Org/A` name both rows; where one row is needed
    they are ambiguous, listing both labels (they used to be an error, both rows, and an error)."""
    from pylogmap.analysis.prediction import match_rows
    from pylogmap.errors import PylogmapError
    from pylogmap.io.annotations import match_table

    keys = [("Org/A", "s1", -1), ("Org/A", "s2", -1), ("Org/B", "", -1)]
    with MapFile.create_with_rows(tmp_path / "m.h5", small_texts(3), keys, -np.ones((3, 3))) as mf:
        lookup = mf.lookup()
        for query in ("org/a", "Org/A"):
            assert mf.find_rows(query) == [0, 1]
            with pytest.raises(MapFileError, match=r"names 2 rows; pick one label: Org/A@s1, Org/A@s2"):
                mf.find_row(query)
            table = match_table({"model": [query], "size": ["7"]}, "model", lookup)
            assert table.columns["size"][:2].tolist() == [7.0, 7.0] and np.isnan(table.columns["size"][2])
            with pytest.raises(PylogmapError, match=r"match several rows.*pick one label: Org/A@s1, Org/A@s2"):
                match_rows([query], lookup)
        for query, row in (("Org/A@s2", 1), ("org/a@S2", 1), ("org/b", 2)):
            assert mf.find_rows(query) == [row] and mf.find_row(query) == row
            assert match_rows([query], lookup).tolist() == [row]
            table = match_table({"model": [query], "size": ["1"]}, "model", lookup)
            assert np.flatnonzero(np.isfinite(table.columns["size"])).tolist() == [row]


def test_lookup_exact_case_first_then_case_insensitive():
    rows = _lookup("gpt2", "GPT2", ("gpt2", "", 4))
    assert rows.rows_of("gpt2") == [0] and rows.rows_of("GPT2") == [1]  # exact spellings win
    assert rows.rows_of("Gpt2") == [0, 1]  # no exact match: case-insensitive, same rules (layer -1 only)
    with pytest.raises(MapFileError, match="'Gpt2' names 2 rows; pick one label: gpt2, GPT2"):
        rows.one_row("Gpt2")
    assert rows.rows_of("GPT2#l4") == [2]


def test_lookup_revisions_pick_one_and_a_label_is_exact():
    rows = _lookup(("m", "r1", -1), ("m", "r2", -1), ("n", "", -1), ("n", "main", -1))
    assert rows.rows_of("m@r2") == [1] and rows.one_row("m@r1") == 0
    assert rows.rows_of("m") == [0, 1]  # rows of: every revision
    with pytest.raises(MapFileError, match="names 2 rows"):
        rows.one_row("m")  # one row: ambiguous
    assert rows.one_row("n") == 2  # a plain name that is a row's label is that row (default revision)
    assert rows.rows_of("n@main") == [3]
    assert rows.find("m@r3") == []


def test_lookup_layers_plain_name_means_the_models_own_output():
    rows = _lookup("lens", ("lens", "", 0), ("lens", "", 1), ("ck", "s1", 0), ("ck", "s1", 1), ("ck", "s2", 1))
    assert rows.one_row("lens") == 0 and rows.one_row("lens#L1") == 2
    # no layer -1 row: a plain name means every layer (and revision) it has
    assert rows.rows_of("ck@s1") == [3, 4] and rows.rows_of("ck") == [3, 4, 5]
    assert rows.rows_of("ck#L1") == [4, 5] and rows.one_row("ck@s2#L1") == 5
    assert rows.find("lens#L7") == []


def test_lookup_local_folders_full_path_or_clean_name(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "my-model"
    rows = _lookup(str(folder), "clean-model", "./rel-model", ("EleutherAI/pythia-70m", "", -1),
                   (str(folder), "", 2))
    # a row labelled with the full path
    for query in (str(folder), str(folder) + "/", "my-model", "my-model/", "./my-model"):
        assert rows.rows_of(query) == [0], query
    assert rows.one_row(f"{folder}#L2") == 4 and rows.one_row("my-model#L2") == 4
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path / "models")
    assert rows.one_row("./my-model") == 0  # the same folder, from the current directory
    assert rows.find(str(tmp_path / "elsewhere" / "my-model")) == []  # an absolute path is that folder only
    # a row labelled with a clean name
    for query in ("clean-model", "clean-model/", "./clean-model", "/some/where/clean-model", "CLEAN-MODEL/"):
        assert rows.rows_of(query) == [1], query
    # a row scored as ./rel-model: its folder from here, or the clean name
    for query in ("rel-model", "./rel-model/", str(tmp_path / "models" / "rel-model")):
        assert rows.rows_of(query) == [2], query
    # hub ids are not folders: no last-component guess
    assert rows.find("pythia-70m") == []


def test_lookup_misses_and_ambiguity_are_one_line_with_candidates():
    rows = _lookup(("EleutherAI/pythia-70m", "step1000", -1), ("EleutherAI/pythia-70m", "step2000", -1), "gpt2")
    with pytest.raises(MapFileError) as err:
        rows.rows_of("EleutherAI/pythia-70")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("no model 'EleutherAI/pythia-70' in m.h5 (3 rows)")
    assert "Did you mean: EleutherAI/pythia-70m" in msg and "name@revision" in msg
    with pytest.raises(MapFileError) as err:
        rows.rows_of("zzz")
    assert "\n" not in str(err.value) and "pylogmap info" in str(err.value) and "name#L<layer>" in str(err.value)
    with pytest.raises(MapFileError) as err:
        rows.one_row("eleutherai/pythia-70m")
    msg = str(err.value)
    assert "\n" not in msg and "pick one label: EleutherAI/pythia-70m@step1000, EleutherAI/pythia-70m@step2000" in msg
    assert "name@revision picks a revision" in msg


def test_derived_annotations_and_appends(tmp_path):
    ts = small_texts(4)
    path = tmp_path / "m.h5"
    with MapFile.create_with_rows(path, ts, ["a", "b"], -np.ones((2, 4)), annotations={"family": ["x", "y"]}) as mf:
        assert mf.read_derived("tsne") is None
        mf.write_derived("tsne", np.arange(4, dtype=np.float32).reshape(2, 2), {"perplexity": 30, "seed": 42,
                                                                                "params": {"a": 1}})
        mf.update_map({"neighbors/index": np.array([[1], [0]]), "used": (np.array([True, True]), {"n": 2})},
                      {"tau": -1412.5, "rows_hash": "abc", "n_used": 2})
        arr, attrs = mf.read_derived("tsne")
        np.testing.assert_array_equal(arr, [[0, 1], [2, 3]])
        assert attrs == {"perplexity": 30, "seed": 42, "params": {"a": 1}}  # read back as written
        assert mf.read_derived("neighbors/index")[0].tolist() == [[1], [0]]
        assert mf.map_attrs() == {"tau": -1412.5, "rows_hash": "abc", "n_used": 2}
        assert mf.derived_names() == ["neighbors/index", "tsne", "used"]
        mf.set_annotations({"size": [1.5, np.nan], "family": ["llama", None]})
        ann = mf.annotations()
        assert ann["family"].tolist() == ["llama", ""] and ann["size"][0] == 1.5 and np.isnan(ann["size"][1])
        with pytest.raises(MapFileError, match="2 rows"):
            mf.set_annotations({"bad": [1, 2, 3]})
        mf.append_rows(["c", "a"], -2 * np.ones((2, 4)), meta={"architecture": ["C", "A"], "source": ["x", "y"]})
        assert mf.labels() == ["a", "b", "c"]  # "a" replaced in place, "c" appended
        np.testing.assert_array_equal(mf.loglik(), [[-2] * 4, [-1] * 4, [-2] * 4])
        assert mf.models_table()["architecture"].tolist() == ["A", "", "C"]
        assert json.loads(mf.models_table()["meta"][2]) == {"source": "x"}
        ann = mf.annotations()  # annotation columns grew with the rows
        assert ann["family"].tolist() == ["llama", "", ""] and np.isnan(ann["size"][2])
        mf.update_map({"pca": np.zeros((3, 2))}, replace_all=True)
        assert mf.derived_names() == ["pca"] and mf.map_attrs() == {}
        with pytest.raises(MapFileError, match="twice"):
            mf.append_rows(["d", "d"], -np.ones((2, 4)))
        with pytest.raises(MapFileError, match=r"shape \(1, 3\), expected \(1, 4\)"):
            mf.append_rows(["d"], -np.ones((1, 3)))


# ---------------------------------------------------------------------------------------------
# Attributes: written through one encoder (store.attrs), read back as written; older files as before.


def test_attributes_read_back_as_written(tmp_path):
    ts = small_texts(3)
    path = tmp_path / "m.h5"
    written = {
        "params": {"a": 1, "nested": {"b": [1, 2]}}, "none": None, "null_text": "null", "json_text": '{"a": 1}',
        "text": "ü", "empty": "", "int": 7, "big": 1 << 70, "float": -1412.5, "nan": float("nan"), "yes": True,
        "ratios": [0.5, 0.25], "counts": [1, 2, 3], "flags": [True, False], "mixed": [1, 2.5], "words": ["p", "q"],
        "nested": [[1, 2], [3]], "empty_list": [], "pair": (1, "x"), "f32": np.float32(0.5), "i64": np.int64(-3),
        "where": Path("/some/folder"),
    }
    arrays = {"matrix": np.arange(6, dtype=np.int32).reshape(2, 3), "names": np.array(["a", "bb"])}
    expected = dict(written, pair=[1, "x"], where="/some/folder")
    with MapFile.create_with_rows(path, ts, ["a", "b"], -np.ones((2, 3))) as mf:
        mf.update_map({"tsne": (np.zeros((2, 2), np.float32), {**written, **arrays})}, {**written, **arrays})
        for got in (mf.read_derived("tsne")[1], mf.map_attrs()):
            assert set(got) == set(expected) | set(arrays)
            for name, value in expected.items():
                if name == "nan":
                    assert isinstance(got[name], float) and np.isnan(got[name])
                    continue
                assert got[name] == value and type(got[name]) is type(value if not isinstance(value, np.generic)
                                                                      else value.item()), name
            assert got["matrix"].dtype == np.int32 and got["matrix"].tolist() == [[0, 1, 2], [3, 4, 5]]
            assert isinstance(got["names"], np.ndarray) and got["names"].tolist() == ["a", "bb"]
        assert mf.texts().recipe == ts.recipe
    with h5py.File(path, "r") as f:  # plain h5py: numbers stay numbers, the rest is JSON text, and says so
        a = f["map/tsne"].attrs
        assert a["encoding-type"] == "pylogmap-attrs" and a["encoding-version"] == "1"
        assert json.loads(a["params"]) == written["params"] and a["none"] == "null"
        assert a["ratios"].tolist() == [0.5, 0.25] and a["matrix"].dtype == np.int32
        codes = json.loads(a["encoding-attrs"])
        assert codes["params"] == codes["none"] == codes["words"] == "json" and codes["ratios"] == "list"
        assert "null_text" not in codes and "float" not in codes


def test_attributes_refuse_reserved_names_and_unstorable_values(tmp_path):
    with MapFile.create_with_rows(tmp_path / "m.h5", small_texts(3), ["a"], -np.ones((1, 3))) as mf:
        with pytest.raises(MapFileError, match="'encoding-type' is reserved"):
            mf.write_derived("x", np.zeros(1), {"encoding-type": "mine"})
        with pytest.raises(MapFileError, match="attribute 'who' has a set"):
            mf.update_map({}, {"who": {1, 2}})
        with pytest.raises(MapFileError, match="attribute 'bad' cannot be stored as JSON"):
            mf.update_map({}, {"bad": {"x": object()}})
        assert mf.derived_names() == [] and mf.map_attrs() == {}  # nothing was written


def test_a_derived_entry_journalled_by_an_earlier_release_is_still_applied(tmp_path):
    from pylogmap.store.journal import Committer

    path = tmp_path / "m.h5"
    MapFile.create_with_rows(path, small_texts(3), ["a", "b"], -np.ones((2, 3))).close()
    spec = {"items": [["x", {"p": {"a": 1}, "r": [0.5, 0.25]}]], "map_attrs": {"tau": -1.0}, "replace_all": False}
    committer = Committer(path)  # an entry as earlier releases wrote it: attributes as JSON values
    committer.journal({"op": np.array("derived"), "a0": np.zeros(2), "spec": np.array(json.dumps(spec))})
    committer.close()  # the writer dies before committing: the next reader commits the entry
    with open_map(path) as mf:
        assert mf.read_derived("x")[1] == {"p": {"a": 1}, "r": [0.5, 0.25]} and mf.map_attrs() == {"tau": -1.0}


def test_open_map_mode_r_reads_and_a_writes(tmp_path):
    path = tmp_path / "m.h5"
    MapFile.create_with_rows(path, small_texts(3), ["a", "b"], -np.ones((2, 3))).close()
    with open_map(path) as mf:
        assert mf.mode == "r"
        for write in (lambda: mf.append_rows(["c"], -np.ones((1, 3))), lambda: mf.write_derived("x", np.zeros(2)),
                      lambda: mf.update_map({"x": np.zeros(2)}), lambda: mf.set_annotations({"f": ["x", "y"]})):
            with pytest.raises(MapFileError, match=r"m.h5 is open read-only; open it with open_map\(path, mode='a'\)"):
                write()
    with open_map(path, mode="a") as mf:
        mf.append_rows(["c"], -np.ones((1, 3)))
        mf.set_annotations({"f": ["x", "y", "z"]})
        assert mf.n_models == 3 and mf.mode == "a"
    with pytest.raises(MapFileError, match="mode 'r' .* or 'a'"):
        open_map(path, mode="w")


LEGACY = ROOT / "tests" / "data" / "map-v1-before-attr-encoding.tar.gz"


def test_a_map_written_before_the_attribute_encoding_reads_as_before(tmp_path):
    """A format-1 map (and its per-token sidecar) written by the store before attributes carried
    an encoding, kept as a fixture. It was made by that release with:

        texts = TextSet.from_texts(["one ü", "two", "three"], recipe={"max_bytes": 8, "seed": 42}, name="legacy")
        with MapFile.create_with_rows(path, texts, [("org/a", "s1", -1), ("org/a", "s2", -1)], -np.ones((2, 3)),
                                      annotations={"family": ["x", "y"]}) as mf:
            mf.update_map({"tsne": (np.zeros((2, 2), np.float32), {"perplexity": 5, "params": {"a": 1},
                           "none": None, "ratios": [0.5, 0.25], "tags": ["p", "q"]})},
                          {"tau": -12.5, "excluded": "{}", "nothing": None})
        with ScoreWriter(path) as w:
            w.record(("org/b", "", 1), [-1.0, -2.0, -3.0], [1, 1, 1], token_logprobs=[[-1.0], [-2.0], [-3.0]])

    It opens and reads exactly as that release read it (JSON text stays text, None reads "null"),
    and what is written into it now reads back as written, next to the old attributes."""
    with tarfile.open(LEGACY) as tar:
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    path = tmp_path / "legacy-v1.h5"
    with open_map(path) as mf:
        assert mf.labels() == ["org/a@s1", "org/a@s2", "org/b#L1"] and mf.format_version == 1
        assert mf.commit_seq == 2 and mf.annotations()["family"].tolist() == ["x", "y", ""]
        texts = mf.texts()
        assert texts.recipe == {"max_bytes": 8, "seed": 42} and texts.name == "legacy"
        assert texts.texts == ["one ü", "two", "three"] and texts.hash == mf.text_hash
        arr, attrs = mf.read_derived("tsne")
        assert arr.shape == (2, 2)
        assert attrs == {"perplexity": 5, "params": '{"a": 1}', "none": "null", "tags": '["p", "q"]',
                         "ratios": attrs["ratios"]}
        assert isinstance(attrs["ratios"], np.ndarray) and attrs["ratios"].tolist() == [0.5, 0.25]
        assert mf.map_attrs() == {"tau": -12.5, "excluded": "{}", "nothing": "null"}
        assert [t.tolist() for t in mf.token_logprobs(2)] == [[-1.0], [-2.0], [-3.0]]
    with open_map(path, mode="a") as mf:  # a new release writing into the old file
        mf.update_map({"pca": (np.ones((3, 2)), {"params": {"b": 2}})}, {"n_used": 3, "extra": None})
        assert mf.read_derived("pca")[1] == {"params": {"b": 2}}
        assert mf.read_derived("tsne")[1]["params"] == '{"a": 1}'  # untouched objects read as before
        assert mf.map_attrs() == {"tau": -12.5, "excluded": "{}", "nothing": "null", "n_used": 3, "extra": None}
        assert mf.texts().recipe == {"max_bytes": 8, "seed": 42}


def test_record_validates_inputs_and_keeps_token_logprobs(tmp_path):
    ts = small_texts(3)
    path = tmp_path / "m.h5"
    tok = [np.array([-1.0, -2.0]), np.array([], np.float32), np.array([-0.5])]
    with ScoreWriter(path, ts) as w:
        with pytest.raises(MapFileError, match="NaN or infinite"):
            w.record("a", [-1.0, np.nan, -1.0], [1, 1, 1])
        with pytest.raises(MapFileError, match=r"shape \(2,\), expected \(3,\)"):
            w.record("a", [-1.0, -1.0], [1, 1])
        with pytest.raises(MapFileError, match="no model name"):
            w.record("", [-1.0] * 3, [1] * 3)
        with pytest.raises(MapFileError, match="text 1: 1 values, ntokens 0"):
            w.record("a", [-3.0, -0.0, -0.5], [2, 0, 1], token_logprobs=[tok[0], [-1.0], tok[2]])
        w.record(("a", "", 2), [-3.0, -0.0, -0.5], [2, 0, 1], token_logprobs=tok)
    with ScoreWriter(path) as w:  # an existing file brings its own texts
        assert w.text_hash == ts.hash and w.texts.texts == ts.texts
        w.record("b", [-3.0, -1.0, -0.5], [2, 1, 1])
    with pytest.raises(MapFileError, match="give the text set"):
        ScoreWriter(tmp_path / "new.h5")
    with open_map(path) as mf:
        got = mf.token_logprobs(0)
        assert [g.tolist() for g in got] == [t.tolist() for t in tok]
        assert mf.token_logprobs(1) is None
    with h5py.File(tokens_path(path, ("a", "", 2)), "r") as f:  # readable with plain h5py
        assert f["offsets"][...].tolist() == [0, 2, 2, 3] and f.attrs["layer"] == 2
    with ScoreWriter(path) as w:  # a forced rescoring without per-token values drops the old ones
        w.record(("a", "", 2), [-3.0, -0.0, -0.5], [2, 0, 1])
    with open_map(path) as mf:
        assert mf.token_logprobs(0) is None


# ---------------------------------------------------------------------------------------------
# Crash safety: SIGKILL a writing process at random moments, then resume.

WRITER_SCRIPT = r"""
import sys, time
sys.path.insert(0, ROOT)
import numpy as np
from pylogmap.store import ScoreWriter
from pylogmap.texts import TextSet

path, n_models, n_texts, delay = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
texts = TextSet.from_texts([f"text number {k} " * (1 + k % 5) for k in range(n_texts)])
keys = [(f"org/model-{i}", "" if i % 4 else "main", -1 if i % 3 else i % 5) for i in range(n_models)]
with ScoreWriter(path, texts, commit_interval=0) as w:
    print("ready", flush=True)
    for key in w.rows_to_do(keys, retry_failed=True):
        i = int(key[0].split("-")[1])
        time.sleep(delay)
        if i % 7 == 3:
            w.record_failure(key, f"model {i} failed", {"architecture": "Broken"})
            continue
        rng = np.random.default_rng(i)
        L = -rng.uniform(1, 2000, n_texts)
        T = rng.integers(1, 400, n_texts)
        tr = rng.random(n_texts) < 0.1
        w.record(key, L, T, tr, {"dtype": "float16", "n_params": 1000 + i, "architecture": "GPT2LMHeadModel",
                                 "wall_time_s": float(i), "extra": {"i": i}})
print("done", flush=True)
"""


def _run_writer(path, n_models, n_texts, delay, kill_after=None):
    script = WRITER_SCRIPT.replace("ROOT", repr(str(ROOT)))
    proc = subprocess.Popen([sys.executable, "-c", script, str(path), str(n_models), str(n_texts), str(delay)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after is None:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        return True
    line = proc.stdout.readline()
    if line.strip() != "ready":  # it may legitimately find nothing left to do
        proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read()
        return True
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return proc.returncode == 0


def _content(path):
    with open_map(path) as mf:
        table = mf.models_table()
        return {"L": mf.loglik(), "T": mf.ntokens(), "tr": mf.truncated(), "table": table, "labels": mf.labels()}


def _expected_row(label_key, n_texts):
    i = int(label_key.name.split("-")[1])
    rng = np.random.default_rng(i)
    return i, -rng.uniform(1, 2000, n_texts).astype(np.float32), rng.integers(1, 400, n_texts), rng.random(n_texts) < 0.1


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_file(tmp_path):
    # Each attempt sleeps 10 ms per model and is killed within 0.15 s of starting its work, so it
    # finishes at most 15 models: at least 3 kills happen before 60 models are done, on any machine.
    n_models, n_texts = 60, 300
    reference = tmp_path / "reference.h5"
    _run_writer(reference, n_models, n_texts, 0.0)
    ref = _content(reference)
    assert ref["L"].shape == (n_models, n_texts)

    path = tmp_path / "killed.h5"
    rng = random.Random(1234)
    finished = False
    kills = 0
    seen_rows = 0
    for attempt in range(8):
        finished = _run_writer(path, n_models, n_texts, 0.01, kill_after=rng.uniform(0.0, 0.15))
        if finished:
            break
        kills += 1
        if not path.exists():
            continue  # killed before the file was first created: nothing was finished yet
        # the last commit opens with plain h5py (no recovery), and every committed row is intact
        with h5py.File(path, "r") as f:
            m_committed = f["loglik"].shape[0]
        # open_map also commits what the killed writer journalled
        got = _content(path)
        m = len(got["labels"])
        assert m >= m_committed and m >= seen_rows
        seen_rows = m
        assert got["labels"] == ref["labels"][:m]  # same rows, same order, nothing half-written
        for r in range(m):
            if got["table"]["status"][r] == "ok":
                np.testing.assert_array_equal(got["L"][r], ref["L"][r])
                np.testing.assert_array_equal(got["T"][r], ref["T"][r])
                np.testing.assert_array_equal(got["tr"][r], ref["tr"][r])
            else:
                assert np.isnan(got["L"][r]).all() and got["table"]["error"][r] == ref["table"]["error"][r]
        leftovers = {p.name for p in tmp_path.iterdir()} - {"reference.h5", "killed.h5"}
        assert leftovers <= {"killed.h5.lock", "killed.h5.journal", "killed.h5.tmp"}, leftovers
    if not finished:
        _run_writer(path, n_models, n_texts, 0.0)
    assert kills >= 3
    final = _content(path)
    assert final["labels"] == ref["labels"]
    np.testing.assert_array_equal(final["L"], ref["L"])
    np.testing.assert_array_equal(final["T"], ref["T"])
    np.testing.assert_array_equal(final["tr"], ref["tr"])
    for col in MODEL_COLUMNS:
        np.testing.assert_array_equal(final["table"][col], ref["table"][col], err_msg=col)
    # independent check of a few rows against the generator
    with open_map(path) as mf:
        for r in (0, 1, 5):
            i, L, T, tr = _expected_row(mf.keys()[r], n_texts)
            np.testing.assert_array_equal(mf.loglik(r)[0], L)
            np.testing.assert_array_equal(mf.ntokens(r)[0], T)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.h5", "reference.h5"]


def test_reader_process_never_sees_a_broken_file_while_a_writer_commits(tmp_path):
    """Open and read the file over and over while another process commits row after row: every
    open succeeds and shows a consistent prefix of the rows (never a half-written file)."""
    n_models, n_texts = 25, 300
    path = tmp_path / "live.h5"
    script = WRITER_SCRIPT.replace("ROOT", repr(str(ROOT)))
    proc = subprocess.Popen([sys.executable, "-c", script, str(path), str(n_models), str(n_texts), "0.01"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        seen = []
        while proc.poll() is None or not seen or seen[-1] < n_models:
            with open_map(path) as mf:
                m = mf.n_models
                L, T = mf.loglik(), mf.ntokens()
                keys = mf.keys()
                status = mf.status()
            assert L.shape == (m, n_texts) and T.shape == (m, n_texts) and len(keys) == m
            for r in range(m):
                if status[r] == "ok":
                    i, L_ref, T_ref, _ = _expected_row(keys[r], n_texts)
                    np.testing.assert_array_equal(L[r], L_ref)
                    np.testing.assert_array_equal(T[r], T_ref)
            assert not seen or m >= seen[-1]
            seen.append(m)
            if proc.poll() is not None and m == n_models:
                break
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert len(set(seen)) > 3, f"the reader should have seen several commits, saw {sorted(set(seen))}"


def test_info_command(tmp_path, capsys):
    from pylogmap.cli import main

    ts = small_texts()
    path = tmp_path / "m.h5"
    with ScoreWriter(path, ts) as w:
        w.record("org/a", *row_values(0, len(ts)), meta={"dtype": "float16", "n_params": 124_000_000})
        w.record_failure("org/b", "could not load: no such model")
    with open_map(path, mode="a") as mf:
        mf.update_map({"tsne": np.zeros((2, 2), np.float32)}, {"tau": -12.5})
        mf.set_annotations({"family": ["gpt2", "llama-2"]})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    for expected in (ts.hash, "2 rows: 1 ok, 1 failed", "org/a", "124M", "org/b: could not load: no such model",
                     "family (text)", "@tau = -12.5", "tsne  float32 [2, 2]"):
        assert expected in out, expected
    assert main(["texts", "info", str(path)]) == 0
    assert ts.hash in capsys.readouterr().out
    (tmp_path / "junk.h5").write_bytes(b"junk")
    assert main(["info", str(tmp_path / "junk.h5")]) == 2
    assert "not an HDF5 file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "base", "step"),
    [
        ("step143000", "", 143000),  # Pythia's hub revisions
        ("main", "main", -1),
        ("", "", -1),
        ("1000", "", 1000),  # a bare numeric revision
        ("checkpoint-500", "", 500),
        ("out/checkpoint-500", "out", 500),
        ("run/step500", "run", 500),
        ("llama-s0-step40", "llama-s0", 40),  # the demo's checkpoint folders
        ("ckpt_7", "", 7),
        ("global_step100", "global", 100),
        ("my-model", "my-model", -1),
        ("gpt2-step", "gpt2-step", -1),  # a step word without a number is no step
    ],
)
def test_one_rule_reads_the_step_of_a_revision_or_checkpoint_name(text, base, step):
    from pylogmap.store import split_step, step_of

    assert split_step(text) == (base, step)
    assert step_of(text) == step


def test_info_says_which_journal_entry_is_unreadable_why_and_what_to_do(tmp_path, capsys):
    from pylogmap.cli import main

    ts = small_texts()
    path = tmp_path / "m.h5"
    with ScoreWriter(path, ts) as w:
        w.record("a", *row_values(0, len(ts)))
    (tmp_path / "m.h5.journal").mkdir()
    bad = tmp_path / "m.h5.journal" / "000000000099.npz"
    bad.write_bytes(b"not a zip file")
    assert main(["info", str(path)]) == 0
    journal = [line for line in capsys.readouterr().out.splitlines() if line.startswith("journal")]
    assert "rerun it to commit" not in "\n".join(journal)
    assert journal[0] == "journal 1 finished result(s) are not committed, because of the entries below."
    assert str(bad) in journal[1] and "cannot be read (not a complete .npz file)" in journal[1]
    assert "writer that was killed" in journal[1] and "move it out of m.h5.journal" in journal[1]
    assert "scoring that model again recomputes it" in journal[1]


def test_info_says_a_running_writer_commits_what_waits(tmp_path, capsys):
    from pylogmap.cli import main

    ts = small_texts()
    path = tmp_path / "m.h5"
    with ScoreWriter(path, ts, commit_interval=3600) as w:
        w.record("a", *row_values(0, len(ts)))
        assert main(["info", str(path)]) == 0
        journal = [line for line in capsys.readouterr().out.splitlines() if line.startswith("journal")]
        assert journal == [f"journal 1 finished result(s) not committed yet: a writer (pid {os.getpid()}) is running "
                           "and commits them."]
