"""Score causal language models on a text set: the entries `L[i,k] = log p_i(x_k)` (method.md 2).

The pieces, bottom-up:

- `tokenize_texts`: the model's own tokenizer with its default special tokens
  (`add_special_tokens=True`, so a BOS is prepended exactly where that tokenizer adds one), no chat
  template, no truncation. `TokenCache` keeps the ids per tokenizer hash, so models that share a
  tokenizer share the work.
- `make_batches`: texts sorted by length (longest first) and cut into buckets whose *padded* size
  (`n_texts x longest`) stays under `batch_tokens`.
- `score_texts`: per batch, right padding plus an attention mask, one call of the model *body* (the
  final hidden states only: no `[batch, seq, vocab]` logits), then the hidden states of the real
  positions `0..T-2` and the targets `1..T-1` go to `pylogmap.head.head_logprobs`, which applies the
  LM head block by block through the fused kernel. Sums per text are taken in float64. The first
  token is never scored; a text of fewer than 2 tokens has `loglik 0` and `ntokens 0`. Texts longer
  than the model's context are cut to it and flagged `truncated`.
  Logit lens (`layers`): one forward pass with all hidden states; layer `l` is scored through
  `final_norm(h_l)` and the same head, the last layer through the model's own final hidden state,
  so it equals normal scoring exactly.
  Non-finite log-probabilities fail the model. GPU out-of-memory halves the batch and retries.
- `run_job`: load one model (one revision), score it, time it; never raises (a failure becomes a
  failed result), so one bad model never stops a run.
- `score_models`: the engine behind `pylogmap score`: opens the map file's single writer, skips
  rows already finished (resume), runs one job per (model, revision) through an executor, records
  each result as it arrives, and prints a summary table.
"""

from __future__ import annotations

import math
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from pylogmap.errors import PylogmapError
from pylogmap.store.steps import step_of

# Tokens (counting padding) per batch. A GPU wants big batches to fill its matrix units; on a CPU
# batches past a few thousand tokens get slower (the attention and MLP intermediates of one batch
# fall out of the caches): measured on SmolLM2-135M, 2048 tokens ran ~2.8x faster than 16384.
BATCH_TOKENS = {"cuda": 16384, "cpu": 2048}
DEFAULT_BATCH_TOKENS = BATCH_TOKENS["cuda"]  # kept for callers of the first contract
# Bytes of logits one head block may hold: on a GPU large blocks keep the matmul efficient; on a CPU
# a few hundred rows already run the GEMM at full speed and smaller blocks stay in cache.
HEAD_BUDGET = {"cuda": 256 * 2**20, "cpu": 128 * 2**20}
LayersArg = None | str | Sequence[int]


class ScoringError(PylogmapError):
    """A model that cannot be scored (non-finite values, out of memory on a single text)."""


# --------------------------------------------------------------------------- tokenization

def tokenize_texts(tokenizer, texts: Sequence[str], *, chunk: int = 512) -> list[np.ndarray]:
    """Token ids of every text, untruncated, with the tokenizer's default special tokens."""
    saved = getattr(tokenizer, "model_max_length", None)
    try:
        # we truncate per model ourselves; silence the "longer than the maximum" warning
        tokenizer.model_max_length = sys.maxsize
        out: list[np.ndarray] = []
        for start in range(0, len(texts), chunk):
            enc = tokenizer(
                list(texts[start:start + chunk]),
                add_special_tokens=True,
                truncation=False,
                return_attention_mask=False,
            )["input_ids"]
            out.extend(np.asarray(ids, dtype=np.int64) for ids in enc)
        return out
    finally:
        if saved is not None:
            tokenizer.model_max_length = saved


class TokenCache:
    """Token ids per (tokenizer hash, text set): computed once, reused by every model sharing them."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], list[np.ndarray]] = {}

    def get(self, tokenizer, tok_hash: str, texts: Sequence[str], texts_key: str) -> list[np.ndarray]:
        key = (tok_hash, texts_key)
        if key not in self._ids:
            self._ids[key] = tokenize_texts(tokenizer, texts)
        return self._ids[key]

    def __len__(self) -> int:
        return len(self._ids)


def texts_fingerprint(texts: Sequence[str]) -> str:
    """A cheap identity of a list of texts (for the token cache)."""
    import hashlib

    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


# --------------------------------------------------------------------------- batching

def make_batches(lengths: np.ndarray, batch_tokens: int) -> list[np.ndarray]:
    """Indices of texts with >= 2 tokens, longest first, in buckets of padded size <= batch_tokens.

    A text longer than the budget gets a batch of its own. Longest-first puts an out-of-memory
    failure (if any) at the start of a run, and keeps padding small inside each bucket.
    """
    if batch_tokens < 1:
        raise PylogmapError(f"batch_tokens must be positive, got {batch_tokens}.")
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] >= 2]
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])
        size = max(1, batch_tokens // longest)
        batches.append(order[start:start + size])
        start += size
    return batches


# --------------------------------------------------------------------------- layers

def resolve_layers(layers: LayersArg, n_layers: int) -> list[int] | None:
    """None (the model's own output) or the list of hidden-state indices 0..n_layers to score."""
    if layers is None:
        return None
    if isinstance(layers, str):
        if layers.strip().lower() == "all":
            return list(range(n_layers + 1))
        layers = parse_int_list(layers)
    out = []
    for layer in layers:
        layer = int(layer)
        if layer < 0:
            layer += n_layers + 1
        if not 0 <= layer <= n_layers:
            raise PylogmapError(
                f"layer {layer} does not exist: this model has hidden states 0 (embeddings) to "
                f"{n_layers} (the last layer); pass layers in that range or 'all'."
            )
        if layer not in out:
            out.append(layer)
    return out


def parse_int_list(text: str) -> list[int]:
    """'0,4,8' or '0:12:4' (inclusive range) or a mix: '0,2:6:2' -> [0, 2, 4, 6]."""
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            if ":" in part:
                bits = [int(b) for b in part.split(":")]
                start, stop, step = (bits + [1])[:3] if len(bits) == 2 else bits
                if step <= 0:
                    raise ValueError
                out.extend(range(start, stop + 1, step))
            else:
                out.append(int(part))
        except ValueError:
            raise PylogmapError(
                f"cannot read {part!r} as a layer list; use integers like '0,4,8', 'all', or an "
                "inclusive range 'START:STOP[:STEP]'."
            ) from None
    return out


# --------------------------------------------------------------------------- scoring one model

@dataclass
class ScoreResult:
    """Scores of one model on a text set.

    `loglik` is float64 `[n_texts]`, or `[len(layers), n_texts]` with the logit lens; `ntokens`
    (scored tokens, T-1) and `truncated` are per text. `token_logprobs` (optional) holds, per row,
    one float32 array of the T-1 scored tokens' log-probabilities per text.
    """

    loglik: np.ndarray
    ntokens: np.ndarray
    truncated: np.ndarray
    layers: list[int] | None = None
    token_logprobs: list[list[np.ndarray]] | None = None
    seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        total = float(self.ntokens.sum())
        return total / self.seconds if self.seconds > 0 else float("nan")


def default_batch_tokens(device) -> int:
    """Batch token budget for a device ("cpu", "cuda" or a torch.device)."""
    kind = getattr(device, "type", str(device).split(":")[0])
    return BATCH_TOKENS.get(kind, BATCH_TOKENS["cpu"])


def default_head_budget(device) -> int:
    """Head block budget in bytes for a device ("cpu", "cuda" or a torch.device)."""
    kind = getattr(device, "type", str(device).split(":")[0])
    return HEAD_BUDGET.get(kind, HEAD_BUDGET["cpu"])


def _is_oom(err: BaseException) -> bool:
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


class _BatchScorer:
    """Runs batches of one model; knows the head path, the lens layers and the OOM policy."""

    def __init__(self, loaded, layers: list[int] | None, *, keep_tokens: bool, head_budget: int):
        import torch

        from pylogmap.kernels import head_logprobs

        self.torch = torch
        self.head_logprobs = head_logprobs
        self.loaded = loaded
        self.layers = layers
        self.keep_tokens = keep_tokens
        self.head_budget = head_budget
        self.device = loaded.device
        self.n_rows = 1 if layers is None else len(layers)
        self.oom_limit: int | None = None  # padded size known to run out of memory
        if layers is not None and (loaded.head is None or not loaded.final_norm):
            why = loaded.info.head_note if loaded.head is None else "its final norm was not found"
            raise ScoringError(
                f"the logit lens needs the model's head and final norm, but for "
                f"{loaded.info.architecture} {why}; score it without --layers."
            )

    def run(self, batch: np.ndarray, ids: list[np.ndarray]) -> list[tuple[np.ndarray, list]]:
        """Score one batch, splitting it on out-of-memory; returns [(sums [rows, b], tokens)] parts."""
        padded = len(batch) * len(ids[batch[0]])
        if self.oom_limit is not None and padded >= self.oom_limit and len(batch) > 1:
            return self._split(batch, ids)
        try:
            return [(batch, *self._forward(batch, ids))]
        except Exception as err:  # noqa: BLE001 - only OOM is handled, the rest re-raised
            if not _is_oom(err):
                raise
            message = str(err).splitlines()[0]
        self._free()
        if len(batch) == 1:
            raise ScoringError(
                f"out of memory on a single text of {len(ids[batch[0]])} tokens ({message}); use a GPU "
                "with more memory, a smaller --dtype, or a text set of shorter texts."
            )
        self.oom_limit = padded if self.oom_limit is None else min(self.oom_limit, padded)
        return self._split(batch, ids)

    def _split(self, batch, ids):
        half = len(batch) // 2
        return self.run(batch[:half], ids) + self.run(batch[half:], ids)

    def _free(self) -> None:
        import gc

        gc.collect()
        if self.torch.cuda.is_available():
            self.torch.cuda.empty_cache()

    def _forward(self, batch: np.ndarray, ids: list[np.ndarray]):
        torch = self.torch
        lengths = np.array([len(ids[i]) for i in batch])
        width = int(lengths.max())
        tokens = np.zeros((len(batch), width), dtype=np.int64)
        for row, i in enumerate(batch):
            tokens[row, : lengths[row]] = ids[i]
        input_ids = torch.from_numpy(tokens).to(self.device)
        lengths_t = torch.from_numpy(lengths).to(self.device)
        positions = torch.arange(width, device=self.device)
        attention_mask = (positions[None, :] < lengths_t[:, None]).long()
        # real positions 0..T-2 predict targets 1..T-1
        select = positions[None, : width - 1] < (lengths_t - 1)[:, None]
        targets = input_ids[:, 1:][select]
        owner = torch.arange(len(batch), device=self.device)[:, None].expand(-1, width - 1)[select]

        rows = []
        with torch.inference_mode():
            if self.loaded.head is None:
                logits = self.loaded.forward_logits(input_ids, attention_mask)
                rows.append(self._model_logits(logits[:, :-1][select], targets))
                del logits
            elif self.layers is None:
                hidden = self.loaded.forward_hidden(input_ids, attention_mask)
                rows.append(self._head(hidden[:, :-1][select], targets))
            else:
                last, states = self.loaded.forward_hidden(input_ids, attention_mask, all_layers=True)
                n_layers = len(states) - 1
                for layer in self.layers:
                    if layer == n_layers:
                        h = last  # the model's own final hidden state: equals normal scoring
                    else:
                        h = self.loaded.lens(states[layer])
                    rows.append(self._head(h[:, :-1][select], targets))
                del states, last

            sums = np.zeros((len(rows), len(batch)), dtype=np.float64)
            per_token = [] if self.keep_tokens else None
            counts = (lengths - 1).tolist()
            owner_cpu = owner.cpu()
            for r, logp in enumerate(rows):
                if not bool(torch.isfinite(logp).all()):
                    bad = int(batch[int(owner_cpu[~torch.isfinite(logp).cpu()][0])])
                    raise ScoringError(
                        f"non-finite log-probability (NaN or inf) on text {bad}"
                        + (f" at lens layer {self.layers[r]}" if self.layers is not None else "")
                        + "; the model's weights or dtype overflow (try --dtype fp32 or bf16)."
                    )
                logp64 = logp.double().cpu()
                sums[r] = torch.zeros(len(batch), dtype=torch.float64).index_add_(0, owner_cpu, logp64).numpy()
                if per_token is not None:
                    per_token.append([a.float().numpy() for a in torch.split(logp.cpu(), counts)])
        return sums, per_token

    def _head(self, hidden, targets):
        head = self.loaded.head
        return self.head_logprobs(
            hidden,
            head.weight,
            targets,
            bias=head.bias,
            softcap=head.softcap,
            scale=head.scale,
            budget_bytes=self.head_budget,
        )

    def _model_logits(self, logits, targets):
        from pylogmap.kernels import token_logprobs

        out = []
        rows_per_block = max(1, self.head_budget // max(1, logits.shape[-1] * 4))
        for start in range(0, logits.shape[0], rows_per_block):
            out.append(token_logprobs(logits[start:start + rows_per_block], targets[start:start + rows_per_block]))
        return self.torch.cat(out) if out else self.torch.zeros(0, device=logits.device)


def score_texts(
    loaded,
    token_ids: Sequence[np.ndarray],
    *,
    batch_tokens: int | None = None,
    layers: LayersArg = None,
    save_token_logprobs: bool = False,
    head_budget: int | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> ScoreResult:
    """Score one loaded model on pre-tokenized (untruncated) texts; see the module docstring."""
    info = loaded.info
    layer_list = resolve_layers(layers, info.n_layers)
    head_budget = head_budget or default_head_budget(loaded.device)
    batch_tokens = batch_tokens or default_batch_tokens(loaded.device)
    max_len = info.max_length
    full = np.array([len(t) for t in token_ids], dtype=np.int64)
    truncated = full > max_len
    ids = [t[:max_len] for t in token_ids]
    lengths = np.minimum(full, max_len)
    ntokens = np.where(lengths >= 2, lengths - 1, 0).astype(np.int32)

    if loaded.head is None:
        # the model's own logits: keep one batch's [tokens, V] logits under the head budget
        itemsize = 2 if info.dtype in ("bfloat16", "float16") else 4
        batch_tokens = max(1, min(batch_tokens, head_budget // max(1, info.vocab_size * itemsize)))
    batches = make_batches(lengths, batch_tokens)

    scorer = _BatchScorer(loaded, layer_list, keep_tokens=save_token_logprobs, head_budget=head_budget)
    n_rows = scorer.n_rows
    loglik = np.zeros((n_rows, len(ids)), dtype=np.float64)
    per_token: list[list[np.ndarray]] | None = None
    if save_token_logprobs:
        per_token = [[np.zeros(0, np.float32) for _ in ids] for _ in range(n_rows)]

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(ntokens.sum()), unit="tok", unit_scale=True, desc=desc, leave=True,
                   dynamic_ncols=True)
    start = time.perf_counter()
    done_texts = int((lengths < 2).sum())
    try:
        for batch in batches:
            for part, sums, tokens in scorer.run(batch, ids):
                loglik[:, part] = sums
                if per_token is not None:
                    for r in range(n_rows):
                        for j, i in enumerate(part):
                            per_token[r][i] = tokens[r][j]
            done_texts += len(batch)
            if bar is not None:
                bar.update(int(ntokens[batch].sum()))
                bar.set_postfix_str(f"texts {done_texts}/{len(ids)}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    return ScoreResult(
        loglik=loglik[0] if layer_list is None else loglik,
        ntokens=ntokens,
        truncated=truncated,
        layers=layer_list,
        token_logprobs=per_token,
        seconds=seconds,
    )


# --------------------------------------------------------------------------- jobs

_RANGE_RE = re.compile(r"^(\D*?)(\d+):(\D*?)(\d+):(\d+)$")


def expand_revisions(text: str | Sequence[str] | None) -> list[str]:
    """'step1000,step2000' or the inclusive range 'step1000:step10000:1000' (or a mix) -> names."""
    if text is None:
        return []
    parts = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if ":" in part:
            match = _RANGE_RE.match(part)
            if not match or match.group(1) != match.group(3) or int(match.group(5)) <= 0:
                raise PylogmapError(
                    f"cannot read the revision range {part!r}; write PREFIX<start>:PREFIX<stop>:<step> "
                    "with the same prefix on both ends, e.g. 'step1000:step10000:1000' (inclusive)."
                )
            prefix, start, stop, step = match.group(1), int(match.group(2)), int(match.group(4)), int(match.group(5))
            if stop < start:
                raise PylogmapError(f"revision range {part!r} ends before it starts.")
            out.extend(f"{prefix}{n}" for n in range(start, stop + 1, step))
        else:
            out.append(part)
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class ScoreJob:
    """One model (at one revision) to score: everything a worker needs besides the texts."""

    spec: str
    revision: str = ""
    dtype: str = "auto"
    device: str = "auto"
    batch_tokens: int | None = None  # None: the device's default (BATCH_TOKENS)
    layers: Any = None  # None, "all" or a tuple of ints
    save_token_logprobs: bool = False
    trust_remote_code: bool = False
    progress: bool = True

    @property
    def label(self) -> str:
        return f"{self.spec}@{self.revision}" if self.revision else self.spec


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
        known is recorded under layer 0 (see `_all_layers_done`)."""
        if self.layers is not None:
            layers = list(self.layers)
        elif self.job.layers is None:
            layers = [-1]
        elif isinstance(self.job.layers, str):
            layers = [0]
        else:
            layers = list(dict.fromkeys(self.job.layers))
        return [(self.job.spec, self.job.revision, layer) for layer in layers]


def job_keys(job: ScoreJob) -> list[tuple[str, str, int]] | None:
    """Row keys a job will produce, when they are known before loading the model."""
    if job.layers is None:
        return [(job.spec, job.revision, -1)]
    if isinstance(job.layers, str):
        return None  # "all": depends on the model's depth
    return [(job.spec, job.revision, int(layer)) for layer in job.layers]


def run_job(job: ScoreJob, texts: Sequence[str], cache: TokenCache | None = None,
            texts_key: str | None = None) -> JobResult:
    """Load, score and release one model. Never raises (except KeyboardInterrupt): a failure is
    returned as a `JobResult` with its `error`, so the run goes on with the next model."""
    from pylogmap.scoring.models import load_model

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
                           adds_bos=_adds_bos(loaded.tokenizer), versions=_versions())
        ids = cache.get(loaded.tokenizer, info.tokenizer_hash, texts, texts_key)
        scores = score_texts(loaded, ids, batch_tokens=job.batch_tokens, layers=job.layers,
                             save_token_logprobs=job.save_token_logprobs, progress=job.progress,
                             desc=job.label)
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


def _adds_bos(tokenizer) -> bool:
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == bos


def _versions() -> dict:
    import torch
    import transformers

    from pylogmap import __version__

    return {"pylogmap": __version__, "torch": torch.__version__, "transformers": transformers.__version__}


# --------------------------------------------------------------------------- the engine

@dataclass
class RowSummary:
    label: str
    status: str  # "ok", "failed", "skipped" (finished in an earlier run)
    tokens_per_s: float = math.nan
    mean_loglik: float = math.nan
    wall_time_s: float = math.nan
    error: str = ""


@dataclass
class ScoreSummary:
    """What `score_models` did: one line per row, plus the path of the map file."""

    path: str
    rows: list[RowSummary] = field(default_factory=list)

    @property
    def failed(self) -> list[RowSummary]:
        return [r for r in self.rows if r.status == "failed"]

    @property
    def scored(self) -> list[RowSummary]:
        return [r for r in self.rows if r.status == "ok"]

    def table(self) -> str:
        header = ("model", "status", "tokens/s", "mean loglik", "wall s")
        lines = [header]
        for r in self.rows:
            lines.append((
                r.label, r.status,
                "" if math.isnan(r.tokens_per_s) else f"{r.tokens_per_s:,.0f}",
                "" if math.isnan(r.mean_loglik) else f"{r.mean_loglik:.3f}",
                "" if math.isnan(r.wall_time_s) else f"{r.wall_time_s:.1f}",
            ))
        widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
        out = []
        for i, line in enumerate(lines):
            out.append("  ".join(cell.ljust(w) if c < 2 else cell.rjust(w)
                                 for c, (cell, w) in enumerate(zip(line, widths))).rstrip())
            if i == 0:
                out.append("  ".join("-" * w for w in widths))
        for r in self.failed:
            out.append(f"failed: {r.label}: {r.error}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()


def _as_textset(texts):
    from pylogmap.texts import TextSet, load_texts

    if isinstance(texts, TextSet):
        return texts
    if isinstance(texts, (str, bytes)) or hasattr(texts, "__fspath__"):
        return load_texts(texts)
    return TextSet.from_texts(list(texts))


def _check_existing(out, texts, force: bool) -> bool:
    """Validate an existing output file before anything is written; True = overwrite it."""
    import os

    from pylogmap.errors import MapFileError
    from pylogmap.store import open_map

    if not os.path.exists(out):
        return False
    try:
        with open_map(out) as mf:
            other = mf.text_hash
    except MapFileError as err:
        raise MapFileError(
            f"{err} Nothing was written; move or delete {str(out)!r}, or choose another output file."
        ) from None
    except OSError as err:
        raise MapFileError(
            f"{str(out)!r} exists but is not a readable HDF5 map file ({err}); nothing was written. "
            "Move or delete it, or choose another output file."
        ) from None
    if other != texts.hash:
        if not force:
            raise MapFileError(
                f"{str(out)!r} was made with another text set (file: {other}, texts given: {texts.hash}); "
                "nothing was written. Score into a new file, use the file's own texts, or pass --force "
                "to replace the file."
            )
        return True
    return False


def score_models(
    texts,
    models: Sequence[str],
    out,
    *,
    revisions: str | Sequence[str] | None = None,
    revision: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    batch_tokens: int | None = None,
    force: bool = False,
    layers: LayersArg = None,
    executor=None,
    progress: bool = True,
    save_token_logprobs: bool = False,
    retry_failed: bool = False,
    trust_remote_code: bool = False,
    commit_interval: float | None = None,
) -> ScoreSummary:
    """Score `models` on `texts` into the map file `out` (created, or resumed).

    `texts`: a `TextSet`, a path `load_texts` reads, or a list of strings. `models`: hub ids, local
    directories or .gguf files; each is scored at `revision` (one) or at every revision of
    `revisions` ('step1000,step2000', 'step1000:step10000:1000', or a list). Rows already finished
    in `out` are skipped (`force` rescores them; `retry_failed` retries failed ones); a file of
    another text set is refused unless `force`, which replaces it. `layers` (None, "all", or a list
    of hidden-state indices) scores the logit lens, one row per layer. Returns a `ScoreSummary`;
    failed models are recorded in the file with their error and do not stop the run.
    """
    from pylogmap.scoring.executors import LocalExecutor
    from pylogmap.store import ScoreWriter, as_key

    texts = _as_textset(texts)
    if len(texts) == 0:
        from pylogmap.errors import TextSetError

        raise TextSetError("the text set is empty; give at least one text.")
    models = [str(m) for m in models]
    if not models:
        raise PylogmapError("no models given; name at least one hub id, directory or .gguf file.")
    if revision and revisions:
        raise PylogmapError("give either one revision or a list of revisions, not both.")
    revs = expand_revisions(revisions) if revisions else [revision or ""]
    if isinstance(layers, str):
        layers = "all" if layers.strip().lower() == "all" else tuple(parse_int_list(layers))
    elif layers is not None:
        layers = tuple(dict.fromkeys(int(x) for x in layers))
    if isinstance(layers, tuple) and (not layers or min(layers) < 0):
        raise PylogmapError(
            f"lens layers must be non-negative hidden-state indices (0 = embeddings), got {list(layers)}; "
            "use 'all' for every layer."
        )
    if batch_tokens is not None and (isinstance(batch_tokens, bool) or int(batch_tokens) < 1):
        raise PylogmapError(f"batch_tokens must be a positive number of tokens, got {batch_tokens!r}.")
    executor = executor or LocalExecutor()

    overwrite = _check_existing(out, texts, force)
    jobs_all = [
        ScoreJob(spec=m, revision=r, dtype=dtype, device=device,
                 batch_tokens=int(batch_tokens) if batch_tokens else None, layers=layers, save_token_logprobs=save_token_logprobs,
                 trust_remote_code=trust_remote_code, progress=progress)
        for m in models for r in revs
    ]
    summary = ScoreSummary(path=str(out))
    with ScoreWriter(out, texts, overwrite=overwrite, commit_interval=commit_interval) as writer:
        jobs = []
        for job in jobs_all:
            keys = job_keys(job)
            if keys is None:
                # "all" layers: unknown before loading; rerun unless every stored row of it is done
                if not force and _all_layers_done(writer, job, retry_failed):
                    summary.rows.append(RowSummary(job.label + "#all", "skipped"))
                    continue
                jobs.append(job)
                continue
            todo = writer.rows_to_do(keys, retry_failed=retry_failed, force=force)
            if todo:
                jobs.append(job)
            else:
                summary.rows.extend(RowSummary(as_key(k).label, "skipped") for k in keys)
        if progress and len(jobs) < len(jobs_all):
            _say(f"{len(jobs_all) - len(jobs)} of {len(jobs_all)} models already scored in {out}; skipped.")
        for result in executor.run(jobs, texts.texts):
            _record(writer, result, summary, force=force, retry_failed=retry_failed)
            if progress and result.error:
                _say(f"failed: {result.job.label}: {result.error}")
    if progress:
        _say("\n" + summary.table())
    return summary


def _all_layers_done(writer, job: ScoreJob, retry_failed: bool) -> bool:
    """For layers="all" (depth unknown before loading): lens rows are recorded from the last layer
    down to layer 0, so a stored layer 0 means the whole job was recorded."""
    status = writer.status((job.spec, job.revision, 0))
    return status == "ok" or (status == "failed" and not retry_failed)


def _record(writer, result: JobResult, summary: ScoreSummary, *, force: bool, retry_failed: bool) -> None:
    from pylogmap.store import as_key

    keys = result.keys()[::-1]  # lens rows from the last layer down to 0 (see _all_layers_done)
    todo = set(writer.rows_to_do(keys, retry_failed=retry_failed, force=force))
    base = dict(result.columns, wall_time_s=result.wall_time_s, tokens_per_s=result.tokens_per_s)
    n_rows = len(keys)
    for back, key in enumerate(keys):
        r = n_rows - 1 - back
        k = as_key(key)
        if k not in todo:
            summary.rows.append(RowSummary(k.label, "skipped"))
            continue
        if result.error is not None:
            writer.record_failure(k, result.error, {**base, **result.meta})
            summary.rows.append(RowSummary(k.label, "failed", wall_time_s=result.wall_time_s,
                                           error=result.error))
            continue
        meta = {**base, **result.meta}
        if result.layers is not None:
            meta["lens"] = True
        writer.record(
            k, result.loglik[r], result.ntokens, result.truncated, meta,
            token_logprobs=result.token_logprobs[r] if result.token_logprobs is not None else None,
        )
        summary.rows.append(RowSummary(k.label, "ok", tokens_per_s=result.tokens_per_s,
                                       mean_loglik=float(np.mean(result.loglik[r])),
                                       wall_time_s=result.wall_time_s))


def _say(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)
