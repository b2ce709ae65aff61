"""The families (colour classes) of a map: a model's default family, and the colours they are drawn in.

``default_family(name, architecture)`` assigns one of the colour classes of the map paper's
figure (method.md section 4): llama-1, llama-2, llama-3, mistral, gpt_neox, gptj, gemma, opt,
bloom, falcon, deepseek, others. The rules look at the model name first (fine-tunes keep their
base model's name in most hub ids: ``...Llama-2-7b-chat...``, ``...pythia-410m-deduped...``),
then at the architecture class recorded when scoring (``GPTNeoXForCausalLM`` ...). Names that
say nothing about the base and a ``LlamaForCausalLM`` architecture cannot be told apart between
Llama generations and fall in ``others``; fix such rows with ``pylogmap annotate`` and a CSV
with a ``family`` column.

The colours are the map's, shared by the viewer and the figure (``pylogmap plot``) so that a map
reads the same in both: the 12 published classes get fixed, distinct colours
(``FAMILY_COLORS``); any other category gets the next colour of a qualitative palette in legend
order (``category_colors``). The legend order is ``family_order`` for the family column (the
published classes first) and ``order_by_count`` for any other column.

numpy only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

FAMILIES = (
    "llama-1", "llama-2", "llama-3", "mistral", "gpt_neox", "gptj", "gemma",
    "opt", "bloom", "falcon", "deepseek", "others",
)

FAMILY_COLORS = {
    "llama-1": "#1f77b4",  # blue
    "llama-2": "#ff7f0e",  # orange
    "llama-3": "#2ca02c",  # green
    "mistral": "#d62728",  # red
    "gpt_neox": "#9467bd",  # purple
    "gptj": "#8c564b",  # brown
    "gemma": "#e377c2",  # pink
    "opt": "#bcbd22",  # olive
    "bloom": "#17becf",  # cyan
    "falcon": "#1a237e",  # navy
    "deepseek": "#f2b701",  # gold
    "others": "#a6a6a6",  # grey
}

# For categories outside the published classes (user annotations): Tableau 20 minus the above.
EXTRA_COLORS = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
    "#9c755f", "#86bcb6", "#d37295", "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#499894",
    "#fabfd2", "#d4a6c8", "#79706e", "#f1ce63",
)

# A legend shows at most this many categories; the rarer ones are merged into OTHER_CATEGORY.
MAX_LEGEND_CATEGORIES = 24
OTHER_CATEGORY = "(other categories)"

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


def category_colors(categories: list[str]) -> dict[str, str]:
    """A hex colour per category, given in legend order: fixed for the published families, grey
    for unknown ones, the qualitative palette in order for the rest."""
    out: dict[str, str] = {}
    extra = 0
    for cat in categories:
        if cat in FAMILY_COLORS:
            out[cat] = FAMILY_COLORS[cat]
        elif cat in ("", "unknown", "other", "none"):
            out[cat] = FAMILY_COLORS["others"]
        else:
            out[cat] = EXTRA_COLORS[extra % len(EXTRA_COLORS)]
            extra += 1
    return out


def order_by_count(values) -> list[str]:
    """The categories of a column by decreasing count, ties by name."""
    names, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
    return [str(n) for _, n in sorted(zip(-counts, names))]


def family_order(values) -> list[str]:
    """The families present in legend order: the published classes first (in their order), then
    the others by count, ``others`` last."""
    names, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
    count = dict(zip(names, counts))
    published = [f for f in FAMILIES if f in count and f != "others"]
    rest = sorted((f for f in count if f not in FAMILIES), key=lambda f: (-count[f], f))
    tail = ["others"] if "others" in count else []
    return published + rest + tail
