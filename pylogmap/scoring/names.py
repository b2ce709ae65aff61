"""Row names of local models: the folder's (or GGUF file's) own name, not the path as typed.

`pylogmap score --models ./runs/my-model` stores the row as `my-model`, with the absolute path in
the row's metadata (`meta.path`), so `pylogmap neighbors map.h5 my-model` finds it and the map
does not depend on where the command ran. For each local model of a run, in this order:

1. a row of the map recorded from the same path (`meta.path`) keeps its name, so a rerun resumes
   (and code that scored a folder and deleted it since still finds its row);
2. a local row named by its path (maps written before clean names) that is the same folder keeps
   its name, for the same reason;
3. otherwise the clean name: the last part of the path, with its parent folder in front when that
   part names only a training step (`run-a/checkpoint-500`: the checkpoints of one run stay one
   trajectory, and two runs stay two); when another model has the name (a row of the map from
   another path, or another model of the run), parent folders are put in front until the names
   differ.

Hub ids and `org/name/file.gguf` keep their spelling. `row_names_in(out, specs)` gives the names
the rows of `specs` have (or will have) in the map file `out`, for code that scores models and then
reads their rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

from pylogmap.store import MapFile, RowKey, split_step

LOCAL_SOURCES = ("directory", "gguf")


def is_local(spec: str) -> bool:
    """Whether `spec` names an existing local folder or file (else it is a hub id)."""
    return Path(os.path.expanduser(spec)).exists()


def local_path(spec: str) -> str:
    """The absolute path a local spec names, links resolved (what `meta.path` records)."""
    return str(Path(os.path.expanduser(spec)).resolve())


def stored_meta(out) -> dict[RowKey, dict]:
    """The JSON metadata of every row of the map file `out`, by key ({} when there is no file)."""
    if not os.path.exists(out):
        return {}
    with MapFile(out, recover=False) as mf:
        metas = mf.models_table()["meta"]
        return {key: json.loads(meta or "{}") for key, meta in zip(mf.keys(), metas)}


def row_names_in(out, specs: Sequence[str]) -> dict[str, str]:
    """`row_names` of `specs` against the rows already in the map file `out`."""
    return row_names(specs, [(key.name, meta) for key, meta in stored_meta(out).items()])


def row_names(specs: Sequence[str], rows: Sequence[tuple[str, Mapping]] = ()) -> dict[str, str]:
    """The row name of every spec (module docstring); `rows`: the map's rows as (name, meta)."""
    out = {spec: spec for spec in specs}
    by_path: dict[str, str] = {}
    legacy: dict[str, str] = {}
    for name, meta in rows:
        if meta.get("path"):
            by_path.setdefault(str(meta["path"]), name)
        elif meta.get("source") in LOCAL_SOURCES and is_local(name):
            legacy.setdefault(local_path(name), name)
    for spec in specs:  # a folder scored before keeps its row, even when it is gone since
        if not is_local(spec) and by_path.get(local_path(spec)):
            out[spec] = by_path[local_path(spec)]
    local = [spec for spec in specs if is_local(spec)]
    if not local:
        return out

    fresh: dict[str, list[str]] = {}  # path -> components of the path as typed (made absolute)
    path_of = {spec: local_path(spec) for spec in local}
    for spec in local:
        path = path_of[spec]
        if path in by_path:
            out[spec] = by_path[path]
        elif path in legacy:
            out[spec] = legacy[path]
        else:
            fresh.setdefault(path, Path(os.path.abspath(os.path.expanduser(spec))).parts[1:] or [path])
    taken = {name for name, _ in rows} | {out[spec] for spec in specs if spec not in path_of} | {
        out[spec] for spec in local if path_of[spec] not in fresh}
    for path, name in _clean_names(fresh, taken).items():
        for spec in local:
            if path_of[spec] == path:
                out[spec] = name
    return out


def _clean_names(parts: dict[str, Sequence[str]], taken: set[str]) -> dict[str, str]:
    """Shortest unique tails of the paths (rule 3 of the module docstring)."""
    depth = {path: 2 if len(p) > 1 and not split_step(p[-1])[0] else 1 for path, p in parts.items()}
    while True:
        names = {path: "/".join(parts[path][-depth[path]:]) for path in parts}
        counts: dict[str, int] = {}
        for name in names.values():
            counts[name] = counts.get(name, 0) + 1
        clash = [path for path, name in names.items()
                 if (name in taken or counts[name] > 1) and depth[path] < len(parts[path])]
        if not clash:
            return names
        for path in clash:
            depth[path] += 1
