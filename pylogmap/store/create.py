"""Creating a map file: refuse to replace one unless asked, then write it under the writer lock,
dropping what belonged to a previous file of the same name (its journal, its per-token folder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from pylogmap.errors import MapFileError
from pylogmap.store.journal import journal_entries
from pylogmap.store.lock import WriterLock
from pylogmap.store.schema import create_file
from pylogmap.store.sidefiles import journal_dir
from pylogmap.store.tokens import tokens_dir
from pylogmap.texts import TextSet


def create_map(path: Path, texts: TextSet, *, overwrite: bool, rows: dict[str, np.ndarray] | None = None,
               annotations: dict[str, np.ndarray] | None = None) -> None:
    """Write a new map for `texts` at `path`, optionally holding rows and annotation columns
    (journal entries from `store.entries`, applied before the file appears)."""
    if not isinstance(texts, TextSet):
        raise MapFileError(f"a map needs a TextSet, got {type(texts).__name__}; use load_texts().")
    if path.exists() and not overwrite:
        raise MapFileError(
            f"{str(path)!r} already exists; pass overwrite=True (on the command line --force) to "
            "replace it, or choose another output file."
        )
    if not path.parent.is_dir():
        raise MapFileError(f"folder {str(path.parent)!r} does not exist; create it first.")
    lock = WriterLock(path)
    lock.acquire()
    try:
        # Results journalled for a previous file under this name belong to it: drop them first
        # (a kill between the two steps must not apply them to the new file).
        for _, p in journal_entries(path):
            p.unlink()
        try:
            journal_dir(path).rmdir()
        except OSError:
            pass
        if tokens_dir(path).is_dir():
            shutil.rmtree(tokens_dir(path))
        create_file(path, texts, rows, annotations)
    finally:
        lock.release()
