"""Token ids of a text set under a model's own tokenizer, computed once per tokenizer.

`tokenize_texts` uses the tokenizer's default special tokens (`add_special_tokens=True`, so a BOS
is prepended exactly where that tokenizer adds one), no chat template and no truncation: texts
longer than a model's context are cut per model by the scorer, which flags them. `tokenizer_hash`
identifies a tokenizer by content, so `TokenCache` can share the ids between every model that
tokenizes the same way (e.g. all checkpoints and fine-tunes of one base).
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Sequence

import numpy as np


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
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def tokenizer_hash(tokenizer) -> str:
    """Content hash of a tokenizer: vocabulary, merges, normaliser, special-token handling.

    Two models with the same hash produce the same token ids for every text, so token ids are
    computed once per hash. The full serialisation of a fast tokenizer covers everything; for slow
    tokenizers the vocabulary plus special tokens is used. A fixed probe encoding is mixed in as a
    safety net (it catches class-level behaviour such as BOS insertion done in Python).
    """
    h = hashlib.sha256()
    h.update(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True, default=str).encode())
    probe = "Hello world! ÄÖü 你好 \n\t  123 <|endoftext|>"
    h.update(json.dumps(tokenizer(probe, add_special_tokens=True)["input_ids"]).encode())
    return "sha256:" + h.hexdigest()


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer prepends its BOS token by default (recorded with every row)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == bos
