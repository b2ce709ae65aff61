"""Batches by length: texts sorted longest first, cut into buckets under a padded-token budget.

The budget counts padding (`n_texts x longest` per bucket), so it bounds the memory of one forward
pass whatever the lengths are. Its default depends on the device: a GPU wants big batches to fill
its matrix units; on a CPU batches past a few thousand tokens get slower (the attention and MLP
intermediates of one batch fall out of the caches): measured on SmolLM2-135M, 2048 tokens ran
~2.8x faster than 16384.
"""

from __future__ import annotations

import numpy as np

from pylogmap.errors import PylogmapError

# Tokens (counting padding) per batch, per device type.
BATCH_TOKENS = {"cuda": 16384, "cpu": 2048}


def default_batch_tokens(device) -> int:
    """Batch token budget for a device ("cpu", "cuda" or a torch.device)."""
    kind = getattr(device, "type", str(device).split(":")[0])
    return BATCH_TOKENS.get(kind, BATCH_TOKENS["cpu"])


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
