"""Reads and writes of an open file at a given offset (`os.pread` / `os.pwrite` where the system
has them, seek and read or write elsewhere), always whole: a short count is continued."""

from __future__ import annotations

import os

_POSITIONAL = hasattr(os, "pread") and hasattr(os, "pwrite")


def read_at(fd: int, n: int, offset: int) -> bytes:
    """Up to `n` bytes at `offset` (fewer only at the end of the file)."""
    parts = []
    while n > 0:
        if _POSITIONAL:
            chunk = os.pread(fd, n, offset)
        else:
            os.lseek(fd, offset, os.SEEK_SET)
            chunk = os.read(fd, n)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
        offset += len(chunk)
    return b"".join(parts)


def write_at(fd: int, data, offset: int) -> None:
    """All of `data` at `offset`."""
    view = memoryview(data).cast("B")
    while len(view):
        if _POSITIONAL:
            n = os.pwrite(fd, view, offset)
        else:
            os.lseek(fd, offset, os.SEEK_SET)
            n = os.write(fd, view)
        view, offset = view[n:], offset + n
