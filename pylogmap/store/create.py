"""Creating a map file, as one step under the writer lock: take the lock, then look at what is
there (refusing to replace a map unless asked), build the new file beside it and rename it into
place. What belonged to a map being replaced (its journal, its per-token folder) goes with it,
and only when pylogmap can prove it made it (`store.markers`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pylogmap.errors import MapFileError
from pylogmap.files.durable import fsync_dir
from pylogmap.store.legacy import clear_tmp
from pylogmap.store.lock import WriterLock
from pylogmap.store.markers import may_clear_for_new_map, remove
from pylogmap.store.record import BadRecord, CommitRecord, new_map_id, read_record
from pylogmap.store.schema import FileState, building, new_file
from pylogmap.store.sidefiles import journal_dir, tmp_path
from pylogmap.store.tokens import tokens_dir
from pylogmap.texts import TextSet


def _id_of(path: Path) -> str | None:
    """The id of the map at `path` (None for a format-1 map, or a file that is not one)."""
    try:
        record = read_record(path)
    except (BadRecord, OSError):
        return None
    return record.map_id if record is not None else None


def create_map(path: Path, texts: TextSet, *, overwrite: bool, rows: dict[str, np.ndarray] | None = None,
               annotations: dict[str, np.ndarray] | None = None, lock: WriterLock | None = None,
               attrs: dict[str, Any] | None = None,
               populate: Callable[[h5py.File, FileState], None] | None = None,
               before_publish: Callable[[str], None] | None = None) -> str:
    """Write a new map for `texts` at `path`, optionally holding rows and annotation columns
    (journal entries from `store.entries`, applied before the file appears), root attributes
    `attrs`, or rows written by `populate(f, state)`. Returns the new map's id.

    `lock`: the writer lock when the caller already holds it (kept held); otherwise it is taken
    and released here. `before_publish(map_id)` runs after the file is complete and before it is
    renamed into place (a merge copies per-token files then)."""
    if not isinstance(texts, TextSet):
        raise MapFileError(f"a map needs a TextSet, got {type(texts).__name__}; use load_texts().")
    if not path.parent.is_dir():
        raise MapFileError(f"folder {str(path.parent)!r} does not exist; create it first.")
    own_lock = lock is None
    if own_lock:
        lock = WriterLock(path)
        lock.acquire()
    try:
        # Decided under the lock: two creators of one file cannot both see it missing.
        if os.path.lexists(path) and not overwrite:
            raise MapFileError(
                f"{str(path)!r} already exists; pass overwrite=True (on the command line --force, for import --overwrite) to "
                "replace it, or choose another output file."
            )
        if path.is_dir():
            raise MapFileError(f"{str(path)!r} is a folder, not a map file; choose another output file.")
        replacing = _id_of(path) if path.exists() else None
        tmp = tmp_path(path)
        clear_tmp(tmp)
        # Results journalled for a previous map of this name, and its per-token values, belong to
        # it: they go first (a kill between the two steps must not apply them to the new file),
        # once both folders are known to be deletable (a refusal must not leave the old map
        # without its journal).
        side = [(journal_dir(path), "journal"), (tokens_dir(path), "tokens")]
        doomed = [(folder, kind) for folder, kind in side
                  if may_clear_for_new_map(folder, kind, path, replacing=replacing, overwrite=overwrite)]
        for folder, kind in doomed:
            remove(folder, kind)
        map_id = new_map_id()
        with building(tmp, CommitRecord(map_id)) as f:
            new_file(f, texts, map_id, rows, annotations, attrs, populate)
        if before_publish is not None:
            try:
                before_publish(map_id)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        os.replace(tmp, path)
        fsync_dir(path.parent)
        return map_id
    finally:
        if own_lock:
            lock.release()
