"""Plain UTF-8 text files: numbered lines, whole files and the .txt files of a folder.

Every reader here decodes bytes itself, so that bytes which are not UTF-8 are reported with the
file and the line they are on instead of a bare `UnicodeDecodeError`. The error class is the
caller's (`TextSetError` for text sets and corpora), so the message reaches the user as an error
of the thing they were reading.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from pylogmap.errors import PylogmapError


def decode_utf8(data: bytes, where: str, *, error: type[PylogmapError] = PylogmapError) -> str:
    """`data` decoded as UTF-8; `error` naming `where` and the bad bytes when it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(
            f"{where}: bytes that are not valid UTF-8 (at byte {err.start}: {data[err.start:err.start + 4]!r}); "
            "re-encode the file as UTF-8."
        ) from None


def decoded_lines(
    stream: Iterable[bytes], where: str, *, error: type[PylogmapError] = PylogmapError
) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line ending) of a binary line stream."""
    for lineno, raw in enumerate(stream, start=1):
        yield lineno, decode_utf8(raw.rstrip(b"\n").rstrip(b"\r"), f"{where}, line {lineno}", error=error)


def iter_lines(path: str | os.PathLike, *, error: type[PylogmapError] = PylogmapError) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line ending) of a UTF-8 text file, blank lines included."""
    path = Path(path)
    with open(path, "rb") as f:
        yield from decoded_lines(f, str(path), error=error)


def read_text(path: str | os.PathLike, *, error: type[PylogmapError] = PylogmapError) -> str:
    """The whole of a UTF-8 text file, as it is (line endings kept)."""
    path = Path(path)
    return decode_utf8(path.read_bytes(), str(path), error=error)


def txt_files(folder: str | os.PathLike) -> list[Path]:
    """The `.txt` files under `folder`, subfolders included, sorted by path (a stable order)."""
    return sorted(p for p in Path(folder).rglob("*.txt") if p.is_file())
