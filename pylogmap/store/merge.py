"""Merging maps of one text set into one file (`pylogmap merge`, e.g. the shards of a scoring run
split with `pylogmap score --shard I/N`).

- The parts must share the text set (its hash); otherwise the merge refuses, naming both hashes.
- Rows are matched by key (model, revision, layer). A key in several parts with identical rows
  (log-likelihoods, token counts, truncation flags, status: bit for bit) is kept once. Rows that
  differ are a conflict, refused unless `prefer` says which part wins: "first", "last" (in the
  order the parts are given) or a part's path. A failed row gives way to a scored one, as
  everywhere in the store.
- Rows keep their `/models` metadata; their JSON `meta` gains `merged_from` (the part they came
  from), and the file's `merged_from` attribute lists the parts. Annotation columns are merged
  (a row takes the values of the part it came from); per-token files are copied. Derived results
  under `/map` are not: they describe other rows (rerun `pylogmap map`).
- The parts are only read (a part with results not committed yet is refused: they would be
  missed). The output is built beside its name and renamed into place (`store.create`): a kill
  leaves no output, or a complete one; a rerun starts over.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from pylogmap.errors import MapFileError
from pylogmap.store.create import create_map
from pylogmap.store.entries import annotations_entry
from pylogmap.store.json_text import dumps
from pylogmap.store.keys import RowKey
from pylogmap.store.mapfile import MapFile
from pylogmap.store.markers import make_folder, write_marker
from pylogmap.store.schema import MATRICES, MODEL_COLUMNS, FileState, str_array
from pylogmap.store.tokens import tokens_dir, tokens_path

_BLOCK_BYTES = 64 << 20  # rows copied per read, about


@dataclass
class MergeResult:
    """What a merge did: the output, its rows, and what a user should know about them."""

    path: Path
    n_rows: int
    rows_per_part: dict[str, int]
    identical_duplicates: int = 0
    conflicts_resolved: list[str] = field(default_factory=list)
    failed_replaced: list[str] = field(default_factory=list)
    token_files: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Row:
    part: int
    row: int


def _same(parts: list[MapFile], status: list[np.ndarray], a: _Row, b: _Row) -> bool:
    """Whether two rows hold the same result, bit for bit."""
    if status[a.part][a.row] != status[b.part][b.row]:
        return False
    for read in (MapFile.loglik, MapFile.ntokens, MapFile.truncated):
        if read(parts[a.part], a.row).tobytes() != read(parts[b.part], b.row).tobytes():
            return False
    return True


def _winner(parts: list[MapFile], status: list[np.ndarray], names: list[str], key: RowKey, rows: list[_Row],
            prefer: str | None, prefer_part: int | None, result: MergeResult) -> _Row | None:
    """The row that goes into the output for `key`, or None for a conflict nobody settled."""
    if len(rows) == 1:
        return rows[0]
    ok = [r for r in rows if status[r.part][r.row] == "ok"]
    candidates = ok or rows
    if ok and len(ok) < len(rows):
        result.failed_replaced.append(key.label)
    if len(candidates) == 1:
        return candidates[0]
    if all(_same(parts, status, candidates[0], r) for r in candidates[1:]):
        result.identical_duplicates += len(rows) - 1
        return candidates[0]
    if prefer == "first":
        chosen = candidates[0]
    elif prefer == "last":
        chosen = candidates[-1]
    elif prefer_part is not None:
        chosen = next((r for r in candidates if r.part == prefer_part), None)
        if chosen is None:
            return None
    else:
        return None
    result.conflicts_resolved.append(f"{key.label} from {names[chosen.part]}")
    return chosen


def _part_index(prefer: str, paths: list[Path]) -> int:
    for i, p in enumerate(paths):
        if str(p) == prefer or p.name == prefer or (Path(prefer).exists() and p.exists() and os.path.samefile(p, prefer)):
            return i
    raise MapFileError(f"--prefer {prefer!r} is none of the parts ({', '.join(str(p) for p in paths)}); give "
                       "first, last, or one of the part files.")


def _open_part(path: Path) -> MapFile:
    part = MapFile(path, recover=False)  # a merge only reads its parts
    waiting = part.pending_journal()
    if waiting:
        part.close()
        raise MapFileError(
            f"{str(path)!r} has {waiting} finished result(s) not committed yet (a scorer is writing it, or was "
            f"killed); let the scorer finish, or run 'pylogmap info {path}' once to commit them, then merge again."
        )
    return part


def _annotation_columns(parts: list[MapFile], rows: list[list[_Row]], result: MergeResult) -> dict[str, np.ndarray]:
    """The parts' annotation columns over the output rows: for each row, the value of the part
    its result came from, else of the first other part holding that model with a value."""
    tables = [p.annotations() for p in parts]
    names = list(dict.fromkeys(name for t in tables for name in t))
    out: dict[str, np.ndarray] = {}
    for name in names:
        kinds = {t[name].dtype.kind for t in tables if name in t}
        text = "O" in kinds
        if text and len(kinds) > 1:
            result.notes.append(f"annotation {name!r} is text in one part and numbers in another: merged as text.")
        col = np.full(len(rows), "" if text else np.nan, dtype=object if text else np.float64)
        for j, occurrences in enumerate(rows):
            for r in occurrences:
                t = tables[r.part]
                if name not in t:
                    continue
                v = t[name][r.row]
                if isinstance(v, str):
                    missing = v == ""
                else:
                    missing = bool(np.isnan(v))
                    v = f"{v:g}" if text and not missing else v
                if not missing:
                    col[j] = v
                    break
        out[name] = col
    return out


def merge_maps(parts: Sequence[str | os.PathLike], out: str | os.PathLike, *, prefer: str | None = None,
               overwrite: bool = False) -> MergeResult:
    """Merge the map files `parts` (one text set) into a new map `out` (module doc). `prefer`:
    None (conflicting rows are an error), "first", "last", or the path of the part that wins."""
    paths = [Path(p) for p in parts]
    out = Path(out)
    if not paths:
        raise MapFileError("give at least one map file to merge.")
    if os.path.lexists(out) and not overwrite:
        raise MapFileError(f"{str(out)!r} already exists; pass overwrite=True (on the command line --force) to "
                           "replace it, or choose another output file.")
    if len({os.path.abspath(p) for p in paths}) != len(paths):
        raise MapFileError("a part is given twice; give each map file once.")
    for p in paths:
        if out.exists() and p.exists() and os.path.samefile(p, out):
            raise MapFileError(f"the output {str(out)!r} is one of the parts; write the merge to a new file.")
    prefer_part = None
    if prefer is not None and prefer not in ("first", "last"):
        prefer_part = _part_index(prefer, paths)
    opened: list[MapFile] = []
    try:
        for p in paths:
            opened.append(_open_part(p))
        first = opened[0]
        for p, part in zip(paths[1:], opened[1:]):
            if part.text_hash != first.text_hash:
                raise MapFileError(
                    f"{str(p)!r} was scored on another text set than {str(paths[0])!r}: {part.text_hash} vs "
                    f"{first.text_hash}. Only maps of one text set can be merged."
                )
        return _merge(opened, paths, out, prefer, prefer_part, overwrite)
    finally:
        for part in opened:
            part.close()


def _merge(parts: list[MapFile], paths: list[Path], out: Path, prefer: str | None, prefer_part: int | None,
           overwrite: bool) -> MergeResult:
    names = [str(p) for p in paths]
    result = MergeResult(out, 0, {n: 0 for n in names})
    occurrences: dict[RowKey, list[_Row]] = {}
    for i, part in enumerate(parts):
        for r, key in enumerate(part.keys()):
            occurrences.setdefault(key, []).append(_Row(i, r))
    status = [p.status() for p in parts]
    keys, chosen, unsettled = [], [], []
    for key, rows in occurrences.items():
        row = _winner(parts, status, names, key, rows, prefer, prefer_part, result)
        if row is None:
            unsettled.append(f"{key.label} ({', '.join(names[r.part] for r in rows)})")
            continue
        keys.append(key)
        chosen.append(row)
    if unsettled:
        how = (f"--prefer {names[prefer_part]} settles only rows that part holds" if prefer_part is not None
               else "pass --prefer first, --prefer last or --prefer PART to say which part wins")
        raise MapFileError(
            f"{len(unsettled)} model(s) have different results in different parts: {', '.join(unsettled[:5])}"
            f"{' ...' if len(unsettled) > 5 else ''}; {how}."
        )
    for r in chosen:
        result.rows_per_part[names[r.part]] += 1
    result.n_rows = len(chosen)
    if any(p.derived_names() or p.map_attrs() for p in parts):
        result.notes.append(f"derived results (/map) of the parts were not copied; run 'pylogmap map {out}'.")
    tables = [p.models_table() for p in parts]
    annotations = _annotation_columns(
        parts, [[r] + [o for o in occurrences[k] if o is not r] for k, r in zip(keys, chosen)], result)
    provenance = [{"part": n, "map_id": p.map_id or "", "commit_seq": p.commit_seq, "rows": p.n_models}
                  for n, p in zip(names, parts)]

    def populate(f: h5py.File, state: FileState) -> None:
        m = len(chosen)
        for name in MATRICES:
            f[name].resize(m, axis=0)
        for col in MODEL_COLUMNS:
            values = [tables[r.part][col][r.row] for r in chosen]
            if col == "meta":
                values = [dumps({**json.loads(v), "merged_from": names[r.part]}) for v, r in zip(values, chosen)]
            ds = f["models"][col]
            ds.resize((m,))
            ds[...] = str_array(values) if MODEL_COLUMNS[col][0] == "str" else np.asarray(values, dtype=ds.dtype)
        _copy_rows(f, parts, chosen)
        state.m = m
        state.rows = {k: i for i, k in enumerate(keys)}

    copied = [0]

    def copy_tokens(map_id: str) -> None:
        todo = [(k, r) for k, r in zip(keys, chosen) if tokens_path(paths[r.part], k).exists()]
        if not todo:
            return
        make_folder(tokens_dir(out), "tokens", out, map_id, pending=True)
        for k, r in todo:
            shutil.copyfile(tokens_path(paths[r.part], k), tokens_path(out, k))
        copied[0] = len(todo)

    map_id = create_map(out, parts[0].texts(), overwrite=overwrite, lock=None,
                        annotations=annotations_entry(annotations, len(chosen)) if annotations else None,
                        attrs={"merged_from": provenance, "merge_prefer": prefer or ""},
                        populate=populate, before_publish=copy_tokens)
    if copied[0]:
        write_marker(tokens_dir(out), "tokens", out, map_id)  # the map is in place: no longer pending
    result.token_files = copied[0]
    return result


def _copy_rows(f: h5py.File, parts: list[MapFile], chosen: list[_Row]) -> None:
    """Copy the chosen rows of every matrix, part by part, in blocks of about 64 MiB."""
    n = parts[0].n_texts
    block = max(1, _BLOCK_BYTES // (n * 4))
    dest = np.arange(len(chosen))
    src_part = np.array([r.part for r in chosen])
    src_row = np.array([r.row for r in chosen])
    for i, part in enumerate(parts):
        mine = np.flatnonzero(src_part == i)
        for lo in range(0, len(mine), block):
            sel = mine[lo:lo + block]
            rows = src_row[sel]
            for name, read in zip(MATRICES, (part.loglik, part.ntokens, part.truncated)):
                data = read(rows)
                ds = f[name]
                runs = np.split(np.arange(len(sel)), np.flatnonzero(np.diff(dest[sel]) != 1) + 1)
                for run in runs:
                    ds[int(dest[sel[run[0]]]):int(dest[sel[run[-1]]]) + 1] = data[run]
