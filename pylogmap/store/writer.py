"""The scorer's writer: one crash-safe writer per scoring run, which resumes where a killed run
stopped and journals every finished model before the next one starts (`store.journal`)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pylogmap.errors import MapFileError
from pylogmap.store.create import create_map
from pylogmap.store.entries import check_matrix, model_columns, rows_entry
from pylogmap.store.journal import Committer
from pylogmap.store.keys import RowKey, as_key
from pylogmap.store.lock import WriterLock
from pylogmap.store.mapfile import MapFile
from pylogmap.store.tokens import drop_tokens, write_tokens
from pylogmap.texts import TextSet


class ScoreWriter:
    """The single writer a scoring run uses: resume, record results, crash-safe commits.

    ``with ScoreWriter(out, texts) as w:`` creates `out` for `texts` (or opens it, refusing a file
    of another text set; `texts=None` uses the texts of an existing file), takes the writer lock
    and commits results a killed run left in the journal. Then, for each model: `rows_to_do(keys)` says what is left, `record(...)` or
    `record_failure(...)` journals a finished model durably and commits when `commit_interval`
    allows; leaving the block commits everything and releases the lock.

    `commit_interval`: seconds between commits. None (default): at least 20x the last commit's
    duration, so committing stays under ~5% of the run. 0: after every model.

    The writer lock is taken first, and the file is created, or checked to be of `texts`, under
    it: two writers starting on one new file at once never both create it, and never write into
    the one the other made.
    """

    def __init__(self, path: str | os.PathLike, texts: TextSet | None = None, *,
                 commit_interval: float | None = None, overwrite: bool = False):
        self.path = Path(path)
        self.commit_interval = commit_interval
        lock = WriterLock(self.path)
        lock.acquire()
        try:
            if texts is None and (overwrite or not self.path.exists()):
                raise MapFileError(f"{str(self.path)!r} does not exist yet: give the text set to create it with.")
            if overwrite or not self.path.exists():
                create_map(self.path, texts, overwrite=overwrite, lock=lock)
        except BaseException:
            lock.release()
            raise
        self._committer = Committer(self.path, lock=lock)  # finishes a commit a killed run left
        try:
            if texts is not None and self._committer.text_hash != texts.hash:
                raise MapFileError(
                    f"{str(self.path)!r} was made with another text set: the file has {self._committer.text_hash}, "
                    f"the texts given have {texts.hash}. Use the file's own texts, or write to a new "
                    "output file (or overwrite with --force)."
                )
            with MapFile(self.path, recover=False) as mf:
                texts = mf.texts() if texts is None else texts
                self.n_texts = mf.n_texts
            self.texts = texts
            self.text_hash = texts.hash
            self._committer.commit()  # results a killed run journalled
            with MapFile(self.path, recover=False) as mf:
                self._status = dict(zip(mf.keys(), mf.status()))
        except BaseException:
            self._committer.close()
            raise
        self._closed = False

    # -- resume -----------------------------------------------------------------------------
    def status(self, key: Any) -> str | None:
        """"ok", "failed", or None when the row has no result yet."""
        return self._status.get(as_key(key))

    def rows_to_do(self, keys: Iterable[Any], *, retry_failed: bool = False, force: bool = False) -> list[RowKey]:
        """The keys, in order and without repeats, that still need scoring: no row yet, or (with
        `retry_failed`) a failed row; `force` returns them all."""
        out: list[RowKey] = []
        seen: set[RowKey] = set()
        for key in keys:
            k = as_key(key)
            if k in seen:
                continue
            seen.add(k)
            st = self._status.get(k)
            if force or st is None or (st == "failed" and retry_failed):
                out.append(k)
        return out

    # -- recording --------------------------------------------------------------------------
    def record(self, key: Any, loglik: Any, ntokens: Any, truncated: Any = None, meta: Mapping[str, Any] | None = None,
               *, token_logprobs: Sequence[Any] | None = None) -> None:
        """Durably record a finished row: log-likelihoods [N] (nats), scored tokens [N], truncated
        flags [N], and metadata (`/models` columns such as dtype, architecture, n_params,
        tokenizer, max_length, step, wall_time_s, tokens_per_s; the rest goes to JSON `meta`).
        `token_logprobs`: optionally one array per text for the per-token sidecar."""
        self._check_open()
        k = as_key(key)
        n = self.n_texts
        L = check_matrix("loglik", loglik, (n,), np.float64)
        if not np.all(np.isfinite(L)):
            bad = int((~np.isfinite(L)).sum())
            raise MapFileError(f"{k.label}: {bad} log-likelihoods are NaN or infinite; record_failure() it instead.")
        T = check_matrix("ntokens", ntokens, (n,), np.int64)
        tr = np.zeros(n, bool) if truncated is None else check_matrix("truncated", truncated, (n,), bool)
        if token_logprobs is not None:
            lengths = [int(np.size(a)) for a in token_logprobs]
            if len(lengths) != n or any(a != t for a, t in zip(lengths, T)):
                bad = next((j for j, (a, t) in enumerate(zip(lengths, T)) if a != t), None)
                raise MapFileError(
                    f"{k.label}: token_logprobs must give one array per text with ntokens entries "
                    + (f"(text {bad}: {lengths[bad]} values, ntokens {T[bad]})." if bad is not None
                       else f"({len(lengths)} arrays for {n} texts).")
                )
            write_tokens(self.path, k, self.text_hash, token_logprobs, n, self._committer.map_id)
        else:
            drop_tokens(self.path, k)
        cols = model_columns([k], [meta], ["ok"], [""], [int(tr.sum())])
        self._committer.journal(rows_entry([k], L[None].astype(np.float32), T[None], tr[None], cols))
        self._status[k] = "ok"
        self._maybe_commit()

    def record_failure(self, key: Any, error: str, meta: Mapping[str, Any] | None = None) -> bool:
        """Record that a row failed (its error message kept); its values stay NaN / -1. A later
        run retries it when asked (`rows_to_do(..., retry_failed=True)`).

        A row that already holds a good result (a forced rescoring that failed) keeps it: nothing
        is written and False is returned; otherwise True."""
        self._check_open()
        k = as_key(key)
        n = self.n_texts
        if self._status.get(k) == "ok":
            return False
        cols = model_columns([k], [meta], ["failed"], [str(error)], [0])
        self._committer.journal(rows_entry([k], np.full((1, n), np.nan, np.float32), np.full((1, n), -1, np.int32),
                                            np.zeros((1, n), bool), cols))
        self._status[k] = "failed"
        self._maybe_commit()
        return True

    def _maybe_commit(self) -> None:
        c = self._committer
        interval = self.commit_interval
        if interval is None:
            interval = 20.0 * c.last_commit_duration
        if time.monotonic() - c.last_commit_end >= interval:
            c.commit()

    def commit(self) -> bool:
        """Commit every journalled result now."""
        self._check_open()
        return self._committer.commit()

    def _check_open(self) -> None:
        if self._closed:
            raise MapFileError(f"the writer of {str(self.path)!r} is closed.")

    def close(self) -> None:
        """Commit what is journalled and release the lock."""
        if self._closed:
            return
        try:
            self._committer.commit()
        finally:
            self._committer.close()
            self._closed = True

    def __enter__(self) -> "ScoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
