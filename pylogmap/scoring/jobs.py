"""One scoring job: load one model at one revision, score it, time it, release it.

A `ScoreJob` is everything a worker needs besides the texts; `run_job` turns it into a `JobResult`
(picklable: numpy arrays and plain dicts, so a Ray worker can send it back). `run_job` never raises
(except KeyboardInterrupt): a failure becomes a failed result, so one bad model never stops a run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from pylogmap import __version__
from pylogmap.errors import PylogmapError
from pylogmap.scoring.batching import default_batch_tokens
from pylogmap.scoring.forward import score_texts
from pylogmap.scoring.models import load_model
from pylogmap.scoring.plausibility import check_scores
from pylogmap.scoring.tokenize import TokenCache, adds_bos, texts_fingerprint
from pylogmap.store import step_of


@dataclass(frozen=True)
class ScoreJob:
    """One model (at one revision) to score: everything a worker needs besides the texts.

    `spec` is what is loaded (hub id, folder, .gguf file); `name` the row's name (default: `spec`;
    the driver names local models by their folder, `names.row_names`).
    """

    spec: str
    revision: str = ""
    name: str = ""
    dtype: str = "auto"
    device: str = "auto"
    batch_tokens: int | None = None  # None: the device's default (batching.BATCH_TOKENS)
    layers: Any = None  # None, "all" or a tuple of ints (layers.job_layers)
    save_token_logprobs: bool = False
    trust_remote_code: bool = False
    progress: bool = True

    @property
    def row_name(self) -> str:
        return self.name or self.spec

    @property
    def label(self) -> str:
        return f"{self.row_name}@{self.revision}" if self.revision else self.row_name


@dataclass
class JobResult:
    """What a job sends back to the driver (picklable: numpy arrays and plain dicts)."""

    job: ScoreJob
    error: str | None = None
    layers: list[int] | None = None
    loglik: np.ndarray | None = None  # [rows, n_texts] float64
    ntokens: np.ndarray | None = None
    truncated: np.ndarray | None = None
    token_logprobs: list[list[np.ndarray]] | None = None
    columns: dict = field(default_factory=dict)  # /models columns (dtype, architecture, ...)
    meta: dict = field(default_factory=dict)  # extra JSON metadata
    wall_time_s: float = math.nan
    tokens_per_s: float = math.nan

    @property
    def ok(self) -> bool:
        return self.error is None

    def keys(self) -> list[tuple[str, str, int]]:
        """Row keys of this result. A lens job over "all" layers that failed before its depth was
        known is recorded under layer 0 (see `driver._all_layers_done`)."""
        if self.layers is not None:
            layers = list(self.layers)
        elif self.job.layers is None:
            layers = [-1]
        elif isinstance(self.job.layers, str):
            layers = [0]
        else:
            layers = list(dict.fromkeys(self.job.layers))
        return [(self.job.row_name, self.job.revision, layer) for layer in layers]


def job_keys(job: ScoreJob) -> list[tuple[str, str, int]] | None:
    """Row keys a job will produce, when they are known before loading the model."""
    if job.layers is None:
        return [(job.row_name, job.revision, -1)]
    if isinstance(job.layers, str):
        return None  # "all": depends on the model's depth
    return [(job.row_name, job.revision, int(layer)) for layer in job.layers]


def run_job(job: ScoreJob, texts: Sequence[str], cache: TokenCache | None = None,
            texts_key: str | None = None) -> JobResult:
    """Load, score and release one model. Never raises (except KeyboardInterrupt): a failure is
    returned as a `JobResult` with its `error`, so the run goes on with the next model."""
    cache = cache if cache is not None else TokenCache()
    texts_key = texts_key or texts_fingerprint(texts)
    start = time.perf_counter()
    result = JobResult(job=job)
    result.columns["step"] = step_of(job.revision)
    loaded = None
    try:
        loaded = load_model(job.spec, revision=job.revision or None, dtype=job.dtype, device=job.device,
                            trust_remote_code=job.trust_remote_code)
        info = loaded.info
        result.columns.update(
            dtype=info.dtype, architecture=info.architecture, n_params=info.n_params,
            tokenizer=info.tokenizer_hash, max_length=info.max_length,
        )
        result.meta.update(info.as_meta())
        result.meta.update(batch_tokens=job.batch_tokens or default_batch_tokens(loaded.device),
                           adds_bos=adds_bos(loaded.tokenizer), versions=_versions())
        ids = cache.get(loaded.tokenizer, info.tokenizer_hash, texts, texts_key, max_tokens=info.max_length)
        scores = score_texts(loaded, ids, batch_tokens=job.batch_tokens, layers=job.layers,
                             save_token_logprobs=job.save_token_logprobs, progress=job.progress,
                             desc=job.label)
        check_scores(texts, ids, scores.loglik, loaded.tokenizer)
        result.layers = scores.layers
        result.loglik = scores.loglik[None] if scores.layers is None else scores.loglik
        result.ntokens = scores.ntokens
        result.truncated = scores.truncated
        result.token_logprobs = scores.token_logprobs
        result.tokens_per_s = scores.tokens_per_s
    except KeyboardInterrupt:
        raise
    except PylogmapError as err:
        result.error = str(err)
    except Exception as err:  # noqa: BLE001 - any model-specific failure must not stop the run
        result.error = f"{type(err).__name__}: {err}".strip()
    finally:
        if loaded is not None:
            loaded.release()
    result.wall_time_s = time.perf_counter() - start
    return result


def _versions() -> dict:
    """The versions recorded with every row (the model is loaded, so torch already is)."""
    import torch
    import transformers

    return {"pylogmap": __version__, "torch": torch.__version__, "transformers": transformers.__version__}
