"""A reader's view of one commit of a map file, kept whole while writers commit in place.

A format-2 file changes in place (`store.journal`), so a reader pins the commit it opened (its
sequence number and row count) and checks the commit record (`store.record`) before and after
every read, like a sequence lock:

- unchanged: the read stands;
- a newer commit appeared: the HDF5 handle is reopened (HDF5's cached metadata would be stale)
  and the read repeated. Commits that only append rows leave the pinned rows as they were, so the
  reader keeps seeing exactly its commit; a commit that rewrote what is being read (rows
  replaced, `/map` or `/annotations` written) since the reader opened is an error telling it to
  reopen, never a mix of two commits;
- a commit being applied: the file is read through that commit's redo log, which is what the
  commit makes, so nobody waits and nobody sees half of it (a writer killed while applying is
  read the same way, until the next writer or `recover` finishes the commit).

A format-1 file is never written in place (its writers replaced it by rename): it is opened
as it is and needs none of this.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import h5py

from pylogmap.errors import MapFileError
from pylogmap.store import redo
from pylogmap.store.record import APPLYING, BadRecord, CommitRecord, read_record
from pylogmap.store.shadow import ShadowFile
from pylogmap.store.sidefiles import journal_dir

T = TypeVar("T")
_PATIENCE_S = 5.0  # how long a record may look torn, or a commit applied without its log
_ATTEMPTS = 1000


class Snapshot:
    """An open h5py handle on the commit of `path` current at opening. `check(f)` validates a
    freshly opened file and returns its row count (raising MapFileError for a bad file)."""

    def __init__(self, path: Path, check: Callable[[h5py.File], int]):
        self.path = path
        self._check = check
        self._fd: int | None = None
        self.file: h5py.File | None = None
        self._open()
        self.seq = self.view_seq  # the commit pinned
        self.m = self._rows

    # -- opening ------------------------------------------------------------------------------
    def _record(self) -> CommitRecord | None:
        """The file's record, waiting out a torn read of it (a writer writing it just then)."""
        deadline = time.monotonic() + _PATIENCE_S
        while True:
            try:
                return read_record(self.path)
            except BadRecord as err:
                if time.monotonic() > deadline:
                    raise MapFileError(f"{str(self.path)!r}: {err}; the file is damaged. Restore it from a copy.") from None
                time.sleep(0.002)

    def _open(self) -> None:
        deadline = time.monotonic() + _PATIENCE_S
        while True:
            record = self._record()
            log = None
            if record is not None:
                candidate = redo.read(redo.redo_path(journal_dir(self.path)))
                if redo.pending(candidate, record):
                    log = candidate
                elif record.state == APPLYING:  # between a log being replaced and read: look again
                    if time.monotonic() > deadline:
                        raise MapFileError(
                            f"{str(self.path)!r} was left in the middle of a commit and its redo log is missing; "
                            "restore the file from a copy, or rescore into a new file."
                        )
                    time.sleep(0.002)
                    continue
            f = self._h5(log)
            try:
                rows = self._check(f)
            except MapFileError:
                f.close()
                self._close_fd()
                if record is not None and self._record() != record:
                    continue  # it changed while we looked: look again
                raise
            if record is None or self._record() == record:
                break
            f.close()
            self._close_fd()
        self.file, self.seen, self._rows = f, record, rows
        self.view_seq = log.to_seq if log is not None else (record.commit_seq if record else 0)
        self.view_record = log.record if log is not None else record

    def _h5(self, log: redo.Redo | None) -> h5py.File:
        """The file opened by HDF5 through a file object of its own (`store.shadow`), and through
        `log` when that is a commit being applied."""
        self._fd = os.open(self.path, os.O_RDONLY)
        regions, size = (log.regions, log.final_size) if log is not None else ((), os.fstat(self._fd).st_size)
        try:
            return h5py.File(ShadowFile.reader(self._fd, regions, size), "r")
        except OSError as err:
            self._close_fd()
            raise MapFileError(
                f"{str(self.path)!r} is a corrupt or truncated HDF5 file ({err}); restore it from a copy or rescore."
            ) from None

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- reading --------------------------------------------------------------------------------
    @property
    def format_1(self) -> bool:
        return self.seen is None

    def _current(self) -> bool:
        return self.format_1 or self._record() == self.seen

    def _follow(self) -> None:
        """After a newer commit: reopen (HDF5's cached metadata is stale)."""
        self.file.close()
        self._close_fd()
        self._open()

    def _check_kind(self, kind: str) -> None:
        """A MapFileError when the commit seen now rewrote `kind` since the pinned commit."""
        if self.view_record is not None and self.view_record.rewritten(kind) > self.seq:
            raise MapFileError(
                f"{self.path.name} was changed by another writer while open ({_WHAT.get(kind, kind)} rewritten by "
                f"commit {self.view_record.rewritten(kind)}, this reader shows commit {self.seq}); open it again "
                "(MapFile.reload) to read the new commit."
            )

    def read(self, kind: str, fn: Callable[[h5py.File], T]) -> T:
        """`fn(file)` as of the pinned commit; `kind` ("rows", "map", "annotations", "texts") is
        what it reads, so that a commit rewriting it since the pinning is noticed."""
        for _ in range(_ATTEMPTS):
            if not self._current():
                self._follow()
            self._check_kind(kind)
            try:
                out = fn(self.file)
            except (OSError, KeyError, ValueError, RuntimeError):
                if not self._current():
                    continue  # a commit was being applied under the read: read again
                raise
            if self._current():
                return out
        raise MapFileError(f"{self.path.name} changes faster than it can be read; try again when the writer pauses.")

    def newer(self) -> bool:
        """Whether a newer commit than the pinned one exists."""
        if self.format_1:
            return False
        record = self._record()
        return record is None or record.commit_seq != self.seq or record.state == APPLYING

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self._close_fd()


_WHAT = {"rows": "rows", "map": "/map", "annotations": "/annotations"}
