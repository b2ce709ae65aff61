"""`--shard I/N`: a deterministic share of the models. The N shards of a list are disjoint, their
union is the whole list, a model's shard does not depend on the order or length of the list nor on
the process (no Python hash seed), and `score_models`/`pylogmap score` score only their shard."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from pylogmap.errors import PylogmapError
from pylogmap.scoring import Shard, parse_shard, shard_of

MODELS = [f"org{i % 7}/model-{i}" for i in range(120)]
REVISIONS = ["", "main", "step1000", "step2000"]
PAIRS = [(m, r) for m in MODELS for r in REVISIONS]


def split(pairs, count):
    return [[p for p in pairs if Shard(i, count).holds(*p)] for i in range(1, count + 1)]


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_the_shards_are_disjoint_and_cover_the_list(count):
    shards = split(PAIRS, count)
    flat = [p for shard in shards for p in shard]
    assert sorted(flat) == sorted(PAIRS) and len(set(flat)) == len(PAIRS)  # every pair in exactly one
    assert all(shard for shard in shards)  # 480 pairs: none of the shards is empty
    assert max(map(len, shards)) - min(map(len, shards)) < len(PAIRS) / count  # roughly even


@pytest.mark.parametrize("count", [2, 5])
def test_a_models_shard_does_not_depend_on_the_order_or_length_of_the_list(count):
    shuffled = PAIRS[:]
    random.Random(0).shuffle(shuffled)
    assert [sorted(s) for s in split(shuffled, count)] == [sorted(s) for s in split(PAIRS, count)]
    longer = PAIRS + [(f"new/model-{i}", "") for i in range(30)]  # the list grew: nobody moves
    for before, after in zip(split(PAIRS, count), split(longer, count)):
        assert set(before) <= set(after)


def test_the_split_is_the_same_in_every_process_and_version():
    # pinned: a model must never change shard between releases (shard files resume by row key)
    assert [shard_of("EleutherAI/pythia-160m", r, 4) for r in ("", "step1000", "step2000")] == [2, 4, 2]
    assert shard_of("gpt2", "", 7) == 3 and shard_of("gpt2", "", 1) == 1
    code = ("from pylogmap.scoring import shard_of; "
            f"print([shard_of(m, r, 5) for m, r in {PAIRS[:40]!r}])")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert outs == {repr([shard_of(m, r, 5) for m, r in PAIRS[:40]]) + "\n"}


def test_parse_shard():
    assert parse_shard("2/8") == Shard(2, 8) and str(parse_shard(" 1 / 1 ")) == "1/1"
    assert parse_shard((3, 4)) == Shard(3, 4) and parse_shard(Shard(1, 2)) == Shard(1, 2)
    with pytest.raises(PylogmapError, match="not of the form I/N"):
        parse_shard("3")
    with pytest.raises(PylogmapError, match="not of the form I/N"):
        parse_shard("a/b")
    with pytest.raises(PylogmapError, match="at least 1"):
        parse_shard("0/0")
    with pytest.raises(PylogmapError, match=r"numbered 1 to 4 .*--array=1-4"):
        parse_shard("0/4")
    with pytest.raises(PylogmapError, match="numbered 1 to 4"):
        parse_shard("5/4")


# --------------------------------------------------------------------------- scoring a shard

def test_each_shard_scores_its_models_only_and_the_shards_make_the_whole_run(tmp_path):
    pytest.importorskip("torch")
    import _score_helpers as H
    from pylogmap.cli import main
    from pylogmap.scoring import score_models
    from pylogmap.store import open_map
    from pylogmap.texts import TextSet

    texts = TextSet.from_texts(list(H.shakespeare_texts(4, max_lines=4)))
    texts_file = tmp_path / "texts.jsonl"
    texts.to_jsonl(texts_file)
    specs = [H.model_dir(a) for a in ("gpt2", "neox", "llama", "phi")]
    whole = tmp_path / "whole.h5"
    score_models(texts, specs, whole, progress=False)

    def rows(path):
        with open_map(path) as mf:
            return {key.name: (loglik, status) for key, loglik, status in zip(mf.keys(), mf.loglik(), mf.status())}

    parts = []
    for i in (1, 2):
        out = tmp_path / f"part-{i}.h5"
        if i == 1:  # one shard through the API (model list reversed), the other through the CLI
            score_models(texts, specs[::-1], out, progress=False, shard="1/2")
        else:
            assert main(["score", "--texts", str(texts_file), "--models", *specs, "-o", str(out),
                         "--shard", "2/2", "--quiet"]) == 0
        parts.append(rows(out))
        names = [Path(s).name for s in specs]  # local folders: rows (and shards) go by the folder's name
        assert set(parts[-1]) == {n for n in names if shard_of(n, "", 2) == i}
    assert not set(parts[0]) & set(parts[1])
    full = rows(whole)
    assert set(parts[0]) | set(parts[1]) == set(full)
    for part in parts:
        for name, (loglik, status) in part.items():
            assert status == "ok" and (loglik == full[name][0]).all()


def test_a_bad_shard_on_the_command_line_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    from pylogmap.cli import main

    texts_file = tmp_path / "texts.txt"
    texts_file.write_text("To be or not to be.\n", encoding="utf-8")
    out = tmp_path / "map.h5"
    assert main(["score", "--texts", str(texts_file), "--models", "gpt2", "-o", str(out),
                 "--shard", "3/2", "--quiet"]) == 2
    assert "--shard 3/2: shards are numbered 1 to 2" in capsys.readouterr().err
    assert not out.exists()
