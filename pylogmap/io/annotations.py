"""Per-model annotations from user tables: attach columns of a CSV to the rows of a map.

The table is read by `pylogmap.files.read_table` (CSV or TSV with a header row); ``match_table``
aligns it to the rows of a map by model name or label. Columns whose non-missing values all parse
as numbers are numeric (float64, NaN = missing); any other column is categorical (str, "" =
missing), as `pylogmap.files.typed_column` decides.
``set_default_families`` stores the default colour classes (`pylogmap.mapping.families`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pylogmap.errors import PylogmapError
from pylogmap.files import read_table, typed_column
from pylogmap.mapping.families import default_families
from pylogmap.store import open_map

@dataclass
class Matched:
    """A table aligned to the rows of a map."""

    columns: dict[str, np.ndarray]
    matched_rows: int
    unknown: list[tuple[str, list[str]]] = field(default_factory=list)  # (name, suggestions)
    duplicates: list[str] = field(default_factory=list)

    def report(self) -> str:
        lines = [f"{self.matched_rows} map row(s) annotated with {len(self.columns)} column(s): "
                 + ", ".join(f"{k} ({'numeric' if v.dtype.kind == 'f' else 'categorical'})" for k, v in self.columns.items())]
        for name, close in self.unknown[:20]:
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            lines.append(f"  not in the map: {name}{hint}")
        if len(self.unknown) > 20:
            lines.append(f"  ... and {len(self.unknown) - 20} more names not in the map")
        for name in self.duplicates[:10]:
            lines.append(f"  listed more than once (last one kept): {name}")
        return "\n".join(lines)


def match_table(columns: dict[str, list[str]], key: str, labels: Sequence[str], names: Sequence[str]) -> Matched:
    """Align table rows to map rows by ``key`` (exact label, then model name, then case-folded).

    A model name with several rows (revisions, layers) gives the value to all of them; a label
    gives it to its row only. Map rows not in the table get NaN / "".
    """
    if key not in columns:
        raise PylogmapError(
            f"the table has no column {key!r} to match models by; its columns are {', '.join(columns)}. "
            "Pass --key COLUMN."
        )
    keys = [k.strip() for k in columns[key]]
    M = len(labels)
    by_label = {lab: i for i, lab in enumerate(labels)}
    by_name: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        by_name.setdefault(n, []).append(i)
    folded: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        folded.setdefault(lab.casefold(), []).append(i)
    for i, n in enumerate(names):
        if i not in folded.get(n.casefold(), []):
            folded.setdefault(n.casefold(), []).append(i)
    target: list[list[int]] = []
    unknown: list[tuple[str, list[str]]] = []
    seen: dict[str, int] = {}
    duplicates = []
    candidates = sorted(set(labels) | set(names))
    for k in keys:
        if k in seen:
            duplicates.append(k)
        seen[k] = 1
        if k in by_label:
            target.append([by_label[k]])
        elif k in by_name:
            target.append(by_name[k])
        elif k.casefold() in folded:
            target.append(folded[k.casefold()])
        else:
            target.append([])
            if k:
                unknown.append((k, difflib.get_close_matches(k, candidates, n=3, cutoff=0.6)))
    out: dict[str, np.ndarray] = {}
    matched = set()
    for col, raw in columns.items():
        if col == key:
            continue
        typed = typed_column(raw)
        if typed.dtype.kind == "f":
            full = np.full(M, np.nan)
        else:
            full = np.array([""] * M, dtype=object)
        for value, rows in zip(typed, target):
            for r in rows:
                full[r] = value
                matched.add(r)
        out[col] = full
    if not out:
        raise PylogmapError(f"the table has only the key column {key!r}; add columns to attach (family, size, ...).")
    return Matched(columns=out, matched_rows=len(matched), unknown=unknown, duplicates=duplicates)


def annotate_file(path, table_path, *, key: str = "model") -> Matched:
    """Read a table and attach its columns to the rows of a map file (one atomic commit)."""

    columns = read_table(table_path, what="annotation table").columns
    mf = open_map(path)
    try:
        if mf.n_models == 0:
            raise PylogmapError(f"{mf.path.name} has no models yet; score or import models before annotating.")
        matched = match_table(columns, key, mf.labels(), mf.model_names())
        if matched.matched_rows == 0:
            raise PylogmapError(
                f"no name in column {key!r} of {Path(table_path).name} matches a model of {mf.path.name}.\n"
                + matched.report()
            )
        mf.set_annotations(matched.columns)
        return matched
    finally:
        mf.close()


def set_default_families(path, *, overwrite: bool = False) -> list[str]:
    """Write the ``family`` annotation from names and architectures (kept if present unless
    ``overwrite``). Returns the families."""

    mf = open_map(path)
    try:
        table = mf.models_table()
        fam = default_families(table["name"], table["architecture"])
        if overwrite or "family" not in mf.annotations():
            mf.set_annotations({"family": np.array(fam, dtype=object)})
        return fam
    finally:
        mf.close()
