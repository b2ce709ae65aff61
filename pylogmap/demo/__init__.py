"""The offline demo: a zoo of tiny causal LMs trained here, scored, mapped, reported and drawn.

May import everything below it (scoring, mapping, analysis, viewer); torch and transformers lazily.

One job per module: `corpus` (the offline text in three slices), `tokenizer` (BPE, BOS and no-BOS),
`config` (the zoo's sizes), `architectures` (GPT-2 / Llama / GPT-NeoX models), `plan` (the runs
and their lineages), `training` (one run), `runtime` (torch threads, quiet transformers),
`workers` (runs in worker processes), `cache` (saved models: fingerprints, atomic saves), `zoo`
(`build_zoo`), `state` (which map file the demo may replace), `report` (what the map shows, and
whether the method's claims hold on it) and `run` (`run_demo`, the stages).

Names are resolved on first use (as in `pylogmap.analysis`), so that `pylogmap demo --help`
imports neither the store nor the scorer.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ARCHITECTURES": "architectures",
    "make_model": "architectures",
    "ZooConfig": "config",
    "Corpus": "corpus",
    "Document": "corpus",
    "load_corpus": "corpus",
    "shakespeare_dir": "corpus",
    "RunSpec": "plan",
    "plan_runs": "plan",
    "build_report": "report",
    "format_report": "report",
    "DemoResult": "run",
    "run_demo": "run",
    "quiet_transformers": "runtime",
    "torch_threads": "runtime",
    "BOS_TOKEN": "tokenizer",
    "EOS_TOKEN": "tokenizer",
    "train_bpe": "tokenizer",
    "wrap_tokenizer": "tokenizer",
    "token_stream": "training",
    "train_run": "training",
    "Zoo": "zoo",
    "ZooModel": "zoo",
    "build_zoo": "zoo",
    "smollm2_gguf": "zoo",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pylogmap.demo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pylogmap.demo.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
