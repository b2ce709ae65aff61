"""The documents of a corpus for the recipe (`pylogmap texts make`): `iter_corpus`.

A path is read by its name the same way as a text set is (`load_texts`), with documents where a
text set has texts:

- JSON lines (`.jsonl`, `.ndjson`, `.json`, or any of these compressed as `.zst`, which needs the
  `zstandard` module): one document per line in a `text` field; `meta.pile_set_name` (as in the
  Pile), `pile_set_name` or `source` is its source;
- any other file is plain text with **one document per non-empty line**;
- a folder: **one document per `.txt` file** under it (subfolders included, sorted by path; the
  source is the file's path in the folder), the way to give documents of several lines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from pylogmap.errors import TextSetError
from pylogmap.files import is_jsonl, iter_jsonl, iter_lines, read_text, txt_files
from pylogmap.texts.records import record_source, record_text


def iter_corpus(path: str | os.PathLike, *, max_documents: int | None = None) -> Iterator[dict]:
    """Documents of a corpus as dicts with `text` and `source`, in order (see the module docstring
    for what each kind of path holds). Stops after `max_documents`."""
    path = Path(path)
    if not path.exists():
        raise TextSetError(f"corpus {str(path)!r} does not exist.")
    return islice(_documents(path), max_documents)


def _documents(path: Path) -> Iterator[dict]:
    if path.is_dir():
        files = txt_files(path)
        if not files:
            raise TextSetError(f"folder {str(path)!r} has no .txt files to use as documents.")
        for p in files:
            yield {"text": read_text(p, error=TextSetError), "source": p.relative_to(path).as_posix()}
    elif is_jsonl(path):
        for lineno, record in iter_jsonl(path, error=TextSetError):
            yield {"text": record_text(record, f"{path}, line {lineno}"), "source": record_source(record)}
    else:
        for _, line in iter_lines(path, error=TextSetError):
            if line.strip():
                yield {"text": line, "source": path.name}
