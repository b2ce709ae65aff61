"""Per-model annotations from user tables: attach columns of a CSV to the rows of a map.

``read_table(path)`` reads a CSV (or TSV) of per-model columns; ``match_table`` aligns it to the
rows of a map by model name or label (the store's row-lookup rule). Columns whose non-empty values all parse as numbers are
numeric (float64, NaN = missing); any other column is categorical (str, "" = missing).
``set_default_families`` stores the default colour classes (`pylogmap.mapping.families`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pylogmap.errors import PylogmapError
from pylogmap.mapping.families import default_families
from pylogmap.store import RowLookup, open_map

# --------------------------------------------------------------------------------------------
# User tables
# --------------------------------------------------------------------------------------------

_MISSING = {"", "na", "nan", "n/a", "none", "null", "-"}


def _parse_number(value: str):
    """float, NaN for a missing value, None when the value is not a number."""
    v = value.strip()
    if v.lower() in _MISSING:
        return math.nan
    try:
        return float(v)
    except ValueError:
        return None


def typed_column(values: Sequence[str]):
    """float64 array if every non-missing value is a number, else an object array of str."""
    parsed = [_parse_number(v) for v in values]
    if all(p is not None for p in parsed) and any(not math.isnan(p) for p in parsed):
        return np.array(parsed, dtype=np.float64)
    return np.array([("" if v.strip().lower() in _MISSING else v.strip()) for v in values], dtype=object)


def read_table(path) -> tuple[list[str], dict[str, list[str]]]:
    """Read a CSV/TSV with a header row; returns (header, column -> list of raw strings)."""
    path = Path(path)
    if not path.is_file():
        raise PylogmapError(f"annotation table {str(path)!r} does not exist; give a CSV file with a header row.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise PylogmapError(f"{str(path)!r} is not UTF-8 text; save the table as UTF-8 CSV.") from None
    if not text.strip():
        raise PylogmapError(f"{str(path)!r} is empty; it needs a header row and one row per model.")
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    if delimiter == "," and "\t" in text.splitlines()[0] and "," not in text.splitlines()[0]:
        delimiter = "\t"
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header) or any(not h for h in header):
        raise PylogmapError(f"{str(path)!r}: the header has empty or repeated column names: {header}.")
    columns: dict[str, list[str]] = {h: [] for h in header}
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise PylogmapError(
                f"{str(path)!r} line {lineno}: {len(row)} fields, the header has {len(header)}; "
                "quote fields that contain the delimiter."
            )
        for h, cell in zip(header, row):
            columns[h].append(cell)
    return header, columns


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

    _, columns = read_table(table_path)
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
