"""Training one run of the zoo: the token stream, the learning-rate schedule and the loop.

`train_run` trains a model from random initialisation (or from a base, for a fine-tune) with
AdamW on random windows of one token stream (`token_stream`: the slice's documents joined by
EOS), with a linear warm-up and cosine decay (`lr_at`). It is deterministic under the run's seed,
so that a rerun, or another number of worker processes, gives bit-identical weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from pylogmap.demo.architectures import make_model
from pylogmap.demo.config import ZooConfig
from pylogmap.demo.corpus import Document
from pylogmap.demo.plan import RunSpec
from pylogmap.errors import PylogmapError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def token_stream(documents: Sequence[Document], tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    """All documents tokenized without special tokens, joined by EOS, as one int64 array."""
    ids: list[int] = []
    for doc in documents:
        ids.extend(tokenizer(doc.text, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    return np.asarray(ids, dtype=np.int64)


def lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first 10% of steps, then cosine decay to 10% of the peak."""
    warm = max(1, total // 10)
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_run(
    run: RunSpec,
    config: ZooConfig,
    tokenizer: PreTrainedTokenizerBase,
    stream: np.ndarray,
    *,
    init_from: Path | None = None,
    on_checkpoint: Callable[[int, PreTrainedModel], None] | None = None,
    progress: bool = True,
) -> PreTrainedModel:
    """Train one run on random windows of `stream`; deterministic under `run.seed`.

    Returns the trained model. `on_checkpoint(step, model)` is called at `run.checkpoint_steps`.
    Models whose tokenizer adds a BOS token see it at the start of every window, as when scored.
    """
    import torch

    torch.manual_seed(run.seed)
    if init_from is not None:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(init_from, dtype=torch.float32)
    else:
        model = make_model(run.arch, config, tokenizer)
    model.train()
    rng = np.random.default_rng(run.seed)
    body = config.seq_len - 1 if run.add_bos else config.seq_len
    if len(stream) <= body + 1:
        raise PylogmapError(
            f"the {run.data} slice has only {len(stream)} tokens, too few to train on; "
            f"the corpus is too small for the zoo."
        )
    optimizer = torch.optim.AdamW(model.parameters(), lr=run.lr, weight_decay=0.01, betas=(0.9, 0.98))
    bar = tqdm(range(run.steps), desc=f"train {run.name}", unit="step", disable=not progress, leave=False)
    for step in bar:
        starts = rng.integers(0, len(stream) - body, size=config.batch_size)
        batch = np.stack([stream[s : s + body] for s in starts])
        if run.add_bos:
            batch = np.concatenate([np.full((len(batch), 1), tokenizer.bos_token_id), batch], axis=1)
        ids = torch.from_numpy(batch)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, run.steps, run.lr)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if progress:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if on_checkpoint is not None and step + 1 in run.checkpoint_steps:
            model.eval()
            on_checkpoint(step + 1, model)
            model.train()
    bar.close()
    model.eval()
    return model
