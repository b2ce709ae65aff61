"""Score one loaded model on pre-tokenized texts: the entries `L[i,k] = log p_i(x_k)` (method.md 2).

Per batch (`batching.make_batches`): right padding plus an attention mask, one call of the model
*body* (the final hidden states only: no `[batch, seq, vocab]` logits), then the hidden states of
the real positions `0..T-2` and the targets `1..T-1` go to `pylogmap.kernels.head_logprobs`, which
applies the LM head block by block through the fused kernel. Sums per text are taken in float64.
The first token is never scored; a text of fewer than 2 tokens has `loglik 0` and `ntokens 0`.
Texts longer than the model's context are cut to it and flagged `truncated`. Token ids past the
model's embedding fail the model before any forward pass (`plausibility.check_token_ids`).

Logit lens (`layers`): one forward pass with all hidden states; layer `l` is scored through
`final_norm(h_l)` and the same head, the last layer through the model's own final hidden state,
so it equals normal scoring exactly. A model whose head could not be taken apart is scored through
its own logits, on batches whose logits fit the head budget.

Non-finite log-probabilities fail the model. GPU out-of-memory halves the batch and retries.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
from tqdm.auto import tqdm

from pylogmap import kernels
from pylogmap.errors import PylogmapError
from pylogmap.scoring.batching import default_batch_tokens, make_batches
from pylogmap.scoring.layers import LayersArg, resolve_layers
from pylogmap.scoring.plausibility import check_token_ids

if TYPE_CHECKING:
    from pylogmap.scoring.models import LoadedModel

# Bytes of logits one head block may hold: on a GPU large blocks keep the matmul efficient; on a CPU
# a few hundred rows already run the GEMM at full speed and smaller blocks stay in cache.
HEAD_BUDGET = {"cuda": 256 * 2**20, "cpu": 128 * 2**20}


class ScoringError(PylogmapError):
    """A model that cannot be scored (non-finite values, out of memory on a single text)."""


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


def default_head_budget(device) -> int:
    """Head block budget in bytes for a device ("cpu", "cuda" or a torch.device)."""
    kind = getattr(device, "type", str(device).split(":")[0])
    return HEAD_BUDGET.get(kind, HEAD_BUDGET["cpu"])


def score_texts(
    loaded: LoadedModel,
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
    check_token_ids(token_ids, info.n_embeddings, loaded.tokenizer)
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

    scorer = BatchScorer(loaded, layer_list, keep_tokens=save_token_logprobs, head_budget=head_budget)
    n_rows = scorer.n_rows
    loglik = np.zeros((n_rows, len(ids)), dtype=np.float64)
    per_token: list[list[np.ndarray]] | None = None
    if save_token_logprobs:
        per_token = [[np.zeros(0, np.float32) for _ in ids] for _ in range(n_rows)]

    bar = None
    if progress:
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


class BatchScorer:
    """Runs batches of one model; knows the head path, the lens layers and the OOM policy."""

    def __init__(self, loaded: LoadedModel, layers: list[int] | None, *, keep_tokens: bool, head_budget: int):
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

    def run(self, batch: np.ndarray, ids: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, list | None]]:
        """Score one batch, splitting it on out-of-memory; returns [(part, sums [rows, b], tokens)]."""
        padded = len(batch) * len(ids[batch[0]])
        if self.oom_limit is not None and padded >= self.oom_limit and len(batch) > 1:
            return self._split(batch, ids)
        try:
            return [(batch, *self._forward(batch, ids))]
        except Exception as err:  # noqa: BLE001 - only OOM is handled, the rest re-raised
            if not _is_oom(err):
                raise
            message = str(err).splitlines()[0]
        _free_memory()
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

    def _forward(self, batch: np.ndarray, ids: list[np.ndarray]):
        import torch

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
        return kernels.head_logprobs(
            hidden,
            head.weight,
            targets,
            bias=head.bias,
            softcap=head.softcap,
            scale=head.scale,
            budget_bytes=self.head_budget,
        )

    def _model_logits(self, logits, targets):
        import torch

        out = []
        rows_per_block = max(1, self.head_budget // max(1, logits.shape[-1] * 4))
        for start in range(0, logits.shape[0], rows_per_block):
            out.append(kernels.token_logprobs(logits[start:start + rows_per_block], targets[start:start + rows_per_block]))
        return torch.cat(out) if out else torch.zeros(0, device=logits.device)


def _is_oom(err: BaseException) -> bool:
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def _free_memory() -> None:
    """Collect garbage and return the CUDA cache, so the halves of a batch get the memory back."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
