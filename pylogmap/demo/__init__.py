"""The offline demo: a zoo of tiny causal LMs trained here, scored, mapped, reported and shown.

May import everything below it (scoring, mapping, analysis, viewer); torch and transformers lazily.

One job per module: `corpus` (the offline text in three slices), `tokenizer` (BPE, BOS and no-BOS),
`config` (the zoo's sizes), `architectures` (GPT-2 / Llama / GPT-NeoX models), `plan` (the runs),
`training` (one run), `runtime` (torch threads, quiet transformers), `workers` (runs in worker
processes), `cache` (saved models: fingerprints, atomic saves), `zoo` (`build_zoo`), `state` (which
map file the demo may replace), `report` (what the map shows) and `run` (`run_demo`, the stages).
"""

from pylogmap.demo.architectures import ARCHITECTURES, make_model
from pylogmap.demo.config import ZooConfig
from pylogmap.demo.corpus import Corpus, Document, load_corpus, shakespeare_dir
from pylogmap.demo.plan import RunSpec, plan_runs
from pylogmap.demo.report import build_report, format_report
from pylogmap.demo.run import DemoResult, run_demo
from pylogmap.demo.runtime import quiet_transformers, torch_threads
from pylogmap.demo.tokenizer import BOS_TOKEN, EOS_TOKEN, train_bpe, wrap_tokenizer
from pylogmap.demo.training import token_stream, train_run
from pylogmap.demo.zoo import Zoo, ZooModel, build_zoo, smollm2_gguf

__all__ = [
    "ARCHITECTURES", "BOS_TOKEN", "Corpus", "DemoResult", "Document", "EOS_TOKEN", "RunSpec", "Zoo", "ZooConfig",
    "ZooModel", "build_report", "build_zoo", "format_report", "load_corpus", "make_model", "plan_runs",
    "quiet_transformers", "run_demo", "shakespeare_dir", "smollm2_gguf", "token_stream", "torch_threads",
    "train_bpe", "train_run", "wrap_tokenizer",
]
