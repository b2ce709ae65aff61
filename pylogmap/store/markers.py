"""What pylogmap made beside a map, and the proof that it did: the side folders it makes (the
journal `OUT.h5.journal/`, the per-token folder `OUT.tokens/`) get a marker file naming the map
they belong to by its id (docs/format.md, "Files next to the map").

The product deletes a side folder only when it carries a marker, and then only the files of the
names pylogmap gives there: when a new map replaces the map the marker names, when a create was
interrupted before its map appeared (a `pending` marker), or when the user asks for it
(`overwrite=True`, `--force`). A folder without a marker (made by someone else, or by a release
before markers) is never deleted: the user is told to move it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from pylogmap.errors import MapFileError
from pylogmap.files.durable import fsync_dir

MARKER = "pylogmap-folder.json"
#: The names pylogmap gives to the files of each kind of side folder.
NAMES = {
    "journal": re.compile(r"^(\d{12}\.npz(\.part)?|commit\.redo)$"),
    "tokens": re.compile(r"^[0-9a-f]{20}\.h5(\.part)?$"),
}
_WHAT = {"journal": "journal folder", "tokens": "per-token folder"}


def read_marker(folder: Path) -> dict | None:
    """The folder's marker, or None when it has none (or one that is not ours)."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("made_by") != "pylogmap" or data.get("kind") not in NAMES:
        return None
    return data


def write_marker(folder: Path, kind: str, map_path: Path, map_id: str, *, pending: bool = False) -> None:
    """Mark `folder` as the `kind` folder of the map `map_path` (id `map_id`); `pending` while
    the map it belongs to is not in place yet. Written atomically."""
    content = {"made_by": "pylogmap", "kind": kind, "map": map_path.name, "map_id": map_id, "pending": pending}
    tmp = folder / (MARKER + ".part")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(content, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / MARKER)
    fsync_dir(folder)


def make_folder(folder: Path, kind: str, map_path: Path, map_id: str, *, pending: bool = False) -> None:
    """Create the side folder with its marker."""
    folder.mkdir()
    write_marker(folder, kind, map_path, map_id, pending=pending)
    fsync_dir(folder.parent)


def split(folder: Path, kind: str) -> tuple[list[Path], list[str]]:
    """(files of the names pylogmap gives in a `kind` folder, names of anything else)."""
    ours, foreign = [], []
    for p in folder.iterdir():
        if p.name in (MARKER, MARKER + ".part") or (p.is_file() and NAMES[kind].match(p.name)):
            ours.append(p)
        else:
            foreign.append(p.name)
    return ours, sorted(foreign)


def belongs_to(folder: Path, map_id: str | None) -> bool:
    """Whether `folder` carries the marker of the map `map_id`."""
    marker = read_marker(folder)
    return marker is not None and map_id is not None and marker.get("map_id") == map_id


def adopt(folder: Path, kind: str, map_path: Path, map_id: str) -> bool:
    """Mark an existing folder without a marker as the map's when it holds nothing but files of
    the names pylogmap gives there (a folder written by a release before markers); returns
    whether the folder is marked as the map's now."""
    marker = read_marker(folder)
    if marker is not None:
        return marker.get("map_id") == map_id
    if split(folder, kind)[1]:
        return False
    write_marker(folder, kind, map_path, map_id)
    return True


def remove(folder: Path, kind: str) -> None:
    """Delete what pylogmap made in a marked folder, then the folder (the caller has checked it
    holds nothing else)."""
    ours, _ = split(folder, kind)
    for p in sorted(ours, key=lambda q: q.name == MARKER):  # the marker last: a kill leaves it marked
        p.unlink(missing_ok=True)
    folder.rmdir()
    fsync_dir(folder.parent)


def may_clear_for_new_map(folder: Path, kind: str, map_path: Path, *, replacing: str | None,
                          overwrite: bool) -> bool:
    """Before a new map is put at `map_path`: whether its old side folder `folder` is there and
    may go, because pylogmap can prove it made it for the map being replaced (id `replacing`),
    for a create that never finished, or for any map when `overwrite`; otherwise a MapFileError
    saying what to do. Only checks: the caller removes (`remove`) once every folder passed."""
    if not folder.exists():
        return False
    what = _WHAT[kind]
    if not folder.is_dir():
        raise MapFileError(f"{str(folder)!r} is in the way of the {what} of {map_path.name} (it is not a folder); "
                           "move it away, then rerun.")
    marker = read_marker(folder)
    if marker is None:
        raise MapFileError(
            f"{str(folder)!r} was not made by pylogmap for {map_path.name} (it has no {MARKER}), so it is never "
            "deleted, not even with --force (or --overwrite); move it away (or rename it), then rerun."
        )
    foreign = split(folder, kind)[1]
    if foreign:
        raise MapFileError(
            f"{str(folder)!r} holds files pylogmap did not make ({', '.join(foreign[:3])}"
            f"{' ...' if len(foreign) > 3 else ''}); move them out of it, then rerun."
        )
    ours = marker.get("pending") or (replacing is not None and marker.get("map_id") == replacing)
    if not ours and not overwrite:
        raise MapFileError(
            f"{str(folder)!r} is the {what} of another map (id {marker.get('map_id')}), not of a map being replaced; "
            "move it away to keep it, or pass overwrite=True (on the command line --force, for import --overwrite) to delete it."
        )
    return True
