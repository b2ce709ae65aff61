"""Scoring: load causal LMs, tokenize, batch by length and run the forward pass into a map file.

May import: torch, transformers, `pylogmap.kernels`, `pylogmap.store`, `pylogmap.texts`, `pylogmap.errors`.
"""

from pylogmap.scoring.engine import (
    JobResult,
    ScoreJob,
    ScoreResult,
    ScoreSummary,
    ScoringError,
    default_batch_tokens,
    default_head_budget,
    expand_revisions,
    make_batches,
    resolve_layers,
    run_job,
    score_models,
    score_texts,
    tokenize_texts,
)
from pylogmap.scoring.executors import LocalExecutor, RayExecutor, make_executor
from pylogmap.scoring.models import LoadedModel, load_model, prepare

__all__ = [
    "JobResult", "LoadedModel", "LocalExecutor", "RayExecutor", "ScoreJob", "ScoreResult", "ScoreSummary",
    "ScoringError", "default_batch_tokens", "default_head_budget", "expand_revisions", "load_model",
    "make_batches", "make_executor", "prepare", "resolve_layers", "run_job", "score_models", "score_texts",
    "tokenize_texts",
]
