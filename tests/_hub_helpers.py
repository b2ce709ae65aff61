"""Tiny hub repositories for the tests, served by `_hub_server.FakeHub` and cached by huggingface_hub.

`build_hub()` starts a `FakeHub` holding:

- `org/tiny`: a GPT-2 style model at four training checkpoints, branches `step100` ... `step400`
  (one more Adam step each) and `main` (= `step400`), a tag `v1` (= `step200`); the same weights
  are kept as local folders in `Hub.folders` to score them both ways;
- `org/tiny-bos`: a Llama style model whose tokenizer prepends a BOS;
- `org/tiny-gguf`: one GGUF file (`tiny.gguf`, float32 Llama weights with a byte-level BPE
  tokenizer, as llama.cpp's converter writes them) and the same model as a folder;
- failures: `org/encoder` (BERT: transformers loads it with a causal head, but it attends both
  ways), `org/distil` (DistilBERT: no causal head at all), `org/custom` (needs its own code),
  `org/gated` and `org/private` (copies of `org/tiny`).

`fill_cache(hub, cache_dir, items)` runs `huggingface_hub.snapshot_download` (what `hf download`
runs) for each (repo, revision, files); `huggingface_hub.scan_cache_dir` then reads the cache back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import _score_helpers as H
from _hub_server import FakeHub

CHECKPOINTS = (100, 200, 300, 400)


@dataclass
class Hub:
    """A running FakeHub and what the tests compare against."""

    server: FakeHub
    commits: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, revision) -> commit
    folders: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, revision) -> local folder

    @property
    def url(self) -> str:
        return self.server.url


def folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _save(model, tokenizer, folder: Path) -> dict[str, bytes]:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder_files(folder)


def _checkpoints(root: Path) -> list[tuple[int, Path]]:
    """The GPT-2 style model after 1..4 Adam steps on the texts, saved per step."""
    import torch

    tok = H.tokenizer("gpt2")
    model = H.build_model("gpt2", seed=11, train_steps=0)
    ids = tok(list(H.shakespeare_texts(8, seed=99)), add_special_tokens=True)["input_ids"]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    out = []
    for k, step in enumerate(CHECKPOINTS):
        model.train()
        seq = torch.tensor([ids[k][:64]])
        loss = model(input_ids=seq, labels=seq).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.eval()
        folder = root / f"tiny-step{step}"
        _save(model, tok, folder)
        out.append((step, folder))
    return out


def _permute_for_gguf(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's order of the rotary halves in q/k (transformers' GGUF reader undoes it)."""
    rows = weight.shape[0] // n_head // 2
    return weight.reshape(n_head, 2, rows, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_gguf(model, tokenizer, path: Path) -> None:
    """A float32 GGUF of a Llama model with a byte-level BPE tokenizer, laid out as llama.cpp's
    converter writes one (keys, tensor names, q/k permutation)."""
    import gguf

    cfg = model.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(float(getattr(cfg, "rope_theta", None) or cfg.rope_parameters["rope_theta"]))
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    vocab = tokenizer.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    special = set(tokenizer.all_special_tokens)
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in special else 1 for t in tokens])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(tokenizer.bos_token_id)
    w.add_eos_token_id(tokenizer.eos_token_id)
    w.add_add_bos_token(False)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        q, k = sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.k_proj.weight"]
        w.add_tensor(f"blk.{i}.attn_q.weight", _permute_for_gguf(q, cfg.num_attention_heads))
        w.add_tensor(f"blk.{i}.attn_k.weight", _permute_for_gguf(k, cfg.num_key_value_heads))
        w.add_tensor(f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        w.add_tensor(f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        w.add_tensor(f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _gguf_model(root: Path) -> tuple[Path, Path]:
    """(folder, .gguf file) of one random Llama model with the GPT-2 style tokenizer (no BOS)."""
    import torch
    import transformers as tf

    tok = H.tokenizer("gpt2")
    torch.manual_seed(5)
    cfg = tf.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, vocab_size=H.VOCAB,
                         tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = tf.LlamaForCausalLM(cfg).eval()
    folder = root / "tiny-gguf-folder"
    _save(model, tok, folder)
    path = root / "tiny.gguf"
    write_gguf(model, tok, path)
    return folder, path


def _encoder_files(root: Path, kind: str) -> dict[str, bytes]:
    import torch
    import transformers as tf

    torch.manual_seed(2)
    small = dict(vocab_size=H.VOCAB, max_position_embeddings=128)
    if kind == "bert":
        model = tf.BertForMaskedLM(tf.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                 intermediate_size=64, **small))
    else:
        model = tf.DistilBertForMaskedLM(tf.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, **small))
    return _save(model.eval(), H.tokenizer("gpt2"), root / kind)


def _custom_code_files(base: dict[str, bytes]) -> dict[str, bytes]:
    """A repository whose config asks for its own modelling code (not run by the tests)."""
    files = {k: v for k, v in base.items() if not k.startswith("config")}
    files["config.json"] = json.dumps({
        "model_type": "tinycustom", "architectures": ["TinyCustomForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_tiny.TinyCustomConfig",
                     "AutoModelForCausalLM": "modeling_tiny.TinyCustomForCausalLM"},
    }).encode()
    files["configuration_tiny.py"] = b"raise RuntimeError('the tests never run this code')\n"
    files["modeling_tiny.py"] = b"raise RuntimeError('the tests never run this code')\n"
    return files


def build_hub(root: Path) -> Hub:
    """A FakeHub with the repositories of the module docstring (folders built under `root`)."""
    server = FakeHub()
    hub = Hub(server)
    try:
        for step, folder in _checkpoints(root):
            rev = f"step{step}"
            hub.commits[("org/tiny", rev)] = server.push("org/tiny", folder_files(folder), branch=rev)
            hub.folders[("org/tiny", rev)] = str(folder)
        server.point("org/tiny", "main", hub.commits[("org/tiny", "step400")])
        hub.commits[("org/tiny", "main")] = hub.commits[("org/tiny", "step400")]
        server.tag("org/tiny", "v1", hub.commits[("org/tiny", "step200")])

        bos = Path(H.model_dir("llama"))
        hub.commits[("org/tiny-bos", "main")] = server.push("org/tiny-bos", folder_files(bos))
        hub.folders[("org/tiny-bos", "main")] = str(bos)

        folder, gguf_path = _gguf_model(root)
        hub.commits[("org/tiny-gguf", "main")] = server.push(
            "org/tiny-gguf", {"tiny.gguf": gguf_path.read_bytes(), "README.md": b"A tiny GGUF.\n"})
        hub.folders[("org/tiny-gguf", "main")] = str(folder)

        base = folder_files(Path(hub.folders[("org/tiny", "step100")]))
        server.push("org/encoder", _encoder_files(root, "bert"))
        server.push("org/distil", _encoder_files(root, "distilbert"))
        server.push("org/custom", _custom_code_files(base))
        for repo, access in (("org/gated", "gated"), ("org/private", "private")):
            server.push(repo, base)
            server.set_access(repo, access)
    except BaseException:
        server.close()
        raise
    return hub


def fill_cache(hub: Hub, cache_dir: Path, items) -> None:
    """`snapshot_download` each (repo, revision[, allow_patterns]) from the hub into `cache_dir`."""
    from huggingface_hub import snapshot_download

    for item in items:
        repo, revision, *patterns = item
        snapshot_download(repo, revision=revision, cache_dir=str(cache_dir), endpoint=hub.url,
                          allow_patterns=patterns or None)
