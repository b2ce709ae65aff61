"""Whether a model's scores are plausible numbers: a row is recorded `ok` only when they are.

A broken pairing of model and tokenizer does not always raise: a folder without tokenizer files
loads an empty tokenizer (every text becomes no tokens, every entry 0), a tokenizer that does not
cover the texts maps them to `<unk>` (which the model then predicts cheaply), a tokenizer bigger
than the model's vocabulary produces ids past its embedding. These checks turn such cases into a
failed model with a message saying what is wrong:

- `check_token_ids` (before the forward pass, `forward.score_texts`): every id is below the
  model's embedding size (on a GPU an id past it is not even an error message but a crashed CUDA
  context);
- `check_scores` (where a job's result becomes a row, `jobs.run_job`): every non-blank text has
  at least one token that is not a special token; at most half of the tokens are the unknown
  token; every log-likelihood is finite and <= 0.

A text of a single token has nothing to score when the tokenizer adds no BOS (`loglik 0`, `ntokens
0`, docs/scoring.md): that is a fact of the convention, not a broken tokenizer, so it passes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pylogmap.errors import PylogmapError

#: Above this share of unknown tokens a tokenizer does not cover the texts.
MAX_UNKNOWN = 0.5


class ImplausibleScores(PylogmapError):
    """A model's numbers cannot be right (the tokenizer does not fit the model or the texts)."""


def _size(tokenizer) -> int:
    try:
        return len(tokenizer)
    except TypeError:
        return -1


def check_token_ids(ids: Sequence[np.ndarray], n_embeddings: int, tokenizer=None) -> None:
    """Raise when a token id is negative or not below the model's `n_embeddings` rows."""
    if n_embeddings <= 0:
        return
    top = max((int(t.max()) for t in ids if len(t)), default=-1)
    low = min((int(t.min()) for t in ids if len(t)), default=0)
    if top >= n_embeddings or low < 0:
        bad = top if top >= n_embeddings else low
        size = _size(tokenizer)
        raise ImplausibleScores(
            f"the tokenizer gives token id {bad}, outside the model's {n_embeddings} embeddings"
            + (f" (the tokenizer has {size} tokens)" if size >= 0 else "")
            + ": the tokenizer does not belong to this model; save the model's own tokenizer with it."
        )


def check_scores(texts: Sequence[str], ids: Sequence[np.ndarray], loglik: np.ndarray, tokenizer) -> None:
    """Raise `ImplausibleScores` when the scores of one model cannot be right (module docstring).

    `loglik`: [n_texts], or [rows, n_texts] for logit-lens rows.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    # special tokens (BOS, EOS ...) stand for no text; an unknown token does (judged below)
    special = {int(i) for i in (getattr(tokenizer, "all_special_ids", None) or [])} - {unk}
    blank = np.array([not t.strip() for t in texts], dtype=bool)
    content = np.array([int(np.count_nonzero(~np.isin(t, list(special)))) if special else len(t) for t in ids])
    empty = ~blank & (content == 0)
    if empty.any():
        k = int(np.flatnonzero(empty)[0])
        raise ImplausibleScores(
            f"the tokenizer turns {int(empty.sum())} of {int((~blank).sum())} non-empty texts (e.g. text {k}) into "
            f"no tokens{' but special ones' if special else ''} (its vocabulary has {_size(tokenizer)} entries): its "
            "files are missing or broken; save the model's tokenizer with it (tokenizer.save_pretrained(DIR))."
        )
    if unk is not None:
        n_unk = sum(int(np.count_nonzero(t == unk)) for t in ids)
        total = int(content.sum())
        if total and n_unk > MAX_UNKNOWN * total:
            raise ImplausibleScores(
                f"the tokenizer maps {n_unk / total:.0%} of the tokens to its unknown token "
                f"{getattr(tokenizer, 'unk_token', unk)!r}: it does not cover these texts, and the scores would "
                "measure how well the model predicts that token; use a tokenizer that covers them."
            )
    values = np.asarray(loglik, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ImplausibleScores("a log-likelihood is NaN or infinite; the model's weights or dtype overflow "
                                "(try --dtype fp32 or bf16).")
    if (values > 0).any():
        raise ImplausibleScores(
            f"a log-likelihood is positive ({float(values.max()):.6g} nats), which no probability gives; the "
            "model's output is not a normalised distribution over its vocabulary."
        )
