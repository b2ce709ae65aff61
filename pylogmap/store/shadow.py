"""The file HDF5 writes through during a commit, so that a commit never changes a committed byte
before its redo log is durable (`store.redo`).

HDF5 (through h5py's file-object driver) writes a commit as new bytes appended at the end of the
file plus a few changes of existing bytes (object headers, chunk indexes, the last partly filled
chunk, the superblock). `ShadowFile` passes the appended bytes (at or beyond `base`, the size
of the file when the commit began) straight to the file: nothing committed refers to them, so
readers and a kill ignore them. Changes below `base` are kept in memory (an `Overlay`); reads see
them, so HDF5 sees its own writes. The overlay becomes the commit's redo log, which is applied
to the file only once it is on disk.

`ShadowFile.reader` is the read-only form, which readers use: the file as it is, or seen through
the redo log of a commit being applied, which is what that commit makes. Every pylogmap handle
goes through its own file object, so HDF5 never shares one handle's cached metadata with another
in the same process (it does for files opened by name), which would be stale after a commit
in place. `read_only(path)` opens a file that way.
"""

from __future__ import annotations

import bisect
import io
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py

from pylogmap.store.positional import read_at, write_at


class Overlay:
    """Bytes at file offsets, as non-overlapping sorted intervals; a later write wins."""

    def __init__(self, regions: Iterable[tuple[int, bytes]] = ()):
        self._starts: list[int] = []
        self._data: dict[int, bytearray] = {}
        for offset, data in regions:
            self.write(offset, data)

    def write(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if end == offset:
            return
        i = bisect.bisect_left(self._starts, end)
        lo, merged = offset, []
        while i > 0:  # intervals that overlap [offset, end) (touching ones stay apart: one per HDF5 object)
            start = self._starts[i - 1]
            if start + len(self._data[start]) <= offset:
                break
            merged.append(start)
            i -= 1
        if merged:
            lo = min(offset, merged[-1])
            hi = max(end, max(s + len(self._data[s]) for s in merged))
            buf = bytearray(hi - lo)
            for s in merged:
                old = self._data.pop(s)
                buf[s - lo:s - lo + len(old)] = old
            del self._starts[i:i + len(merged)]
            buf[offset - lo:end - lo] = data
        else:
            buf = bytearray(data)
        self._starts.insert(i, lo)
        self._data[lo] = buf

    def patch(self, offset: int, buf: memoryview) -> None:
        """Lay the intervals that overlap `[offset, offset + len(buf))` over `buf`."""
        end = offset + len(buf)
        i = bisect.bisect_right(self._starts, offset) - 1
        i = max(i, 0)
        while i < len(self._starts) and self._starts[i] < end:
            start = self._starts[i]
            data = self._data[start]
            lo, hi = max(offset, start), min(end, start + len(data))
            if lo < hi:
                buf[lo - offset:hi - offset] = data[lo - start:hi - start]
            i += 1

    def regions(self) -> list[tuple[int, bytes]]:
        """The intervals in file order."""
        return [(s, bytes(self._data[s])) for s in self._starts]

    @property
    def nbytes(self) -> int:
        return sum(len(d) for d in self._data.values())

    def __len__(self) -> int:
        return len(self._starts)


class ShadowFile(io.RawIOBase):
    """A file object for `h5py.File` over the open file `fd`: writes at or beyond `base` go to the
    file, writes below it to `overlay`. `size` is the size HDF5 sees (it starts as the file's size,
    or as `size` when given: 0 while HDF5 creates a file behind a user block already written)."""

    def __init__(self, fd: int, base: int, *, size: int | None = None, overlay: Overlay | None = None,
                 writable: bool = True):
        super().__init__()
        self.fd = fd
        self.base = base
        self.overlay = overlay if overlay is not None else Overlay()
        self.size = os.fstat(fd).st_size if size is None else size
        self._writable = writable
        self._pos = 0
        self.appended = 0

    @classmethod
    def reader(cls, fd: int, regions: Iterable[tuple[int, bytes]], size: int) -> "ShadowFile":
        """A read-only view of the file with `regions` laid over it, `size` bytes long."""
        return cls(fd, base=size, size=size, overlay=Overlay(regions), writable=False)

    # -- the file-object protocol h5py's driver uses ----------------------------------------------
    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return self._writable

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self.size + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self.size - self._pos))
        if n:
            got = read_at(self.fd, n, self._pos)
            view[:len(got)] = got
            if len(got) < n:
                view[len(got):n] = bytes(n - len(got))
            self.overlay.patch(self._pos, view[:n])
        self._pos += n
        return n

    def write(self, data) -> int:
        if not self._writable:
            raise OSError("this view of the map file is read-only")
        view = memoryview(data).cast("B")
        n = len(view)
        lo, hi = self._pos, self._pos + n
        if lo < self.base:
            cut = min(hi, self.base)
            self.overlay.write(lo, bytes(view[:cut - lo]))
            view, lo = view[cut - lo:], cut
        if len(view):
            write_at(self.fd, view, lo)
            self.appended += len(view)
        self._pos = hi
        self.size = max(self.size, hi)
        return n

    def truncate(self, size: int | None = None) -> int:
        if not self._writable:
            raise OSError("this view of the map file is read-only")
        size = self._pos if size is None else size
        if size >= self.base:
            os.ftruncate(self.fd, size)
        self.size = size
        return size

    def flush(self) -> None:
        pass



@contextmanager
def read_only(path: Path) -> Iterator[h5py.File]:
    """The file at `path` opened read-only by HDF5 through its own file object."""
    fd = os.open(path, os.O_RDONLY)
    try:
        with h5py.File(ShadowFile.reader(fd, (), os.fstat(fd).st_size), "r") as f:
            yield f
    finally:
        os.close(fd)
