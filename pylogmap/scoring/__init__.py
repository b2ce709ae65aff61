"""Scoring: load causal LMs, tokenize, batch by length and run the forward pass into a map file.

May import: torch, transformers and ray (inside functions), `pylogmap.kernels`, `pylogmap.store`, `pylogmap.texts`, `pylogmap.errors`.
"""

from pylogmap.scoring.batching import BATCH_TOKENS, default_batch_tokens, make_batches
from pylogmap.scoring.driver import score_models
from pylogmap.scoring.executors import EXECUTORS, LocalExecutor, make_executor
from pylogmap.scoring.forward import HEAD_BUDGET, ScoreResult, ScoringError, default_head_budget, score_texts
from pylogmap.scoring.heads import HeadSpec
from pylogmap.scoring.hub import resolve_commit
from pylogmap.scoring.jobs import JobResult, ScoreJob, run_job
from pylogmap.scoring.layers import resolve_layers
from pylogmap.scoring.models import DEVICES, DTYPES, LoadedModel, ModelInfo, load_model, prepare
from pylogmap.scoring.names import is_local, local_path, row_names, row_names_in
from pylogmap.scoring.plausibility import ImplausibleScores
from pylogmap.scoring.ray_executor import RayExecutor
from pylogmap.scoring.revisions import expand_revisions
from pylogmap.scoring.shards import Shard, parse_shard, shard_of
from pylogmap.scoring.specs import model_revisions, read_model_list, split_revision
from pylogmap.scoring.summary import ScoreSummary
from pylogmap.scoring.tokenize import TokenCache, tokenize_texts, tokenizer_hash

__all__ = [
    "BATCH_TOKENS", "DEVICES", "DTYPES", "EXECUTORS", "HEAD_BUDGET", "HeadSpec", "ImplausibleScores", "JobResult",
    "LoadedModel", "LocalExecutor", "ModelInfo", "RayExecutor", "ScoreJob", "ScoreResult", "ScoreSummary",
    "ScoringError", "Shard", "TokenCache", "default_batch_tokens", "default_head_budget", "expand_revisions", "is_local",
    "load_model", "local_path", "make_batches", "make_executor", "model_revisions", "parse_shard", "prepare",
    "read_model_list", "resolve_commit", "resolve_layers", "row_names", "row_names_in", "run_job", "score_models",
    "score_texts", "shard_of", "split_revision", "tokenize_texts", "tokenizer_hash",
]
