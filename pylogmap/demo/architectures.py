"""The zoo's three model architectures (GPT-2, Llama, GPT-NeoX) and a tiny fresh model of each.

`make_model` builds a randomly initialised transformers model of one architecture at the zoo's
sizes; `ARCHITECTURES` maps the zoo's short names to the transformers class names that the
scorer sees in a model's config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pylogmap.demo.config import ZooConfig
from pylogmap.errors import PylogmapError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ARCHITECTURES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "neox": "GPTNeoXForCausalLM"}


def make_model(arch: str, config: ZooConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A freshly initialised tiny model of `arch` (call after seeding torch)."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    d, heads, layers = config.d_model, config.n_heads, config.n_layers[arch]
    common = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    if arch == "gpt2":  # learned positions, LayerNorm, GELU MLP, tied embeddings (like GPT-2)
        cfg = GPT2Config(
            n_positions=config.max_positions, n_embd=d, n_layer=layers, n_head=heads,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common,
        )
        return GPT2LMHeadModel(cfg)
    if arch == "llama":  # rotary, RMSNorm, SwiGLU, tied embeddings (like SmolLM2)
        cfg = LlamaConfig(
            hidden_size=d, intermediate_size=int(8 * d / 3) // 8 * 8, num_hidden_layers=layers,
            num_attention_heads=heads, num_key_value_heads=heads // 2, max_position_embeddings=config.max_positions,
            tie_word_embeddings=True, **common,
        )
        return LlamaForCausalLM(cfg)
    if arch == "neox":  # partial rotary, parallel residual, untied head (like Pythia)
        cfg = GPTNeoXConfig(
            hidden_size=d, intermediate_size=4 * d, num_hidden_layers=layers, num_attention_heads=heads,
            max_position_embeddings=config.max_positions, rotary_pct=0.25, use_parallel_residual=True,
            tie_word_embeddings=False, hidden_dropout=0.0, attention_dropout=0.0, **common,
        )
        return GPTNeoXForCausalLM(cfg)
    raise PylogmapError(f"unknown zoo architecture {arch!r}: use one of {', '.join(ARCHITECTURES)}.")
