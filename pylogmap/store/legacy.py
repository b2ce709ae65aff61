"""Maps of format version 1 (pylogmap 0.1): they read as they are; the first write upgrades them.

A format-1 file has the same groups and datasets as format 2 but no commit record: its writers
replaced the whole file at every commit. `MapFile` reads one as it is (nothing in it changes in
place, so a reader needs no checks). A writer (`store.journal.Committer`) first upgrades it with
`upgrade`: every object is copied (H5Ocopy, so datasets keep their chunks, filters and
attributes) into a new format-2 file behind a commit record, which replaces the old one by rename
- one copy, once, and readers of the old file keep reading it.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from pylogmap.errors import MapFileError
from pylogmap.files.durable import fsync_dir
from pylogmap.store.attrs import read_attr, write_attrs
from pylogmap.store.record import CommitRecord, is_ours, new_map_id
from pylogmap.store.schema import FORMAT_VERSION, building
from pylogmap.store.shadow import read_only
from pylogmap.store.sidefiles import tmp_path


def is_format_1(path: Path) -> bool:
    """Whether the map at `path` is of format version 1 (no commit record; format_version 1)."""
    if is_ours(path):
        return False
    with read_only(path) as f:
        return int(read_attr(f, "format_version", 0)) == 1


def clear_tmp(tmp: Path) -> None:
    """Remove a new file a killed pylogmap left half built at `tmp`; anything else there is not
    ours to delete, and is in the way."""
    if not os.path.lexists(tmp):
        return
    if tmp.is_file() and is_ours(tmp):
        tmp.unlink()
        return
    raise MapFileError(f"{str(tmp)!r} is in the way and was not made by pylogmap; move it away, then rerun.")


def upgrade(path: Path) -> None:
    """Rewrite the format-1 map at `path` as format 2 (the caller holds the writer lock)."""
    tmp = tmp_path(path)
    clear_tmp(tmp)
    with read_only(path) as src:
        map_id = new_map_id()
        with building(tmp, CommitRecord(map_id, int(read_attr(src, "commit_seq", 0)))) as dst:
            for name in src:
                src.copy(src[name], dst, name=name)
            for name in src.attrs:  # as stored (an old file's attributes read as they always did)
                aid = h5py.h5a.open(src.id, name.encode())
                dst.attrs.create(name, src.attrs[name], shape=aid.shape, dtype=aid.dtype)
            write_attrs(dst, {"format_version": FORMAT_VERSION, "map_id": map_id})
    os.replace(tmp, path)
    fsync_dir(path.parent)
