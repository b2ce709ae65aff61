"""Scoring (pylogmap.scoring): agreement with Hugging Face's own loss, conventions, batching,
logit lens, failures, and the score_models engine (resume, force, revisions)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import _score_helpers as H  # noqa: E402
import pylogmap  # noqa: E402
from pylogmap import scoring  # noqa: E402
from pylogmap.scoring import models, tokenize  # noqa: E402
from pylogmap.errors import MapFileError, PylogmapError  # noqa: E402
from pylogmap.store import step_of  # noqa: E402

ARCHS = ["gpt2", "neox", "llama", "gemma2", "phi", "granite", "cohere"]
TEXTS = list(H.shakespeare_texts(10))


def tolerance(ntokens):
    """fp32 scoring against a float64 reference: each token's log-prob carries fp32 rounding of
    logits of magnitude ~10 (a few 1e-6 nats); summed over T-1 tokens that stays below 5e-6 per
    token. Systematic errors (a missing bias, scale, soft-cap or BOS) are >= 1e-2 per token."""
    return 5e-6 * np.asarray(ntokens) + 1e-4


@functools.lru_cache(maxsize=None)
def loaded(arch, max_positions=1024):
    return models.load_model(H.model_dir(arch, max_positions=max_positions))


def token_ids(lm, texts=TEXTS):
    return scoring.tokenize_texts(lm.tokenizer, texts)


@pytest.mark.parametrize("arch", ARCHS)
def test_loglik_equals_hf_loss(arch):
    lm = loaded(arch)
    ids = token_ids(lm)
    result = scoring.score_texts(lm, ids, batch_tokens=700)
    reference = np.array([H.hf_loglik(lm.model, t) for t in ids])
    assert result.loglik.dtype == np.float64
    np.testing.assert_array_equal(result.ntokens, [len(t) - 1 for t in ids])
    assert not result.truncated.any()
    assert np.all(np.abs(result.loglik - reference) <= tolerance(result.ntokens))
    assert np.all(result.loglik < 0)


def test_bos_and_first_token_conventions():
    llama, gpt2 = loaded("llama"), loaded("gpt2")
    text = "Something is rotten in the state of Denmark."
    bos = llama.tokenizer.bos_token_id
    (l_ids,) = token_ids(llama, [text])
    (g_ids,) = token_ids(gpt2, [text])
    assert l_ids[0] == bos and bos not in l_ids[1:]  # Llama style: BOS prepended
    assert g_ids[0] != gpt2.tokenizer.bos_token_id  # GPT-2 style: no BOS
    assert len(l_ids) == len(g_ids) + 1  # same BPE otherwise
    # with BOS the first real token IS scored (conditioned on BOS); without BOS it is not
    res_l = scoring.score_texts(llama, [l_ids])
    res_g = scoring.score_texts(gpt2, [g_ids])
    assert res_l.ntokens[0] == len(g_ids) and res_g.ntokens[0] == len(g_ids) - 1
    with torch.no_grad():
        logits = llama.model(input_ids=torch.as_tensor(l_ids)[None]).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    by_hand = sum(float(lp[t - 1, l_ids[t]]) for t in range(1, len(l_ids)))
    assert res_l.loglik[0] == pytest.approx(by_hand, abs=float(tolerance(len(l_ids))))


def test_short_texts_score_zero():
    gpt2, llama = loaded("gpt2"), loaded("llama")
    (one,) = token_ids(gpt2, ["a"])
    assert len(one) == 1
    res = scoring.score_texts(gpt2, token_ids(gpt2, ["a", "To be or not"]))
    assert res.loglik[0] == 0.0 and res.ntokens[0] == 0 and res.loglik[1] < 0
    # with a BOS the same one-character text has one scored token
    res = scoring.score_texts(llama, token_ids(llama, ["a"]))
    assert res.ntokens[0] == 1 and res.loglik[0] < 0


def test_truncation_at_the_models_context():
    lm = loaded("gpt2", max_positions=32)
    assert lm.info.max_length == 32
    ids = token_ids(lm, TEXTS[:5] + ["Short text.", "Who's there?"])
    result = scoring.score_texts(lm, ids, batch_tokens=100)
    lengths = np.array([len(t) for t in ids])
    np.testing.assert_array_equal(result.truncated, lengths > 32)
    assert result.truncated.any() and not result.truncated.all()
    np.testing.assert_array_equal(result.ntokens, np.minimum(lengths, 32) - 1)
    reference = np.array([H.hf_loglik(lm.model, t[:32]) for t in ids])
    assert np.all(np.abs(result.loglik - reference) <= tolerance(result.ntokens))


def test_batching_invariance():
    """Budget and order change batch shapes (and so float summation order) but not the scores
    beyond fp32 rounding; with the same batches the result is bit-identical."""
    lm = loaded("llama")
    ids = token_ids(lm)
    base = scoring.score_texts(lm, ids, batch_tokens=10**6)
    again = scoring.score_texts(lm, ids, batch_tokens=10**6)
    np.testing.assert_array_equal(base.loglik, again.loglik)
    for budget in (1, 300, 2000):
        other = scoring.score_texts(lm, ids, batch_tokens=budget)
        assert np.all(np.abs(other.loglik - base.loglik) <= tolerance(base.ntokens))
    perm = np.random.default_rng(0).permutation(len(ids))
    shuffled = scoring.score_texts(lm, [ids[i] for i in perm], batch_tokens=700)
    assert np.all(np.abs(shuffled.loglik - base.loglik[perm]) <= tolerance(base.ntokens[perm]))
    np.testing.assert_array_equal(shuffled.ntokens, base.ntokens[perm])


def test_make_batches_respects_the_budget():
    lengths = np.array([5, 1, 40, 12, 12, 3, 0, 7, 100, 2])
    batches = scoring.make_batches(lengths, 48)
    seen = np.concatenate(batches)
    assert sorted(seen) == [i for i in range(len(lengths)) if lengths[i] >= 2]  # each once, no <2
    for batch in batches:
        padded = len(batch) * lengths[batch].max()
        assert padded <= 48 or len(batch) == 1
        assert list(lengths[batch]) == sorted(lengths[batch], reverse=True)
    assert list(batches[0]) == [8]  # longer than the budget: alone
    with pytest.raises(PylogmapError):
        scoring.make_batches(lengths, 0)


def test_token_logprobs_sum_to_the_loglik():
    lm = loaded("neox")
    ids = token_ids(lm)[:5]
    result = scoring.score_texts(lm, ids, save_token_logprobs=True)
    (per_text,) = result.token_logprobs
    for k, values in enumerate(per_text):
        assert values.dtype == np.float32 and len(values) == len(ids[k]) - 1
        assert float(values.astype(np.float64).sum()) == pytest.approx(result.loglik[k], abs=1e-3)
        assert np.all(values <= 0)


# ----------------------------------------------------------------------------- logit lens

@pytest.mark.parametrize("arch", ["gpt2", "llama", "gemma2"])
def test_logit_lens(arch):
    lm = loaded(arch)
    ids = token_ids(lm)[:6]
    normal = scoring.score_texts(lm, ids, batch_tokens=900)
    lens = scoring.score_texts(lm, ids, batch_tokens=900, layers="all")
    assert lens.layers == [0, 1, 2] and lens.loglik.shape == (3, len(ids))
    np.testing.assert_array_equal(lens.loglik[-1], normal.loglik)  # last layer: exactly equal
    # intermediate layers: float64 torch, final norm then head, on HF's output_hidden_states
    m64 = H._float64(lm.model)
    lm64 = models.prepare(m64, lm.tokenizer, name="f64")
    for k, t in enumerate(ids):
        seq = torch.as_tensor(t)[None]
        with torch.no_grad():
            states = m64(input_ids=seq, output_hidden_states=True).hidden_states
            for row, layer in enumerate(lens.layers[:-1]):
                h = lm64.lens(states[layer])[0, :-1]
                ref = float(H.reference_logprobs(h, lm64.head.weight, seq[0, 1:], bias=lm64.head.bias,
                                                 softcap=lm64.head.softcap, scale=lm64.head.scale).sum())
                assert abs(lens.loglik[row, k] - ref) <= tolerance(len(t) - 1)
    assert not np.allclose(lens.loglik[0], lens.loglik[-1])


def test_lens_layer_selection_and_errors():
    lm = loaded("gpt2")
    ids = token_ids(lm)[:3]
    res = scoring.score_texts(lm, ids, layers=[2, 0])
    assert res.layers == [2, 0]
    assert scoring.resolve_layers("0:2:2", 2) == [0, 2]
    assert scoring.resolve_layers([-1], 2) == [2]
    with pytest.raises(PylogmapError, match="does not exist"):
        scoring.score_texts(lm, ids, layers=[3])
    with pytest.raises(PylogmapError, match="layer list"):
        scoring.resolve_layers("x", 2)


def test_job_layers_before_the_model_is_loaded():
    """A job's layers are fixed before its model's depth is known: "all" stays "all", indices
    become a tuple (repeats dropped for a list), negative indices are refused."""
    from pylogmap.scoring.layers import job_layers

    assert job_layers(None) is None
    assert job_layers(" ALL ") == "all"
    assert job_layers("0:4:2") == (0, 2, 4)
    assert job_layers([3, 1, 3]) == (3, 1)
    for bad in ([-1], [], "0,-2"):
        with pytest.raises(PylogmapError, match="non-negative"):
            job_layers(bad)


# ----------------------------------------------------------------------------- failure handling

def test_fallback_head_path_scores_correctly():
    model = H.build_model("llama", seed=3)
    model.lm_head = _Doubled(model.lm_head)
    lm = models.prepare(model, H.tokenizer("llama"), name="doubled")
    assert lm.head is None
    ids = token_ids(lm)[:6]
    result = scoring.score_texts(lm, ids, head_budget=64 * H.VOCAB * 4)  # 64 logit rows a batch
    reference = np.array([H.hf_loglik(model, t) for t in ids])
    assert np.all(np.abs(result.loglik - reference) <= tolerance(result.ntokens))
    with pytest.raises(PylogmapError, match="logit lens needs"):
        scoring.score_texts(lm, ids, layers="all")


class _Doubled(torch.nn.Module):
    def __init__(self, linear):
        super().__init__()
        self.linear = linear

    def forward(self, h):
        return 2.0 * self.linear(h)


def test_nan_model_fails():
    model = H.build_model("gpt2", seed=5, train_steps=0)
    with torch.no_grad():
        model.transformer.ln_f.weight[0] = float("nan")
    lm = models.prepare(model, H.tokenizer("gpt2"), name="nan")
    with pytest.raises(scoring.ScoringError, match="non-finite"):
        scoring.score_texts(lm, token_ids(lm)[:3])


def test_out_of_memory_splits_the_batch(monkeypatch):
    lm = models.load_model(H.model_dir("gpt2"))
    ids = token_ids(lm)
    expected = scoring.score_texts(lm, ids, batch_tokens=10**6)
    real = lm.forward_hidden
    sizes = []

    def limited(input_ids, attention_mask, **kw):
        sizes.append(input_ids.shape[0])
        if input_ids.shape[0] > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(input_ids, attention_mask, **kw)

    monkeypatch.setattr(lm, "forward_hidden", limited)
    result = scoring.score_texts(lm, ids, batch_tokens=10**6)
    assert max(sizes) == len(ids) and any(s <= 3 for s in sizes)
    assert np.all(np.abs(result.loglik - expected.loglik) <= tolerance(expected.ntokens))

    def always(input_ids, attention_mask, **kw):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(lm, "forward_hidden", always)
    with pytest.raises(scoring.ScoringError, match="single text"):
        scoring.score_texts(lm, ids[:2])


def test_token_ids_are_computed_once_per_tokenizer(monkeypatch):
    calls = []
    real = tokenize.tokenize_texts
    monkeypatch.setattr(tokenize, "tokenize_texts", lambda tok, texts, **kw: calls.append(1) or real(tok, texts, **kw))
    jobs = [scoring.ScoreJob(spec=H.model_dir(a), progress=False) for a in ("gpt2", "phi", "llama", "gemma2")]
    results = list(scoring.LocalExecutor().run(jobs, TEXTS[:4]))
    assert all(r.ok for r in results), [r.error for r in results]
    assert len(calls) == 2  # gpt2+phi share one tokenizer, llama+gemma2 the other


# ----------------------------------------------------------------------------- revisions

def test_revisions_and_steps():
    assert scoring.expand_revisions("step1000:step4000:1000") == ["step1000", "step2000", "step3000", "step4000"]
    assert scoring.expand_revisions("main, step5,step5") == ["main", "step5"]
    assert scoring.expand_revisions(["a", "step1:step3:2"]) == ["a", "step1", "step3"]
    for bad in ("step1:ckpt3:1", "step5:step1:1", "step1:step3:0", "a:b"):
        with pytest.raises(PylogmapError):
            scoring.expand_revisions(bad)
    assert step_of("step143000") == 143000 and step_of("main") == -1
    assert step_of("") == -1


# ----------------------------------------------------------------------------- the engine

@pytest.fixture
def textset():
    from pylogmap.texts import TextSet

    return TextSet.from_texts(TEXTS[:6] + ["a"])


def read(path):
    from pylogmap.store import open_map

    with open_map(path) as mf:
        table = mf.models_table()
        return mf.loglik(), mf.ntokens(), table


def test_score_models_end_to_end(tmp_path, textset):
    out = tmp_path / "map.h5"
    names = [H.model_dir("gpt2"), H.model_dir("llama")]
    summary = scoring.score_models(textset, names, out, progress=False, batch_tokens=900)
    assert [r.status for r in summary.rows] == ["ok", "ok"] and not summary.failed
    L, T, table = read(out)
    # local folders are rows named by the folder, their full path in the metadata
    assert list(table["name"]) == [Path(n).name for n in names] and L.dtype == np.float32
    assert [json.loads(m)["path"] for m in table["meta"]] == [str(Path(n).resolve()) for n in names]
    for i, arch in enumerate(("gpt2", "llama")):
        lm = loaded(arch)
        ids = token_ids(lm, textset.texts)
        ref = np.array([H.hf_loglik(lm.model, t) for t in ids])
        assert np.all(np.abs(L[i] - ref) <= tolerance([len(t) for t in ids]) + 1e-6 * np.abs(ref))  # + f32 storage
        np.testing.assert_array_equal(T[i], [max(len(t) - 1, 0) for t in ids])
    assert list(table["status"]) == ["ok", "ok"] and list(table["architecture"]) == ["GPT2LMHeadModel", "LlamaForCausalLM"]
    assert table["tokenizer"][0] != table["tokenizer"][1] and np.all(table["n_params"] > 0)
    assert "mean loglik" in summary.table()

    # resume: nothing left to do, the file is left as it was
    before = out.read_bytes()
    again = scoring.score_models(textset, names, out, progress=False)
    assert [r.status for r in again.rows] == ["skipped", "skipped"]
    assert out.read_bytes() == before
    # force rescoring keeps one row per key and the same values
    scoring.score_models(textset, names[:1], out, progress=False, force=True, batch_tokens=900)
    L2, _, table2 = read(out)
    assert len(table2["name"]) == 2
    np.testing.assert_array_equal(L2, L)


def test_failures_are_recorded_and_the_run_goes_on(tmp_path, textset, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    nan_dir = tmp_path / "nan-model"
    model = H.build_model("gpt2", seed=6, train_steps=0)
    with torch.no_grad():
        model.lm_head.weight[3, 0] = float("inf")
    model.save_pretrained(nan_dir)
    H.tokenizer("gpt2").save_pretrained(nan_dir)
    empty = tmp_path / "empty-model"
    empty.mkdir()
    out = tmp_path / "map.h5"
    specs = [str(empty), str(nan_dir), "EleutherAI/pythia-14m", H.model_dir("gpt2")]
    summary = scoring.score_models(textset, specs, out, progress=False,
                                   revisions=None)
    assert [r.status for r in summary.rows] == ["failed", "failed", "failed", "ok"]
    L, T, table = read(out)
    assert list(table["status"]) == ["failed", "failed", "failed", "ok"]
    assert "no config.json" in table["error"][0]
    assert "non-finite" in table["error"][1] or "NaN" in table["error"][1]
    assert "HF_HUB_OFFLINE" in table["error"][2]
    assert np.isnan(L[:3]).all() and np.isfinite(L[3]).all() and (T[:3] == -1).all()
    # failed rows are kept on resume unless asked to retry
    assert [r.status for r in scoring.score_models(textset, specs, out, progress=False).rows] == ["skipped"] * 4
    retried = scoring.score_models(textset, specs[:1], out, progress=False, retry_failed=True)
    assert [r.status for r in retried.rows] == ["failed"]


def test_revisions_become_rows_with_steps(tmp_path, textset, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "map.h5"
    summary = scoring.score_models(textset, ["EleutherAI/pythia-14m"], out, progress=False,
                                   revisions="step1000:step3000:1000")
    assert [r.label for r in summary.rows] == [f"EleutherAI/pythia-14m@step{n}000" for n in (1, 2, 3)]
    _, _, table = read(out)
    assert list(table["revision"]) == ["step1000", "step2000", "step3000"]
    assert list(table["step"]) == [1000, 2000, 3000]


def test_lens_rows_in_the_file(tmp_path, textset):
    out = tmp_path / "lens.h5"
    name = H.model_dir("gpt2")
    scoring.score_models(textset, [name], out, progress=False, layers="all")
    scoring.score_models(textset, [name], out, progress=False)
    L, _, table = read(out)
    layer = list(table["layer"])
    assert sorted(layer) == [-1, 0, 1, 2]
    np.testing.assert_array_equal(L[layer.index(2)], L[layer.index(-1)])
    again = scoring.score_models(textset, [name], out, progress=False, layers="all")
    assert [r.status for r in again.rows] == ["skipped"]


def test_other_text_set_and_corrupt_files_are_refused(tmp_path, textset):
    from pylogmap.texts import TextSet

    out = tmp_path / "map.h5"
    scoring.score_models(textset, [H.model_dir("gpt2")], out, progress=False)
    before = out.read_bytes()
    other = TextSet.from_texts(["Another text entirely.", "And one more."])
    with pytest.raises(MapFileError, match="another text set"):
        scoring.score_models(other, [H.model_dir("gpt2")], out, progress=False)
    assert out.read_bytes() == before
    scoring.score_models(other, [H.model_dir("gpt2")], out, progress=False, force=True)
    L, _, _ = read(out)
    assert L.shape == (1, 2)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(MapFileError, match="nothing was written|Nothing was written"):
        scoring.score_models(textset, [H.model_dir("gpt2")], corrupt, progress=False, force=True)
    assert corrupt.read_bytes() == b"\x89HDF\r\n\x1a\n" + b"\0" * 100


def test_bad_arguments(tmp_path, textset):
    out = tmp_path / "x.h5"
    with pytest.raises(PylogmapError, match="no models"):
        scoring.score_models(textset, [], out, progress=False)
    with pytest.raises(PylogmapError, match="not both"):
        scoring.score_models(textset, ["a/b"], out, progress=False, revision="x", revisions="y")
    with pytest.raises(PylogmapError, match="positive"):
        scoring.score_models(textset, ["a/b"], out, progress=False, batch_tokens=0)
    with pytest.raises(PylogmapError, match="non-negative"):
        scoring.score_models(textset, ["a/b"], out, progress=False, layers=[-1])
    assert not out.exists()


def test_failed_lens_job_is_recorded_under_layer_0(tmp_path, textset):
    empty = tmp_path / "no-model"
    empty.mkdir()
    out = tmp_path / "lens.h5"
    summary = scoring.score_models(textset, [str(empty)], out, progress=False, layers="all")
    assert [(r.label, r.status) for r in summary.rows] == [(f"{empty.name}#L0", "failed")]
    again = scoring.score_models(textset, [str(empty)], out, progress=False, layers="all")
    assert [r.status for r in again.rows] == ["skipped"]
    _, _, table = read(out)
    assert list(table["layer"]) == [0] and list(table["status"]) == ["failed"]


def test_ray_refuses_to_start_where_workers_would_import_a_source_folder(tmp_path, monkeypatch):
    from pylogmap.scoring.ray_executor import check_no_source_folder_here

    (tmp_path / "pylogmap").mkdir()
    (tmp_path / "pylogmap" / "__init__.py").write_text("")
    with pytest.raises(PylogmapError, match=r"pylogmap source folder .* start the Ray run from another folder"):
        check_no_source_folder_here(tmp_path)
    check_no_source_folder_here(tmp_path / "pylogmap")  # no such folder there: fine
    installed = Path(pylogmap.__file__).resolve().parent.parent
    check_no_source_folder_here(installed)  # the installed package itself (an editable install's clone)


def test_ray_missing_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(PylogmapError, match=r"pylogmap\[ray\]"):
        scoring.RayExecutor()
    with pytest.raises(PylogmapError, match="unknown executor"):
        scoring.make_executor("dask")


# ----------------------------------------------------------------------------- plausible rows only

def _model_folder(tmp_path, name, *, tokenizer=None, config_vocab=None):
    """A folder of the tiny GPT-2 weights with the given tokenizer (None: no tokenizer files), or a
    fresh GPT-2 of `config_vocab` tokens with the test tokenizer."""
    import shutil

    from transformers import AutoModelForCausalLM

    folder = tmp_path / name
    if config_vocab is not None:
        config = H.make_config("gpt2")
        config.vocab_size = config_vocab
        AutoModelForCausalLM.from_config(config).save_pretrained(folder)
        H.tokenizer("gpt2").save_pretrained(folder)
        return folder
    folder.mkdir()
    for f in Path(H.model_dir("gpt2")).iterdir():
        if f.name in ("config.json", "generation_config.json") or f.suffix == ".safetensors":
            shutil.copy(f, folder / f.name)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


def _unknown_only_tokenizer():
    """A word-level tokenizer that knows three words: Shakespeare is nearly all <unk> to it."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"<unk>": 0, "the": 1, "and": 2, "of": 3}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


def test_rows_with_implausible_numbers_fail_with_what_is_wrong(tmp_path, textset):
    """A row is ok only when its numbers can be right: a folder without tokenizer files (an empty
    tokenizer: every entry 0), a tokenizer that maps the texts to <unk>, a tokenizer whose ids
    pass the model's embedding each fail the model, and the run goes on."""
    specs = [
        str(_model_folder(tmp_path, "no-tokenizer")),
        str(_model_folder(tmp_path, "unknown-words", tokenizer=_unknown_only_tokenizer())),
        str(_model_folder(tmp_path, "small-vocab", config_vocab=256)),
        H.model_dir("gpt2"),
    ]
    out = tmp_path / "plausible.h5"
    summary = scoring.score_models(textset, specs, out, progress=False)
    assert [r.status for r in summary.rows] == ["failed", "failed", "failed", "ok"]
    errors = [r.error for r in summary.rows]
    assert "into no tokens" in errors[0] and "1 entries" in errors[0] and "tokenizer.save_pretrained" in errors[0]
    assert "to its unknown token '<unk>'" in errors[1]
    assert "outside the model's 256 embeddings (the tokenizer has 320 tokens)" in errors[2]
    L, T, table = read(out)
    assert list(table["status"]) == ["failed", "failed", "failed", "ok"]
    assert np.isnan(L[:3]).all() and (T[:3] == -1).all()


def test_check_scores_accepts_only_plausible_numbers():
    from pylogmap.scoring.plausibility import check_scores, check_token_ids

    tok = H.tokenizer("gpt2")
    texts = ["To be, or not to be", "a", "   "]
    ids = scoring.tokenize_texts(tok, texts)
    assert len(ids[1]) == 1  # one token, no BOS: nothing to score, and that is plausible
    check_scores(texts, ids, np.array([-20.0, 0.0, 0.0]), tok)
    check_scores(texts, ids, np.array([[-20.0, 0.0, 0.0], [-25.0, 0.0, 0.0]]), tok)  # lens rows
    with pytest.raises(scoring.ImplausibleScores, match="positive"):
        check_scores(texts, ids, np.array([1e-3, 0.0, 0.0]), tok)
    with pytest.raises(scoring.ImplausibleScores, match="NaN or infinite"):
        check_scores(texts, ids, np.array([np.nan, 0.0, 0.0]), tok)
    with pytest.raises(scoring.ImplausibleScores, match="no tokens"):
        check_scores(texts, [ids[0], np.zeros(0, np.int64), ids[2]], np.array([-20.0, 0.0, 0.0]), tok)
    check_token_ids(ids, H.VOCAB, tok)
    with pytest.raises(scoring.ImplausibleScores, match="outside the model's 100 embeddings"):
        check_token_ids(ids, 100, tok)


# ----------------------------------------------------------------------------- local folders' names

def _copy_model(dest):
    import shutil

    shutil.copytree(H.model_dir("gpt2"), dest)
    return dest


def test_local_folders_are_rows_named_by_their_folder(tmp_path, textset, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _copy_model(tmp_path / "my-model")
    _copy_model(tmp_path / "a" / "model")
    _copy_model(tmp_path / "b" / "model")
    _copy_model(tmp_path / "run" / "checkpoint-100")
    specs = ["./my-model", "a/model", str(tmp_path / "b" / "model/"), "run/checkpoint-100"]
    out = tmp_path / "names.h5"
    summary = scoring.score_models(textset, specs, out, progress=False)
    assert [r.label for r in summary.rows] == ["my-model", "a/model", "b/model", "run/checkpoint-100"]
    assert [r.status for r in summary.rows] == ["ok"] * 4
    _, _, table = read(out)
    paths = [json.loads(m)["path"] for m in table["meta"]]
    assert paths == [str((tmp_path / s).resolve()) for s in ("my-model", "a/model", "b/model", "run/checkpoint-100")]
    from pylogmap.store import open_map

    with open_map(out) as mf:  # the names a user types find them
        assert mf.find_row("my-model") == 0 and mf.find_row("./my-model") == 0 and mf.find_row("b/model") == 2

    # a rerun from elsewhere, with other spellings of the same folders: all recognised
    monkeypatch.chdir(tmp_path / "a")
    again = scoring.score_models(textset, [str(tmp_path / "my-model"), "model", "../b/model"], out, progress=False)
    assert [(r.label, r.status) for r in again.rows] == [
        ("my-model", "skipped"), ("a/model", "skipped"), ("b/model", "skipped")]


def test_rows_named_by_their_path_before_are_still_recognised(tmp_path, textset):
    from pylogmap.store import ScoreWriter

    folder = _copy_model(tmp_path / "old-model")
    out = tmp_path / "legacy.h5"
    with ScoreWriter(out, textset) as writer:  # a map written when rows were named by the path
        n = len(textset)
        writer.record((str(folder), "", -1), np.full(n, -1.0), np.ones(n, np.int32), None,
                      {"source": "directory"})
    summary = scoring.score_models(textset, [str(folder)], out, progress=False)
    assert [(r.label, r.status) for r in summary.rows] == [(str(folder), "skipped")]


def test_row_names_rules(tmp_path):
    for d in ("x/run-a/checkpoint-5", "x/run-b/checkpoint-5", "y/solo", "z/solo", "gone"):
        (tmp_path / d).mkdir(parents=True)
    p = lambda d: str(tmp_path / d)  # noqa: E731
    names = scoring.row_names([p("x/run-a/checkpoint-5"), p("x/run-b/checkpoint-5"), p("y/solo"), "org/hub-model"])
    assert names == {p("x/run-a/checkpoint-5"): "run-a/checkpoint-5", p("x/run-b/checkpoint-5"): "run-b/checkpoint-5",
                     p("y/solo"): "solo", "org/hub-model": "org/hub-model"}
    # a name taken in the map by another folder: parents in front until it differs
    rows = [("solo", {"path": p("y/solo"), "source": "directory"})]
    assert scoring.row_names([p("z/solo")], rows) == {p("z/solo"): "z/solo"}
    assert scoring.row_names([p("y/solo")], rows) == {p("y/solo"): "solo"}  # the same folder: its row
    # two spellings of one folder are one row
    assert set(scoring.row_names([p("y/solo"), p("y/solo") + "/"]).values()) == {"solo"}
    # a folder scored and deleted since keeps its name
    rows = [("gone", {"path": p("gone")})]
    (tmp_path / "gone").rmdir()
    assert scoring.row_names([p("gone")], rows) == {p("gone"): "gone"}


# ----------------------------------------------------------------------------- bounded tokenization

@pytest.mark.parametrize("style", ["gpt2", "llama"])
def test_long_texts_are_tokenized_from_a_prefix_with_the_same_first_tokens(style):
    from pylogmap.scoring.tokenize import PREFIX_MARGIN

    tok = H.tokenizer(style)
    long = "\n".join(H.shakespeare_texts(40, max_lines=100)) * 2
    texts = [long, *TEXTS[:4], "a"]
    full = scoring.tokenize_texts(tok, texts)
    for context in (16, 100, 1000):
        cut = scoring.tokenize_texts(tok, texts, max_tokens=context)
        assert len(full[0]) > context + PREFIX_MARGIN
        np.testing.assert_array_equal(cut[0], full[0][:context + PREFIX_MARGIN])  # exactly the text's first tokens
        for f, c in zip(full[1:], cut[1:]):  # whole, or cut past the context: the same first tokens
            assert len(c) >= min(len(f), context + PREFIX_MARGIN)
            np.testing.assert_array_equal(c, f[:len(c)])


def test_a_prefix_that_gives_too_few_tokens_is_an_error():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({"<unk>": 0, "to": 1, "be": 2}, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # whitespace gives no tokens at all
    tok = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="<unk>")
    with pytest.raises(PylogmapError, match="give only 0 tokens, fewer than the 16"):
        scoring.tokenize_texts(tok, [" " * 100_000 + "to be " * 50], max_tokens=16)


def test_the_token_cache_serves_shorter_contexts_and_recomputes_longer(monkeypatch):
    calls = []
    real = tokenize.tokenize_texts
    monkeypatch.setattr(tokenize, "tokenize_texts", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    cache, tok = scoring.TokenCache(), H.tokenizer("gpt2")
    for context in (256, 128, 1024, 512):
        cache.get(tok, "h", TEXTS, "k", max_tokens=context)
    assert [c["max_tokens"] for c in calls] == [256, 1024]


def test_memory_stays_bounded_on_a_huge_text(tmp_path):
    """A 20 MB text scored by a 256-token model: peak memory grows by the batch, not the text
    (tokenizing the whole text took ~250 bytes a character: 5 GB here)."""
    import subprocess
    import sys

    script = tmp_path / "huge.py"
    script.write_text(
        "import json, resource, sys\n"
        "from pylogmap.scoring import ScoreJob, run_job\n"
        "spec = sys.argv[1]\n"
        "short = ['To be, or not to be, that is the question.']\n"
        "huge = ('Something is rotten in the state of Denmark. ' * 500000)[:20_000_000]\n"
        "run_job(ScoreJob(spec, progress=False), short)  # torch, the model and the huge string: the baseline\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "r = run_job(ScoreJob(spec, progress=False), [huge] + short)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'error': r.error, 'ntokens': r.ntokens.tolist(), 'truncated': r.truncated.tolist(),\n"
        "                  'growth_mb': (peak - base) / 1024}))\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), H.model_dir("gpt2", max_positions=256)],
                          capture_output=True, text=True, timeout=600, check=True)
    res = json.loads(done.stdout.strip().splitlines()[-1])
    assert res["error"] is None and res["ntokens"][0] == 255 and res["truncated"] == [True, False]
    assert res["growth_mb"] < 150, res
