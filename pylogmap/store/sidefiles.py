"""Names of the files a map `OUT.h5` keeps beside itself: the journal folder, a new file being
built, and the writer lock (docs/format.md, "Files next to the map")."""

from __future__ import annotations

from pathlib import Path


def journal_dir(path: Path) -> Path:
    """`OUT.h5.journal/`: finished results not committed yet, and the redo log of a commit."""
    return path.with_name(path.name + ".journal")


def tmp_path(path: Path) -> Path:
    """`OUT.h5.tmp`: a new file being built (a new map, a merge, an upgrade from format 1)."""
    return path.with_name(path.name + ".tmp")


def lock_path(path: Path) -> Path:
    """`OUT.h5.lock`: the single writer's lock; it holds the writer's pid."""
    return path.with_name(path.name + ".lock")
