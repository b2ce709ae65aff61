"""JSON lines files: the records of a `.jsonl` file, or of one compressed with zstandard, by line.

One record is one JSON object on one line; blank lines are skipped. A line that is not UTF-8,
not JSON or not an object stops the reading with an error that names the file and the line, so
a user can go straight to it. `.jsonl.zst` files (the Pile's shards, several zstandard frames in
a row) are read as a stream and need the optional `zstandard` module.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

from pylogmap.errors import PylogmapError
from pylogmap.files.plaintext import decoded_lines

#: Names read as JSON lines; any of them may be followed by `.zst` (zstandard-compressed).
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def is_jsonl(path: str | os.PathLike) -> bool:
    """Whether `path` is read as JSON lines: a name ending in .jsonl, .ndjson, .json or .zst."""
    name = Path(path).name
    return name.endswith(JSONL_SUFFIXES) or name.endswith(".zst")


def iter_jsonl(path: str | os.PathLike, *, error: type[PylogmapError] = PylogmapError) -> Iterator[tuple[int, dict]]:
    """(1-based line number, record) of every non-blank line of a JSON lines file.

    A name ending in `.zst` is decompressed on the fly. Raises `error` (the caller's error class)
    naming the file and the line for a line that is not UTF-8, not valid JSON or not a JSON object,
    and for a compressed file when `zstandard` is not installed.
    """
    path = Path(path)
    with _open(path, error) as stream:
        for lineno, line in decoded_lines(stream, str(path), error=error):
            if not line.strip():
                continue
            where = f"{path}, line {lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{where}: not valid JSON ({err.msg} at column {err.colno}); fix or remove the line.") from None
            if not isinstance(record, dict):
                raise error(f"{where}: expected a JSON object (one per line), got {type(record).__name__}.")
            yield lineno, record


def _open(path: Path, error: type[PylogmapError]):
    """A binary line stream over `path`, decompressed when its name ends in `.zst`."""
    if not path.name.endswith(".zst"):
        return open(path, "rb")
    try:
        import zstandard
    except ImportError:
        raise error(
            f"{path} is zstandard-compressed and the 'zstandard' module is not installed; "
            "run 'pip install zstandard' or decompress it first ('zstd -d FILE')."
        ) from None
    raw = open(path, "rb")
    reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
    return io.BufferedReader(reader)
