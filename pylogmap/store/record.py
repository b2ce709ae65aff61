"""The commit record: the first 512 bytes of a format-2 map file (the HDF5 user block, which HDF5
itself never reads or writes), saying which commit the file holds and whether one is being applied.

It is how pylogmap proves a file is one of its maps (the magic and a random map id, written before
anything else), how readers notice a newer commit without opening HDF5 (a sequence lock: a reader
reads the record before and after reading data and reads again when it changed), and how they
know whether what they pinned at opening was rewritten since (docs/format.md, "Commit record").

The record is 68 bytes written with one `pwrite` at offset 0: a kill cannot tear it, and a reader
that catches it half-written sees a bad checksum and reads again.
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from pylogmap.store.positional import read_at, write_at

#: Size of the HDF5 user block that holds the record (HDF5's smallest).
USERBLOCK = 512
MAGIC = b"PYLOGMAP"
RECORD_VERSION = 1
#: The record's states.
CLEAN, APPLYING, CREATING = 0, 1, 2
_LAYOUT = struct.Struct("<8sII16sQQQQ")
_CRC = struct.Struct("<I")
_NOTE = (b"pylogmap map file, format version 2: these 512 bytes are its commit record, the HDF5 file "
         b"follows (docs/format.md).\n")
_NOTE_AT = 128


@dataclass(frozen=True)
class CommitRecord:
    """What the user block says. `rows_rewritten`, `map_rewritten`, `annotations_rewritten`: the
    last commit that changed existing rows, `/map`, or `/annotations` (appending rows changes none)."""

    map_id: str
    commit_seq: int = 0
    state: int = CLEAN
    rows_rewritten: int = 0
    map_rewritten: int = 0
    annotations_rewritten: int = 0

    def pack(self) -> bytes:
        body = _LAYOUT.pack(MAGIC, RECORD_VERSION, self.state, bytes.fromhex(self.map_id), self.commit_seq,
                            self.rows_rewritten, self.map_rewritten, self.annotations_rewritten)
        return body + _CRC.pack(zlib.crc32(body))

    def rewritten(self, kind: str) -> int:
        """The last commit that rewrote `kind` ("rows", "map", "annotations"); 0 for anything else."""
        return {"rows": self.rows_rewritten, "map": self.map_rewritten,
                "annotations": self.annotations_rewritten}.get(kind, 0)

    def with_state(self, state: int) -> "CommitRecord":
        return replace(self, state=state)


def new_map_id() -> str:
    """A random identity for a new map (32 hex digits)."""
    return uuid.uuid4().hex


def userblock(record: CommitRecord) -> bytes:
    """The whole user block for a new file: the record, then a line saying what the bytes are."""
    block = bytearray(USERBLOCK)
    packed = record.pack()
    block[: len(packed)] = packed
    block[_NOTE_AT:_NOTE_AT + len(_NOTE)] = _NOTE
    return bytes(block)


class BadRecord(Exception):
    """The first bytes carry the magic but not a valid record (being written, or damaged)."""


def parse(data: bytes) -> CommitRecord | None:
    """The record in `data` (the file's first bytes); None when the file has none (format 1, or
    not a pylogmap file); `BadRecord` when the magic is there but the checksum does not match."""
    size = _LAYOUT.size + _CRC.size
    if len(data) < size or data[:8] != MAGIC:
        return None
    body, (crc,) = data[:_LAYOUT.size], _CRC.unpack(data[_LAYOUT.size:size])
    if zlib.crc32(body) != crc:
        raise BadRecord("the commit record's checksum does not match")
    _, version, state, map_id, seq, rows, maps, ann = _LAYOUT.unpack(body)
    if version != RECORD_VERSION:
        raise BadRecord(f"commit record version {version} is not known to this pylogmap")
    return CommitRecord(map_id.hex(), seq, state, rows, maps, ann)


def read_fd(fd: int) -> CommitRecord | None:
    """The record of an open file (see `parse`)."""
    return parse(read_at(fd, _LAYOUT.size + _CRC.size, 0))


def read_record(path: Path) -> CommitRecord | None:
    """The record of the file at `path` (see `parse`)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_fd(fd)
    finally:
        os.close(fd)


def write_fd(fd: int, record: CommitRecord) -> None:
    """Write the record in place: one `pwrite` of 68 bytes at offset 0 (not synced)."""
    write_at(fd, record.pack(), 0)


def is_ours(path: Path) -> bool:
    """Whether the file at `path` starts with a pylogmap commit record (made by pylogmap)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False
