"""Crash-safe changes: the journal of a map and the commit that applies it.

The live file `OUT.h5` is never modified in place. Every change goes through:

1. a **journal entry** `OUT.h5.journal/<seq>.npz`, written to a temporary name, fsync'ed and renamed
   into place (so an entry either exists completely or not at all);
2. a **commit**: `OUT.h5` is copied to `OUT.h5.tmp`, the pending entries are applied to the copy
   (which records the last applied sequence number in its `commit_seq` attribute), the copy is
   flushed, fsync'ed and `os.replace`d over `OUT.h5`;
3. the applied journal entries are deleted.

A `kill -9` at any moment therefore leaves the last committed `OUT.h5` intact plus complete journal
entries; the next writer (or reader, when no writer is alive: `recover`) applies the entries whose
sequence number is above `commit_seq` and deletes the others. At most the change in flight is lost.
Commits copy the file, so a writer rate-limits them (`ScoreWriter`'s `commit_interval`); the
journal already holds every finished result in the meantime.
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np

from pylogmap.errors import MapFileError
from pylogmap.store.attrs import read_attr, write_attrs
from pylogmap.store.durable import fsync_dir, fsync_file
from pylogmap.store.lock import WriterLock
from pylogmap.store.schema import LIBVER, FileState, apply
from pylogmap.store.sidefiles import commit_tmp_path, journal_dir


def journal_entries(path: Path) -> list[tuple[int, Path]]:
    """The complete journal entries of the map at `path`, as (sequence number, file), in order."""
    jdir = journal_dir(path)
    if not jdir.is_dir():
        return []
    out = []
    for p in jdir.iterdir():
        if p.suffix == ".npz" and p.stem.isdigit():
            out.append((int(p.stem), p))
    return sorted(out)


def _load_entry(p: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(p, allow_pickle=False) as entry:
            return dict(entry)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as err:
        raise MapFileError(
            f"journal entry {p} cannot be read ({err}); move it out of {p.parent.name} to open the map "
            "without that result (rescoring recomputes it)."
        ) from None


def _commit_seq(f: h5py.File) -> int:
    return int(read_attr(f, "commit_seq", 0))


class Committer:
    """Journals changes and commits them into the map file by copy + atomic replace.

    Owns the writer lock for its lifetime. Entries are dicts of numpy arrays (`store.entries`).
    """

    def __init__(self, path: Path):
        self.path = path
        self.lock = WriterLock(path)
        self.lock.acquire()
        try:
            self.jdir = journal_dir(path)
            self.jdir.mkdir(exist_ok=True)
            for p in self.jdir.iterdir():  # half-written entries of a killed writer
                if p.suffix != ".npz" or not p.stem.isdigit():
                    p.unlink()
            tmp = commit_tmp_path(path)
            if tmp.exists():  # a commit that was killed before its replace
                tmp.unlink()
            with h5py.File(path, "r") as f:
                self.committed = _commit_seq(f)
                self.text_hash = str(read_attr(f, "text_set_hash"))
            entries = journal_entries(path)
            self.next_seq = max([self.committed] + [s for s, _ in entries]) + 1
            self.last_commit_duration = 0.0
            self.last_commit_end = time.monotonic()
        except BaseException:
            self.lock.release()
            raise

    def journal(self, entry: dict[str, np.ndarray]) -> int:
        """Write one entry durably; returns its sequence number."""
        seq = self.next_seq
        final = self.jdir / f"{seq:012d}.npz"
        tmp = self.jdir / f"{seq:012d}.npz.part"
        try:
            with open(tmp, "wb") as f:
                np.savez(f, text_hash=np.array(self.text_hash), **entry)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            fsync_dir(self.jdir)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise MapFileError(
                f"could not save a result next to {self.path} ({err.strerror or err}); free disk space or "
                "fix the folder's permissions, then rerun: results committed so far are kept."
            ) from err
        self.next_seq += 1
        return seq

    def commit(self) -> bool:
        """Apply every pending journal entry to a copy of the file and replace the file with it.
        Returns whether anything was committed."""
        t0 = time.monotonic()
        with h5py.File(self.path, "r") as f:  # the truth, even after an interrupted commit
            self.committed = _commit_seq(f)
        entries = journal_entries(self.path)
        stale = [p for s, p in entries if s <= self.committed]
        todo = [(s, p) for s, p in entries if s > self.committed]
        for p in stale:
            p.unlink(missing_ok=True)
        if not todo:
            return False
        tmp = commit_tmp_path(self.path)
        try:
            shutil.copyfile(self.path, tmp)
            shutil.copymode(self.path, tmp)
            with h5py.File(tmp, "r+", libver=LIBVER) as f:
                state = FileState(f)
                for seq, p in todo:
                    apply(f, state, _load_entry(p), p.name)
                    write_attrs(f, {"commit_seq": seq})
                f.flush()
            fsync_file(tmp)
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise MapFileError(
                f"could not commit results into {self.path} ({err}); free disk space (a commit needs room "
                "for a second copy of the file) and rerun: the results wait in "
                f"{self.jdir.name} and nothing is lost."
            ) from err
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.committed = todo[-1][0]
        for _, p in todo:
            p.unlink(missing_ok=True)
        self.last_commit_end = time.monotonic()
        self.last_commit_duration = self.last_commit_end - t0
        return True

    def close(self) -> None:
        """Remove the journal folder when it is empty and release the lock."""
        try:
            if self.jdir.is_dir() and not any(self.jdir.iterdir()):
                self.jdir.rmdir()
        except OSError:
            pass
        self.lock.release()


def commit_entries(path: Path, entries: list[dict[str, np.ndarray]]) -> None:
    """Journal `entries` and commit them (after any leftovers of a killed writer, in order)."""
    committer = Committer(path)
    try:
        for e in entries:
            committer.journal(e)
        committer.commit()
    finally:
        committer.close()


def recover(path: Path) -> None:
    """Commit a journal left by a killed writer, when no writer is alive and we may write."""
    if not journal_entries(path) or not path.exists():
        return
    try:
        committer = Committer(path)
    except (MapFileError, OSError):
        return  # a live writer owns the journal, or the folder is read-only
    try:
        committer.commit()
    except (MapFileError, OSError):
        pass  # the reader still sees the last commit; pending_journal() reports what waits
    finally:
        committer.close()
