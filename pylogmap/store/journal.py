"""Crash-safe changes: the journal of a map and the commit that writes it into the file in place.

Every change goes through:

1. a **journal entry** `OUT.h5.journal/<seq>.npz`, written to a temporary name, fsync'ed and renamed
   into place (so an entry either exists completely or not at all);
2. a **commit**, which costs what the entries add, not what the file holds. HDF5 applies the
   pending entries to the file through a `ShadowFile`: new bytes go to the end of the file,
   changes of committed bytes are kept aside. The new bytes are synced; then the changes are
   written to the redo log `OUT.h5.journal/commit.redo` and synced: the commit point. Only then
   are they written into the file, the file synced, and the commit record (the file's first
   bytes, `store.record`) set to the new `commit_seq`;
3. the applied journal entries are deleted.

A `kill -9` before the commit point leaves the file as it was (new bytes beyond its end are
ignored and reused) plus complete journal entries; after it, the redo log, which the next writer
(or a reader, when no writer is alive: `recover`) applies again. Readers that open the file while
a commit is being applied wait for it (the record says so); see `store.mapfile`.
"""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np

from pylogmap.errors import MapFileError
from pylogmap.files.durable import fsync_dir
from pylogmap.store import redo
from pylogmap.store.attrs import read_attr, write_attrs
from pylogmap.store.legacy import is_format_1, upgrade
from pylogmap.store.lock import WriterLock, running_writer
from pylogmap.store.markers import MARKER, adopt, belongs_to, make_folder, read_marker, split, write_marker
from pylogmap.store.record import APPLYING, CLEAN, BadRecord, CommitRecord, read_record
from pylogmap.store.schema import LIBVER, FileState, apply
from pylogmap.store.shadow import ShadowFile, read_only
from pylogmap.store.sidefiles import journal_dir
from pylogmap.store.tokens import tokens_dir


_KEEP_BYTES = 64 << 20  # journalled entries kept in memory until committed, at most


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


def unreadable_message(p: Path, err: Exception | str) -> str:
    """What is wrong with an entry that cannot be read, and what to do (one line)."""
    return (
        f"journal entry {p} cannot be read ({err}): it is a finished result of a writer that was killed, or a "
        f"damaged copy, and it keeps the results after it from being committed; move it out of {p.parent.name} "
        "(or delete it) to discard that result (scoring that model again recomputes it)."
    )


def entry_problem(p: Path, text_hash: str, map_id: str | None) -> str | None:
    """Why the journal entry `p` cannot be committed into the map of `text_hash` / `map_id` (one
    line saying what to do), or None when it can."""
    if not zipfile.is_zipfile(p):
        return unreadable_message(p, "not a complete .npz file")
    try:
        with np.load(p, allow_pickle=False) as entry:
            made_for = str(entry["text_hash"]) if "text_hash" in entry.files else text_hash
            made_in = str(entry["map_id"]) if "map_id" in entry.files else map_id
            op = str(entry["op"])
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as err:
        return unreadable_message(p, err)
    if made_for != text_hash or (map_id and made_in != map_id):
        return (f"journal entry {p} was written for another map (text set {made_for}) than this file (text set "
                f"{text_hash}): was the file replaced by hand? Move the folder {p.parent.name} away to keep those "
                "results apart.")
    if op not in ("rows", "derived", "annotations"):
        return f"journal entry {p} is of a kind ({op!r}) this pylogmap does not know; upgrade pylogmap to commit it."
    return None


def journal_report(path: Path, committed: int, text_hash: str, map_id: str | None) -> list[str]:
    """One line for each thing a user should know about the results waiting in the journal of
    the map at `path` (whose last commit is `committed`): nothing when none wait."""
    waiting = [(s, p) for s, p in journal_entries(path) if s > committed]
    if not waiting:
        return []
    holder = running_writer(path)
    problems = [msg for _, p in waiting if (msg := entry_problem(p, text_hash, map_id)) is not None]
    n = len(waiting)
    if holder is not None:
        lines = [f"{n} finished result(s) not committed yet: a writer{holder} is running and commits them."]
    elif problems:
        lines = [f"{n} finished result(s) are not committed, because of the entries below."]
    else:
        lines = [f"{n} finished result(s) of a writer that was killed are not committed yet, because this folder "
                 "cannot be written here; open the map where it is writable (any pylogmap command commits them) "
                 "or rerun the scorer."]
    return lines + problems


def load_entry(p: Path) -> dict[str, np.ndarray]:
    """A journal entry's arrays; a MapFileError saying what to do when it cannot be read."""
    if not zipfile.is_zipfile(p):
        raise MapFileError(unreadable_message(p, "not a complete .npz file"))
    try:
        with np.load(p, allow_pickle=False) as entry:
            return dict(entry)
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise MapFileError(unreadable_message(p, err)) from None


def interrupted(path: Path) -> bool:
    """Whether a commit was left half-done (the file is marked as being applied, or a redo log
    newer than the file waits), which a writer, or `recover`, finishes first."""
    try:
        record = read_record(path)
    except (BadRecord, OSError):
        return True
    if record is not None and record.state == APPLYING:
        return True
    log = redo.redo_path(journal_dir(path))
    return log.exists() and redo.pending(redo.read(log), record)


class Committer:
    """Journals changes and commits them into the map file (module doc).

    Owns the writer lock for its lifetime (`lock`: one the caller already holds, handed over).
    Opening a map of format 1 upgrades it to format 2 first (`store.legacy`), and a commit a
    killed writer left half-done is finished. Entries are dicts of numpy arrays (`store.entries`).
    """

    def __init__(self, path: Path, lock: WriterLock | None = None):
        self.path = path
        self.jdir = journal_dir(path)
        self.lock = lock if lock is not None else WriterLock(path)
        if not self.lock.held:
            self.lock.acquire()
        try:
            if not path.is_file():
                raise MapFileError(f"map file {str(path)!r} does not exist; create it with 'pylogmap score' or "
                                   "'pylogmap import'.")
            self._format_1 = is_format_1(path)  # upgraded on the first write, not before
            if not self._format_1:
                self._open()
            with read_only(path) as f:
                self.text_hash = str(read_attr(f, "text_set_hash"))
                if self._format_1:
                    self.committed = int(read_attr(f, "commit_seq", 0))
            entries = journal_entries(path)
            self.next_seq = max([self.committed] + [s for s, _ in entries]) + 1
            self._state: FileState | None = None
            self._written: dict[int, dict[str, np.ndarray]] = {}  # entries this writer journalled
            self._unfinished = False  # a commit made (its redo log synced) but not fully applied
            self.last_commit_duration = 0.0
            self.last_commit_end = time.monotonic()
        except BaseException:
            self.lock.release()
            raise

    def _open(self) -> None:
        """Finish a half-done commit, read the record, make or take over the journal folder."""
        if self.jdir.is_dir():
            redo.finish(self.path, self.jdir)
        record = read_record(self.path)
        if record is None or record.state != CLEAN:
            raise MapFileError(
                f"{str(self.path)!r} was left in the middle of a commit and its redo log is missing from "
                f"{self.jdir.name}; restore the file from a copy, or rescore into a new file."
            )
        self.record = record
        self.committed = record.commit_seq
        self._prepare_journal_folder()
        self._finish_pending_marker()

    def _writable(self) -> None:
        """Upgrade a format-1 map before the first change is journalled or committed."""
        if self._format_1:
            upgrade(self.path)
            self._format_1 = False
            self._open()

    @property
    def map_id(self) -> str:
        self._writable()
        return self.record.map_id

    def _prepare_journal_folder(self) -> None:
        """Make the journal folder (marked as this map's), or take over one a killed writer left:
        its half-written entries go; a folder that is not provably pylogmap's is refused."""
        jdir = self.jdir
        if not jdir.exists():
            make_folder(jdir, "journal", self.path, self.map_id)
            return
        if not jdir.is_dir():
            raise MapFileError(f"{str(jdir)!r} is in the way of the journal folder of {self.path.name}; move it away.")
        if not adopt(jdir, "journal", self.path, self.map_id):
            if read_marker(jdir) is None:
                foreign = split(jdir, "journal")[1]
                raise MapFileError(
                    f"{str(jdir)!r} holds files pylogmap did not make ({', '.join(foreign[:3])}); move them out "
                    "of it (or move the folder away), then rerun."
                )
            if not journal_entries(self.path):  # another map's folder without results: this map's now
                write_marker(jdir, "journal", self.path, self.map_id)
        for p in jdir.iterdir():  # entries a killed writer was writing
            if p.name.endswith(".npz.part") and p.name[:12].isdigit():
                p.unlink()

    def _finish_pending_marker(self) -> None:
        """A per-token folder made for this map by a create that was killed just after putting
        the map in place still says "pending": it is this map's."""
        tdir = tokens_dir(self.path)
        marker = read_marker(tdir) if tdir.is_dir() else None
        if marker is not None and marker.get("pending") and marker.get("map_id") == self.map_id:
            write_marker(tdir, "tokens", self.path, self.map_id)

    def journal(self, entry: dict[str, np.ndarray]) -> int:
        """Write one entry durably; returns its sequence number."""
        self._writable()
        seq = self.next_seq
        final = self.jdir / f"{seq:012d}.npz"
        tmp = self.jdir / f"{seq:012d}.npz.part"
        try:
            with open(tmp, "wb") as f:
                entry = dict(entry, text_hash=np.array(self.text_hash), map_id=np.array(self.map_id))
                np.savez(f, **entry)
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
        if sum(a.nbytes for e in self._written.values() for a in e.values()) < _KEEP_BYTES:
            self._written[seq] = entry  # the commit applies it without reading it back
        self.next_seq += 1
        return seq

    def commit(self) -> bool:
        """Write every pending journal entry into the file (module doc). Returns whether
        anything was committed."""
        t0 = time.monotonic()
        entries = journal_entries(self.path)
        if any(s > self.committed for s, _ in entries):
            self._writable()
        for s, p in entries:
            if s <= self.committed:  # already in the file
                p.unlink(missing_ok=True)
        todo = [(s, p) for s, p in entries if s > self.committed]
        if not todo:
            return False
        loaded = [(s, p, self._written.pop(s, None) or load_entry(p)) for s, p in todo]
        try:
            record = self._write(loaded)
        except OSError as err:
            raise MapFileError(
                f"could not commit results into {self.path} ({err.strerror or err}); free disk space or fix the "
                f"file's permissions, then rerun: the results wait in {self.jdir.name} and nothing is lost."
            ) from err
        self.record = record
        self.committed = record.commit_seq
        for _, p in todo:
            p.unlink(missing_ok=True)
        self.last_commit_end = time.monotonic()
        self.last_commit_duration = self.last_commit_end - t0
        return True

    def _write(self, loaded: list[tuple[int, Path, dict[str, np.ndarray]]]) -> CommitRecord:
        if self._unfinished:  # a commit whose applying failed (a full disk?): finish it first
            redo.finish(self.path, self.jdir)
            self.record = read_record(self.path)
            self.committed = self.record.commit_seq
            self._unfinished = False
            loaded = [item for item in loaded if item[0] > self.committed]
            if not loaded:
                return self.record
        fd = os.open(self.path, os.O_RDWR)
        try:
            shadow = ShadowFile(fd, base=os.fstat(fd).st_size)
            changed: set[str] = set()
            try:
                with h5py.File(shadow, "r+", libver=LIBVER) as f:
                    state = self._state if self._state is not None else FileState(f, self.path)
                    self._state = None  # until the commit is made, the cached rows may not be the file's
                    for seq, p, entry in loaded:
                        changed |= apply(f, state, entry, p.name)
                        write_attrs(f, {"commit_seq": seq})
            except (KeyError, ValueError) as err:
                raise MapFileError(f"{str(self.path)!r} is a damaged map file ({err}); restore it from a copy.") from None
            to_seq = loaded[-1][0]
            old = self.record
            record = CommitRecord(
                old.map_id, to_seq, CLEAN,
                rows_rewritten=to_seq if "rows" in changed else old.rows_rewritten,
                map_rewritten=to_seq if "map" in changed else old.map_rewritten,
                annotations_rewritten=to_seq if "annotations" in changed else old.annotations_rewritten,
            )
            os.fsync(fd)  # the appended bytes, before the log that refers to them
            log = redo.Redo(old.map_id, old.commit_seq, to_seq, shadow.size, record, shadow.overlay.regions())
            redo.write(redo.redo_path(self.jdir), log)  # the commit point
            self._unfinished = True
            redo.apply(fd, log)
            self._unfinished = False
            self._state = state
            return record
        finally:
            os.close(fd)

    def close(self) -> None:
        """Remove the redo log, and the journal folder when nothing else is left in it; release
        the lock."""
        try:
            if not self._format_1:
                redo.redo_path(self.jdir).unlink(missing_ok=True)
            if not self._format_1 and self.jdir.is_dir() and belongs_to(self.jdir, self.record.map_id):
                left = [p for p in self.jdir.iterdir() if p.name != MARKER]
                if not left:
                    (self.jdir / MARKER).unlink()
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
    """Finish what a killed writer left (a half-applied commit, journalled results), when no
    writer is alive and we may write."""
    if not path.is_file() or (not journal_entries(path) and not interrupted(path)):
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
