"""Reading a text set from a file: `load_texts`.

What a path holds is decided by its name, the same way as for a corpus (`iter_corpus`):

- JSON lines (`.jsonl`, `.ndjson`, `.json`, or any of these compressed as `.zst`): one text per
  line in a `text` field. The published `texts-10k-pile.jsonl` (`index`, `text`,
  `pile_set_name`, `pile_idx`, `chunk_idx`) is read unchanged; `pile_set_name`, `source` or
  `meta.pile_set_name` becomes the source and every other field is kept in `meta`.
- any other file is plain text with **one text per non-empty line** (`meta = {"line": N}`);
- a folder: **one text per `.txt` file** under it (subfolders included, sorted by path), the way
  to give texts that span several lines.
"""

from __future__ import annotations

import os
from pathlib import Path

from pylogmap.errors import TextSetError
from pylogmap.files import is_jsonl, iter_jsonl, iter_lines, read_text, txt_files
from pylogmap.texts.records import SOURCE_FIELDS, record_source, record_text
from pylogmap.texts.textset import TextSet


def load_texts(path: str | os.PathLike) -> TextSet:
    """Read a text set from a JSON lines file, a plain-text file or a folder of .txt files (see the
    module docstring for what each holds).

    Raises `TextSetError` naming the file and line for a missing file, bad JSON, a missing `text`
    field, an empty text or bytes that are not UTF-8.
    """
    path = Path(path)
    if not path.exists():
        raise TextSetError(f"text set {str(path)!r} does not exist; give a .jsonl, a .txt or a folder of .txt files.")
    if path.is_dir():
        ts = _load_folder(path)
    elif is_jsonl(path):
        ts = _load_jsonl(path)
    else:
        ts = _load_lines(path)
    if len(ts) == 0:
        raise TextSetError(f"text set {str(path)!r} holds no texts; give a file with at least one text.")
    return ts


def _load_jsonl(path: Path) -> TextSet:
    texts, sources, metas = [], [], []
    for lineno, record in iter_jsonl(path, error=TextSetError):
        text = record_text(record, f"{path}, line {lineno}")
        if not text:
            raise TextSetError(f"{path}, line {lineno}: empty text; remove the line (every text must have at least one byte).")
        texts.append(text)
        sources.append(record_source(record))
        metas.append({k: v for k, v in record.items() if k != "text" and k not in SOURCE_FIELDS})
    return TextSet(texts=texts, sources=sources, meta=metas, name=_stem(path))


def _load_lines(path: Path) -> TextSet:
    texts, metas = [], []
    for lineno, line in iter_lines(path, error=TextSetError):
        if line.strip():
            texts.append(line)
            metas.append({"line": lineno})
    return TextSet(texts=texts, sources=[path.name] * len(texts), meta=metas, name=_stem(path))


def _load_folder(path: Path) -> TextSet:
    files = txt_files(path)
    if not files:
        raise TextSetError(f"folder {str(path)!r} has no .txt files; put one text per .txt file in it.")
    texts = []
    for p in files:
        text = read_text(p, error=TextSetError)
        if not text.strip():
            raise TextSetError(f"{p}: empty text file; remove it from the folder.")
        texts.append(text)
    names = [p.relative_to(path).as_posix() for p in files]
    return TextSet(texts=texts, sources=names, meta=[{"file": n} for n in names], name=path.name)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".jsonl.zst", ".jsonl", ".ndjson", ".json", ".txt"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
