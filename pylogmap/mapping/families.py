"""The default family (colour class) of a model, from its name and architecture.

``default_family(name, architecture)`` assigns one of the colour classes of the map paper's
figure (method.md section 4): llama-1, llama-2, llama-3, mistral, gpt_neox, gptj, gemma, opt,
bloom, falcon, deepseek, others. The rules look at the model name first (fine-tunes keep their
base model's name in most hub ids: ``...Llama-2-7b-chat...``, ``...pythia-410m-deduped...``),
then at the architecture class recorded when scoring (``GPTNeoXForCausalLM`` ...). Names that
say nothing about the base and a ``LlamaForCausalLM`` architecture cannot be told apart between
Llama generations and fall in ``others``; fix such rows with ``pylogmap annotate`` and a CSV
with a ``family`` column.

stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

FAMILIES = (
    "llama-1", "llama-2", "llama-3", "mistral", "gpt_neox", "gptj", "gemma",
    "opt", "bloom", "falcon", "deepseek", "others",
)

# Name rules, tried in order on the lower-cased name with "_" and " " turned into "-".
_NAME_RULES: tuple[tuple[str, str], ...] = (
    ("deepseek", r"deepseek"),
    ("mistral", r"mistral|mixtral|zephyr-7b|openhermes-2"),
    ("gemma", r"gemma"),
    ("falcon", r"falcon"),
    ("bloom", r"bloom"),
    ("gptj", r"gpt-?j(?![a-z])|gpt4all-j"),
    ("gpt_neox", r"pythia|gpt-?neox|dolly-v2|stablelm-(?:base|tuned)-alpha|oasst-sft-[0-9]-pythia|redpajama-incite"),
    ("opt", r"(?:^|[/-])opt-(?:[0-9.]+[mb]|iml)"),
    # "llama-3" but not "llama-3b" (a size) nor "llama-30b"
    ("llama-3", r"llama-?3(?![0-9]|b|m)"),
    ("llama-2", r"llama-?2(?![0-9]|b|m)|codellama|code-llama|tinyllama|vicuna-[0-9]+b-v1\.5"),
    ("llama-1", r"llama-?1(?![0-9]|b|m)|huggyllama|decapoda|(?<![a-z])llama-(?:7|13|30|33|65)b|vicuna-[0-9]+b-v1\.[0-3]|alpaca-(?:7|13)b"),
)

# Architecture class -> family when the name decides nothing.
_ARCH_RULES: dict[str, str] = {
    "MistralForCausalLM": "mistral",
    "MixtralForCausalLM": "mistral",
    "GPTNeoXForCausalLM": "gpt_neox",
    "GPTJForCausalLM": "gptj",
    "GemmaForCausalLM": "gemma",
    "Gemma2ForCausalLM": "gemma",
    "Gemma3ForCausalLM": "gemma",
    "Gemma3ForConditionalGeneration": "gemma",
    "OPTForCausalLM": "opt",
    "BloomForCausalLM": "bloom",
    "FalconForCausalLM": "falcon",
    "RWForCausalLM": "falcon",
    "DeepseekForCausalLM": "deepseek",
    "DeepseekV2ForCausalLM": "deepseek",
    "DeepseekV3ForCausalLM": "deepseek",
}


def _norm(name: str) -> str:
    return re.sub(r"[_\s]+", "-", str(name).strip().lower())


def default_family(name: str, architecture: str = "") -> str:
    """The colour class of one model from its name and architecture (module docstring)."""
    n = _norm(name)
    for family, pattern in _NAME_RULES:
        if re.search(pattern, n):
            return family
    arch = str(architecture or "").strip()
    if arch in _ARCH_RULES:
        return _ARCH_RULES[arch]
    low = arch.lower()
    for key, family in _ARCH_RULES.items():
        if low and low.startswith(key.lower().replace("forcausallm", "")):
            return family
    return "others"


def default_families(names: Sequence[str], architectures: Sequence[str] | None = None) -> list[str]:
    """default_family for every row."""
    if architectures is None:
        architectures = [""] * len(names)
    return [default_family(n, a) for n, a in zip(names, architectures)]
