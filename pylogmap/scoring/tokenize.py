"""Token ids of a text set under a model's own tokenizer, computed once per tokenizer, in bounded memory.

`tokenize_texts` uses the tokenizer's default special tokens (`add_special_tokens=True`, so a BOS
is prepended exactly where that tokenizer adds one), no chat template and no truncation of its
own: texts longer than a model's context are cut per model by the scorer, which flags them.
`tokenizer_hash` identifies a tokenizer by content, so `TokenCache` can share the ids between every
model that tokenizes the same way (e.g. all checkpoints and fine-tunes of one base).

Memory. A tokenizer's working memory grows with the characters it is given (a fast tokenizer keeps
offsets and alignments per character and per token: about 250 bytes per character of a long
text), so a 60 MB text would need gigabytes to give the 256 tokens a model reads. With
`max_tokens` (the model's context), a long text is tokenized from a prefix only: the first
`max_tokens + PREFIX_MARGIN` tokens' worth of characters (guessed at `CHARS_PER_TOKEN`, doubled
while the prefix gives fewer tokens, never past `longest token x needed tokens` characters, which
always suffices), and the ids kept are that prefix's. The cut is checked to lie after the context:
at least `PREFIX_MARGIN` tokens past it, since only the tokens next to a cut (a word cut in two)
can differ from the whole text's. Texts go to the tokenizer in calls of at most `CALL_CHARS`
characters. So tokenization holds at most `CALL_CHARS` characters of tokenizer state at a time,
and each text's ids are at most `max_tokens + PREFIX_MARGIN` long, whatever the texts' lengths.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Sequence

import numpy as np

from pylogmap.errors import PylogmapError

#: Tokens kept past the context when a text is tokenized from a prefix (the cut must lie past them).
PREFIX_MARGIN = 64
#: First guess of characters per token for the prefix (English text averages about 4).
CHARS_PER_TOKEN = 8
#: Characters given to the tokenizer in one call (bounds its working memory).
CALL_CHARS = 1 << 18


def tokenize_texts(tokenizer, texts: Sequence[str], *, max_tokens: int | None = None,
                   chunk: int = 512) -> list[np.ndarray]:
    """Token ids of every text, with the tokenizer's default special tokens.

    `max_tokens` None: the whole texts. Otherwise a text of more than `max_tokens` tokens may be
    tokenized from a prefix (see the module docstring): its ids are then exactly its first tokens,
    at least `max_tokens + PREFIX_MARGIN` of them, so a scorer cutting at `max_tokens` sees the
    text as longer than its context.
    """
    saved = getattr(tokenizer, "model_max_length", None)
    try:
        # we truncate per model ourselves; silence the "longer than the maximum" warning
        tokenizer.model_max_length = sys.maxsize
        if max_tokens is None:
            return _encode(tokenizer, list(texts), chunk)
        return _encode_bounded(tokenizer, texts, int(max_tokens), chunk)
    finally:
        if saved is not None:
            tokenizer.model_max_length = saved


def _encode(tokenizer, texts: list[str], chunk: int) -> list[np.ndarray]:
    """Ids of whole texts, in calls of at most `chunk` texts and `CALL_CHARS` characters."""
    out: list[np.ndarray] = []
    start = 0
    while start < len(texts):
        stop, size = start, 0
        while stop < len(texts) and stop - start < chunk and (stop == start or size + len(texts[stop]) <= CALL_CHARS):
            size += len(texts[stop])
            stop += 1
        enc = tokenizer(texts[start:stop], add_special_tokens=True, truncation=False,
                        return_attention_mask=False)["input_ids"]
        out.extend(np.asarray(ids, dtype=np.int64) for ids in enc)
        start = stop
    return out


def _encode_bounded(tokenizer, texts: Sequence[str], max_tokens: int, chunk: int) -> list[np.ndarray]:
    need = max_tokens + PREFIX_MARGIN
    cap = need * longest_token(tokenizer)
    size = [min(len(t), need * CHARS_PER_TOKEN) for t in texts]
    out: list[np.ndarray | None] = [None] * len(texts)
    todo = list(range(len(texts)))
    while todo:
        ids = _encode(tokenizer, [texts[i][:size[i]] for i in todo], chunk)
        again = []
        for i, got in zip(todo, ids):
            if size[i] == len(texts[i]):
                out[i] = got  # the whole text
            elif len(got) >= need:
                out[i] = got[:need]  # cut after the context (and the margin)
            elif size[i] >= cap:
                raise PylogmapError(
                    f"text {i}: its first {size[i]:,} characters give only {len(got)} tokens, fewer than the "
                    f"{max_tokens} of the model's context (the tokenizer drops most of these characters); "
                    "remove the text or clean it (e.g. long runs of whitespace or control characters)."
                )
            else:
                size[i] = min(len(texts[i]), 2 * size[i], cap)
                again.append(i)
        todo = again
    return out  # type: ignore[return-value]


def longest_token(tokenizer) -> int:
    """Characters of the longest vocabulary entry: an upper bound on the characters one token
    stands for (byte-level entries have one character per byte; `##`, `\u2581` and `<0x..>` forms
    are longer than the text they cover)."""
    return max((len(t) for t in tokenizer.get_vocab()), default=1) or 1


class TokenCache:
    """Token ids per (tokenizer hash, text set): computed once, reused by every model sharing them.

    Ids computed for a context of `max_tokens` serve any model whose context is not longer (the
    scorer cuts them further); a model with a longer context tokenizes again.
    """

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], tuple[int | None, list[np.ndarray]]] = {}

    def get(self, tokenizer, tok_hash: str, texts: Sequence[str], texts_key: str,
            max_tokens: int | None = None) -> list[np.ndarray]:
        key = (tok_hash, texts_key)
        held = self._ids.get(key)
        if held is not None and (held[0] is None or (max_tokens is not None and max_tokens <= held[0])):
            return held[1]
        ids = tokenize_texts(tokenizer, texts, max_tokens=max_tokens)
        self._ids[key] = (max_tokens, ids)
        return ids

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
