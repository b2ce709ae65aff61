"""The redo log of a commit: the changes of committed bytes a commit makes, on disk before the
first of them is made, so that a kill at any moment leaves a commit either not made or made.

`OUT.h5.journal/commit.redo` holds the map's id, the commit's sequence numbers, the file's final
size, the commit record to write when done, and the changed byte ranges, under one CRC-32. Once
it is synced it is the commit point: the commit counts as made and `apply` (then, after a kill,
`recover`) writes the ranges in file order, truncates the file and writes the record. Applying
again is harmless, since it writes the same bytes. A log that does not check out (a kill while it
was written) belongs to a commit that was never made: the file below its old end is untouched.
The file is rewritten in place for each commit (so creating it is synced once per writer) and
removed when the writer closes.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from pylogmap.files.durable import fsync_dir
from pylogmap.store.positional import read_at, write_at
from pylogmap.store.record import APPLYING, CLEAN, BadRecord, CommitRecord, parse, read_fd, write_fd

REDO_NAME = "commit.redo"
_MAGIC = b"PYLOGMAP-REDO\0\0\0"
_HEAD = struct.Struct("<16sII16sQQQ68s")
_REGION = struct.Struct("<QQ")
_TAIL = struct.Struct("<IQ")


@dataclass(frozen=True)
class Redo:
    """One commit's changes of committed bytes. `record`: the record the file gets when done."""

    map_id: str
    from_seq: int
    to_seq: int
    final_size: int
    record: CommitRecord
    regions: list[tuple[int, bytes]]

    def pack(self) -> bytes:
        parts = [_HEAD.pack(_MAGIC, 1, len(self.regions), bytes.fromhex(self.map_id), self.from_seq, self.to_seq,
                            self.final_size, self.record.pack())]
        for offset, data in self.regions:
            parts.append(_REGION.pack(offset, len(data)))
            parts.append(data)
        body = b"".join(parts)
        return body + _TAIL.pack(zlib.crc32(body), len(body))


def unpack(data: bytes) -> Redo | None:
    """The log in `data`, or None when it is incomplete or damaged (a commit never made)."""
    if len(data) < _HEAD.size + _TAIL.size or data[:16] != _MAGIC:
        return None
    crc, length = _TAIL.unpack(data[-_TAIL.size:])
    body = data[:-_TAIL.size]
    if length != len(body) or zlib.crc32(body) != crc:
        return None
    _, version, n, map_id, from_seq, to_seq, final_size, rec = _HEAD.unpack(body[:_HEAD.size])
    if version != 1:
        return None
    try:
        record = parse(rec)
    except BadRecord:
        return None
    regions, pos = [], _HEAD.size
    for _ in range(n):
        offset, size = _REGION.unpack(body[pos:pos + _REGION.size])
        pos += _REGION.size
        regions.append((offset, body[pos:pos + size]))
        pos += size
    if pos != len(body) or record is None:
        return None
    return Redo(map_id.hex(), from_seq, to_seq, final_size, record, regions)


def redo_path(journal_dir: Path) -> Path:
    return journal_dir / REDO_NAME


def write(path: Path, redo: Redo) -> None:
    """Write the log durably (the commit point)."""
    created = not path.exists()
    data = redo.pack()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        write_at(fd, data, 0)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)


def read(path: Path) -> Redo | None:
    """The log at `path`; None when there is none or it does not check out."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return unpack(read_at(fd, os.fstat(fd).st_size, 0))
    finally:
        os.close(fd)


#: The order HDF5 objects are written in: the superblock first (it grows the end of the file
#: over the bytes appended, and points to nothing new), then an object before the objects that
#: point to it (raw data and global heaps, chunk indexes and B-trees, object headers).
_LEVELS = [
    (b"\x89HDF",),
    (),  # raw data, global heaps, anything without a signature
    (b"EADB", b"EASB", b"FADB", b"BTLF", b"BTIN", b"TREE", b"FHDB", b"FHIB", b"FSSE", b"SNOD", b"HEAP"),
    (b"EAIB",),
    (b"EAHD", b"FAHD", b"BTHD", b"FRHP", b"FSHD"),
    (b"OCHK",),
    (b"OHDR",),
]


def _level(data: bytes) -> int:
    """Where a changed range goes in the order of writing."""
    return next((i for i, signatures in enumerate(_LEVELS) if data[:4] in signatures), 1)


def write_order(regions: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """The changed ranges in the order they are written into the file (`_LEVELS`, by file offset
    within a level). A commit that only appends rows then leaves, at every point, a file plain
    HDF5 opens and reads in full (tests/test_store_commits.py)."""
    return sorted(regions, key=lambda r: (_level(r[1]), r[0]))


def apply(fd: int, redo: Redo) -> None:
    """Make the commit: mark the file as being applied (readers read through the log), write the
    ranges (`write_order`), set the final size, sync, and write the new record."""
    write_fd(fd, redo.record.with_state(APPLYING))
    for offset, data in write_order(redo.regions):
        write_at(fd, data, offset)
    if os.fstat(fd).st_size != redo.final_size:
        os.ftruncate(fd, redo.final_size)
    os.fsync(fd)
    write_fd(fd, redo.record.with_state(CLEAN))


def pending(redo: Redo | None, record: CommitRecord | None) -> bool:
    """Whether `redo` is a made commit the file does not fully hold yet: newer than the record,
    or the record's own commit while it is still marked as being applied."""
    if redo is None or record is None or redo.map_id != record.map_id:
        return False
    return redo.to_seq > record.commit_seq or (redo.to_seq == record.commit_seq and record.state == APPLYING)


def finish(map_path: Path, journal_dir: Path) -> bool:
    """Finish a commit that a killed writer made but did not finish applying (the caller holds
    the writer lock); returns whether there was one. A log of another map is left alone."""
    path = redo_path(journal_dir)
    redo = read(path)
    fd = os.open(map_path, os.O_RDWR)
    try:
        try:
            record = read_fd(fd)
        except BadRecord:
            record = None
        if record is None and redo is not None:
            record = redo.record.with_state(APPLYING)  # a torn record: the log says what it should become
        done = pending(redo, record)
        if done:
            apply(fd, redo)
    finally:
        os.close(fd)
    if redo is None or done or redo.map_id == (record.map_id if record else None):
        path.unlink(missing_ok=True)
    return done
