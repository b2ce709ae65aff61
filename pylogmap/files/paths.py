"""What a path a user gives must be before it is read: an existing file (not a folder)."""

from __future__ import annotations

import os
from pathlib import Path

from pylogmap.errors import PylogmapError


def require_file(path: str | os.PathLike, what: str, hint: str = "") -> Path:
    """`path` as a Path when it is an existing file; else a `PylogmapError` that says whether it
    is missing or a folder. `what` names the file in the message ("scores table"), `hint` (a
    sentence) says what to give instead."""
    path = Path(path)
    if path.is_file():
        return path
    tail = f"; {hint}" if hint else ""
    if path.is_dir():
        raise PylogmapError(f"{what} {str(path)!r} is a folder, not a file{tail}.")
    raise PylogmapError(f"{what} {str(path)!r} does not exist{tail}.")
