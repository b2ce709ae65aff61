"""Names of the files a map `OUT.h5` keeps beside itself while it is written: the journal folder,
the commit being built, and the writer lock (docs/format.md, "Files next to the map")."""

from __future__ import annotations

from pathlib import Path


def journal_dir(path: Path) -> Path:
    """`OUT.h5.journal/`: finished results not committed yet."""
    return path.with_name(path.name + ".journal")


def commit_tmp_path(path: Path) -> Path:
    """`OUT.h5.tmp`: the next commit (or a new file) being built."""
    return path.with_name(path.name + ".tmp")


def lock_path(path: Path) -> Path:
    """`OUT.h5.lock`: the single writer's lock; it holds the writer's pid."""
    return path.with_name(path.name + ".lock")
