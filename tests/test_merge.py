"""`pylogmap merge` / `store.merge_maps`: shards of one text set merged into one map equal to
scoring every model into one file; refusals (other text sets, conflicting rows, an output in the
way, parts still being written); provenance; a kill during a merge."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pylogmap.cli import main
from pylogmap.errors import MapFileError
from pylogmap.store import MapFile, ScoreWriter, merge_maps, open_map
from pylogmap.store.attrs import read_attr
from pylogmap.texts import TextSet

ROOT = Path(__file__).resolve().parent.parent
MODELS = [f"org/model-{i}" for i in range(7)]


def texts(tag: str = "") -> TextSet:
    return TextSet.from_texts([f"text {k}{tag}" for k in range(6)], name="six")


def row(name: str, n: int):
    rng = np.random.default_rng(int(hashlib.sha1(name.encode()).hexdigest()[:8], 16))
    T = rng.integers(1, 50, n).astype(np.int32)
    return -rng.uniform(1, 300, n), T, rng.random(n) < 0.3, [rng.normal(size=t).astype(np.float32) for t in T]


def score_into(path: Path, ts: TextSet, names, *, failed=(), bump=()) -> None:
    """Score `names` like `pylogmap score` would (meta, per-token values); `failed` rows fail,
    `bump` rows get other values (a rescoring that differs)."""
    n = len(ts)
    with ScoreWriter(path, ts) as w:
        for name in names:
            if name in failed:
                w.record_failure(name, "CUDA out of memory")
                continue
            L, T, tr, tok = row(name, n)
            if name in bump:
                L = L - 1.0
            w.record(name, L, T, tr, meta={"device": "cpu", "shard": path.stem}, token_logprobs=tok)


def by_key(mf: MapFile) -> dict:
    L, T, tr, status = mf.loglik(), mf.ntokens(), mf.truncated(), mf.status()
    return {k: (L[i].tobytes(), T[i].tobytes(), tr[i].tobytes(), status[i]) for i, k in enumerate(mf.keys())}


def digest(*paths: Path) -> dict:
    out = {}
    for p in paths:
        for f in sorted([p] + list(p.parent.glob(p.stem + ".tokens/*"))):
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def test_merged_shards_equal_one_map_scored_whole(tmp_path):
    ts = texts()
    score_into(tmp_path / "whole.h5", ts, MODELS)
    shards = [tmp_path / f"shard-{i}.h5" for i in range(3)]
    for i, shard in enumerate(shards):
        score_into(shard, ts, MODELS[i::3])
    with MapFile(shards[1], "a") as mf:
        mf.set_annotations({"family": ["b"] * mf.n_models, "size": np.arange(mf.n_models, dtype=float)})
    before = digest(*shards)
    result = merge_maps(shards, tmp_path / "map.h5")
    assert digest(*shards) == before  # the parts are only read
    assert result.n_rows == len(MODELS) and result.identical_duplicates == 0 and result.token_files == len(MODELS)
    assert result.rows_per_part == {str(s): len(MODELS[i::3]) for i, s in enumerate(shards)}
    with open_map(tmp_path / "whole.h5") as whole, open_map(tmp_path / "map.h5") as merged:
        assert merged.text_hash == whole.text_hash and merged.texts().texts == whole.texts().texts
        assert by_key(merged) == by_key(whole)  # bit for bit
        for i, key in enumerate(merged.keys()):
            j = whole.keys().index(key)
            for a, b in zip(merged.token_logprobs(i), whole.token_logprobs(j)):
                assert a.tobytes() == b.tobytes()
        table = merged.models_table()
        metas = [json.loads(m) for m in table["meta"]]
        assert [m["merged_from"] for m in metas] == [str(shards[MODELS.index(k.name) % 3]) for k in merged.keys()]
        assert all(m["device"] == "cpu" for m in metas)
        ann = merged.annotations()
        from_b = [MODELS.index(k.name) % 3 == 1 for k in merged.keys()]
        assert list(ann["family"]) == ["b" if b else "" for b in from_b]
        assert [np.isnan(v) for v in ann["size"]] == [not b for b in from_b]
        provenance = read_attr(merged.file, "merged_from")
        assert [p["part"] for p in provenance] == [str(s) for s in shards]
        assert [p["rows"] for p in provenance] == [3, 2, 2]
        assert merged.map_id not in {p["map_id"] for p in provenance}


def test_other_text_sets_are_refused_naming_both_hashes(tmp_path):
    score_into(tmp_path / "a.h5", texts(), MODELS[:2])
    score_into(tmp_path / "b.h5", texts("b"), MODELS[2:4])
    with pytest.raises(MapFileError, match=rf"b\.h5.*another text set.*a\.h5.*{texts('b').hash} vs {texts().hash}"):
        merge_maps([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "map.h5")
    assert not (tmp_path / "map.h5").exists() and not (tmp_path / "map.h5.tmp").exists()


def test_identical_duplicates_are_kept_once_and_failures_give_way(tmp_path):
    ts = texts()
    score_into(tmp_path / "a.h5", ts, MODELS[:4], failed={MODELS[3]})
    score_into(tmp_path / "b.h5", ts, MODELS[2:6])
    result = merge_maps([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "map.h5")
    assert result.n_rows == 6 and result.identical_duplicates == 1
    assert result.failed_replaced == [MODELS[3]]
    with open_map(tmp_path / "map.h5") as mf:
        assert [k.name for k in mf.keys()] == MODELS[:6] and set(mf.status()) == {"ok"}
        metas = [json.loads(m)["merged_from"] for m in mf.models_table()["meta"]]
        assert metas[3] == str(tmp_path / "b.h5")


def test_conflicting_rows_are_refused_unless_prefer_says_which_part_wins(tmp_path):
    ts = texts()
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    score_into(a, ts, MODELS[:3])
    score_into(b, ts, MODELS[1:4], bump={MODELS[2]})
    with pytest.raises(MapFileError, match=rf"1 model\(s\) have different results .*{MODELS[2]} .*a\.h5.*b\.h5.*--prefer first"):
        merge_maps([a, b], tmp_path / "map.h5")
    assert not (tmp_path / "map.h5").exists()
    with pytest.raises(MapFileError, match="--prefer 'c.h5' is none of the parts"):
        merge_maps([a, b], tmp_path / "map.h5", prefer="c.h5")
    expected = {"first": row(MODELS[2], len(ts))[0], "last": row(MODELS[2], len(ts))[0] - 1.0}
    expected[str(b)] = expected["last"]
    expected["a.h5"] = expected["first"]
    for prefer, want in expected.items():
        result = merge_maps([a, b], tmp_path / "map.h5", prefer=prefer, overwrite=True)
        assert result.identical_duplicates == 1 and len(result.conflicts_resolved) == 1
        with open_map(tmp_path / "map.h5") as mf:
            assert mf.loglik(mf.find_row(MODELS[2]))[0].tobytes() == want.astype(np.float32).tobytes()
            assert read_attr(mf.file, "merge_prefer") == prefer


def test_derived_results_are_dropped_with_a_note(tmp_path):
    score_into(tmp_path / "a.h5", texts(), MODELS[:3])
    with MapFile(tmp_path / "a.h5", "a") as mf:
        mf.write_derived("tsne", np.zeros((3, 2), np.float32), {"perplexity": 2})
    result = merge_maps([tmp_path / "a.h5"], tmp_path / "map.h5")
    assert result.notes == [f"derived results (/map) of the parts were not copied; run 'pylogmap map {tmp_path / 'map.h5'}'."]
    with open_map(tmp_path / "map.h5") as mf:
        assert mf.derived_names() == [] and mf.n_models == 3


def test_refusals_for_the_output_and_the_parts(tmp_path):
    ts = texts()
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    score_into(a, ts, MODELS[:2])
    score_into(b, ts, MODELS[2:4])
    with pytest.raises(MapFileError, match="give at least one"):
        merge_maps([], tmp_path / "map.h5")
    with pytest.raises(MapFileError, match="a part is given twice"):
        merge_maps([a, a], tmp_path / "map.h5")
    with pytest.raises(MapFileError, match=r"a\.h5' already exists.*--force"):
        merge_maps([a, b], a)
    with pytest.raises(MapFileError, match="the output .* is one of the parts"):
        merge_maps([a, b], a, overwrite=True)
    w = ScoreWriter(b, ts, commit_interval=3600)
    w.record(MODELS[5], *row(MODELS[5], len(ts))[:3])
    with pytest.raises(MapFileError, match=r"b\.h5' has 1 finished result\(s\) not committed yet.*let the scorer finish"):
        merge_maps([a, b], tmp_path / "map.h5")
    w.close()
    assert merge_maps([a, b], tmp_path / "map.h5").n_rows == 5


def test_cli_merges_and_reports(tmp_path, capsys):
    ts = texts()
    score_into(tmp_path / "a.h5", ts, MODELS[:3])
    score_into(tmp_path / "b.h5", ts, MODELS[2:5])
    out = tmp_path / "map.h5"
    assert main(["merge", str(tmp_path / "a.h5"), str(tmp_path / "b.h5"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"merged 2 parts into {out}: 5 rows (3 rows from {tmp_path / 'a.h5'}, 2 rows from ")
    assert "1 identical duplicate row(s) kept once" in printed and "5 per-token file(s) copied" in printed
    assert main(["merge", str(tmp_path / "a.h5"), "-o", str(out), "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 3
    assert main(["merge", str(tmp_path / "a.h5"), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_help_has_examples():
    done = subprocess.run([sys.executable, "-m", "pylogmap", "merge", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "pylogmap merge shard-0.h5 shard-1.h5 shard-2.h5 -o map.h5" in done.stdout and "--prefer" in done.stdout


MERGER = r"""
import sys
from pylogmap.store import merge_maps
print("ready", flush=True)
merge_maps(sys.argv[2:], sys.argv[1], overwrite=True)
print("done", flush=True)
"""


def test_a_kill_during_a_merge_leaves_no_output_or_a_complete_one_and_the_parts_untouched(tmp_path):
    n_texts, n_rows = 1000, 1000
    ts = TextSet.from_texts([f"text {k}" for k in range(n_texts)])
    rng = np.random.default_rng(0)
    parts = []
    for i in range(2):
        p = tmp_path / f"part-{i}.h5"
        MapFile.create_with_rows(p, ts, [f"m{i}-{r}" for r in range(n_rows)],
                                 -rng.uniform(1, 300, (n_rows, n_texts)).astype(np.float32)).close()
        parts.append(p)
    before = digest(*parts)
    out = tmp_path / "map.h5"
    t0 = time.monotonic()
    merge_maps(parts, out)
    took = time.monotonic() - t0
    with open_map(out) as mf:
        expected = by_key(mf)
    os.unlink(out)
    outcomes = set()
    for trial in range(6):
        proc = subprocess.Popen([sys.executable, "-c", MERGER, str(out), *map(str, parts)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "ready\n"
        if trial < 5:
            time.sleep(took * trial / 4)  # across the merge (its in-process time, measured above)
        else:
            proc.wait(timeout=120)  # past its end, however slow the machine is just now
        proc.send_signal(signal.SIGKILL)
        stdout, _ = proc.communicate()
        if out.exists():
            with open_map(out) as mf:
                assert by_key(mf) == expected
            outcomes.add("complete")
        else:
            outcomes.add("none")
        assert digest(*parts) == before
    merge_maps(parts, out, overwrite=True)  # a rerun always finishes
    with open_map(out) as mf:
        assert by_key(mf) == expected
    assert not (tmp_path / "map.h5.tmp").exists()
    assert outcomes == {"none", "complete"}
