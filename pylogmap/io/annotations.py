"""Per-model annotations from user tables: attach columns of a CSV to the rows of a map.

The table is read by `pylogmap.files.read_table` (CSV or TSV with a header row); ``match_table``
aligns it to the rows of a map by model name or label (the store's row-lookup rule). Columns whose
non-missing values all parse as numbers are numeric (float64, NaN = missing); any other column is
categorical (str, "" = missing), as `pylogmap.files.typed_column` decides.
``set_default_families`` stores the default colour classes (`pylogmap.mapping.families`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pylogmap.errors import PylogmapError
from pylogmap.files import read_table, typed_column
from pylogmap.mapping.families import default_families
from pylogmap.store import RowLookup, open_map

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


def match_table(columns: dict[str, list[str]], key: str, rows: RowLookup) -> Matched:
    """Align table rows to map rows by ``key``, with the store's row-lookup rule in its "rows of"
    form (`pylogmap.store.lookup`): a model name gives the value to all its revisions, a label to
    its row only; case, ``./`` and trailing separators are forgiven. Map rows not in the table
    get NaN / "".
    """
    if key not in columns:
        raise PylogmapError(
            f"the table has no column {key!r} to match models by; its columns are {', '.join(columns)}. "
            "Pass --key COLUMN."
        )
    keys = [k.strip() for k in columns[key]]
    M = len(rows.keys)
    target: list[list[int]] = []
    unknown: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    duplicates = []
    for k in keys:
        if k in seen:
            duplicates.append(k)
        seen.add(k)
        found = rows.find(k)
        target.append(found)
        if not found and k:
            unknown.append((k, rows.close_labels(k, n=3)))
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
        for value, targets in zip(typed, target):
            for r in targets:
                full[r] = value
                matched.add(r)
        out[col] = full
    if not out:
        raise PylogmapError(f"the table has only the key column {key!r}; add columns to attach (family, size, ...).")
    return Matched(columns=out, matched_rows=len(matched), unknown=unknown, duplicates=duplicates)


def annotate_file(path, table_path, *, key: str = "model") -> Matched:
    """Read a table and attach its columns to the rows of a map file (one atomic commit)."""

    columns = read_table(table_path, what="annotation table").columns
    mf = open_map(path, mode="a")
    try:
        if mf.n_models == 0:
            raise PylogmapError(f"{mf.path.name} has no models yet; score or import models before annotating.")
        matched = match_table(columns, key, mf.lookup())
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

    mf = open_map(path, mode="a")
    try:
        table = mf.models_table()
        fam = default_families(table["name"], table["architecture"])
        if overwrite or "family" not in mf.annotations():
            mf.set_annotations({"family": np.array(fam, dtype=object)})
        return fam
    finally:
        mf.close()
