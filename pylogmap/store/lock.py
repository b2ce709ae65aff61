"""The single-writer lock of a map: an exclusive, non-blocking `filelock` on `OUT.h5.lock`.

- One writer at a time: a second writer (another process, or a second writer in this one) is
  refused at once with a message naming the holder's pid, which the holder writes into the lock
  file when it takes the lock.
- A killed writer never blocks: the lock is the kernel's `flock` (a byte-range lock on Windows),
  dropped when its holder dies; the lock file it leaves behind is simply locked again.
- The lock file is removed on a clean release. On POSIX `filelock` leaves it in place, so it is
  unlinked here while still held; a writer that opened the old file just before sees it unlinked
  and does not take it (filelock checks), and is told to retry, or retries itself when the file is
  already gone.
- The lock file is pylogmap's own: it holds `pylogmap writer <pid>` (or, written by earlier
  releases, the bare pid), or nothing (a writer killed before writing it). A file of that name
  holding anything else is not taken, written or removed: the writer is told to move it.

On Windows the holder's lock covers the pid, so the message cannot name the holder there.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from filelock import FileLock, Timeout

from pylogmap.errors import MapFileError
from pylogmap.store.sidefiles import lock_path

_ATTEMPTS = 20
_CONTENT = re.compile(rb"^(?:pylogmap writer )?(\d*)\s*$")


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"pylogmap writer {os.getpid()}\n".encode())


def lock_file_is_ours(path: Path) -> bool:
    """Whether the file at `path` is absent or a writer lock pylogmap wrote (see the module doc)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return _CONTENT.match(head) is not None


class WriterLock:
    """The writer lock of the map at `map_path`; `acquire()` raises MapFileError when another
    writer holds it."""

    def __init__(self, map_path: Path):
        self.map_path = map_path
        self.path = lock_path(map_path)
        self._lock = FileLock(self.path, timeout=0, thread_local=False, fallback_to_soft=False, on_acquired=_write_pid)

    def acquire(self) -> None:
        if not lock_file_is_ours(self.path):
            raise MapFileError(
                f"{str(self.path)!r} is in the way of the writer lock of {self.map_path.name} and was not made by "
                "pylogmap; move it away, then rerun."
            )
        for _ in range(_ATTEMPTS):
            try:
                self._lock.acquire()
            except Timeout:
                if not self.path.exists():  # its holder released it just now: take it
                    continue
                raise MapFileError(
                    f"another process{self._holder()} is writing {self.map_path.name!r} (lock {self.path}); "
                    "wait for it to finish, or stop it, then rerun: a rerun resumes."
                ) from None
            except OSError as err:
                raise MapFileError(
                    f"cannot write next to {self.map_path} ({err.strerror or err}); writing a map needs a "
                    "writable folder (copy the file somewhere writable)."
                ) from None
            return
        raise MapFileError(f"could not take the writer lock {self.path}; remove it if no pylogmap process is running.")

    def _holder(self) -> str:
        """` (pid N)` from the lock file, or "" when it cannot be read."""
        try:
            with open(self.path, "rb") as f:
                found = _CONTENT.match(f.read(64))
        except OSError:
            return ""
        pid = int(found.group(1) or 0) if found else 0
        return f" (pid {pid})" if pid else ""

    @property
    def held(self) -> bool:
        """Whether this process holds the lock through this object."""
        return self._lock.is_locked

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        if sys.platform != "win32":  # Windows: filelock removes the file after unlocking
            self.path.unlink(missing_ok=True)
        self._lock.release()


def running_writer(map_path: Path) -> str | None:
    """Whether a writer holds the lock of the map now: " (pid N)" (or "" when its pid cannot be
    read) if one does, None if none does or it cannot be told (a read-only folder)."""
    lock = WriterLock(map_path)
    try:
        lock.acquire()
    except MapFileError:
        return lock._holder() if lock.path.exists() else None
    lock.release()
    return None
