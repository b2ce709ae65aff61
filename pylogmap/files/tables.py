"""CSV and TSV tables with a header row: named columns of strings, and their numeric typing.

A user's table (per-model annotations, benchmark scores) is read the same way everywhere: UTF-8
(a byte-order mark is allowed), comma-separated, or tab-separated for a `.tsv`/`.tab` file or a
header with tabs and no commas; blank rows are skipped; every row has as many fields as the
header. One set of spellings means "missing" (`MISSING_VALUES`), so a column is numeric or not
for the same reason in every command. The standard library's `csv` module does the parsing.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pylogmap.errors import PylogmapError
from pylogmap.files.paths import require_file

#: Cell values that mean "no value" (compared after stripping spaces, case-insensitive).
MISSING_VALUES = frozenset({"", "na", "nan", "n/a", "none", "null", "-"})


@dataclass(frozen=True)
class Table:
    """A table as read: column name -> raw cells (unstripped strings), in header order.

    `lines[i]` is the line of the file on which data row `i` starts (the header is line 1), for
    error messages about a row.
    """

    path: Path
    columns: dict[str, list[str]]
    lines: list[int]

    @property
    def header(self) -> list[str]:
        """The column names, in the file's order."""
        return list(self.columns)


def read_table(path: str | os.PathLike, *, what: str = "table") -> Table:
    """Read a CSV/TSV file with a header row; `what` names the table in error messages.

    Raises `PylogmapError` for a missing file, a file that is not UTF-8, no header or no data row,
    empty or repeated column names, and a row whose number of fields differs from the header's.
    """
    path = require_file(path, what, "give a CSV file with a header row")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise PylogmapError(f"{what} {str(path)!r} is not UTF-8 text; save it as a UTF-8 CSV.") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(path, text))
    rows: list[tuple[int, list[str]]] = []
    start = 1
    for row in reader:
        if any(cell.strip() for cell in row):
            rows.append((start, row))
        start = reader.line_num + 1
    if not rows:
        raise PylogmapError(f"{what} {str(path)!r} is empty; it needs a header row and one row per model.")
    header = [h.strip() for h in rows[0][1]]
    if len(set(header)) != len(header) or not all(header):
        raise PylogmapError(
            f"{what} {str(path)!r}: the header has empty or repeated column names: {header}; "
            "give every column its own name."
        )
    if len(rows) == 1:
        raise PylogmapError(f"{what} {str(path)!r} has no data rows; it needs a header row and one row per model.")
    columns: dict[str, list[str]] = {h: [] for h in header}
    for lineno, row in rows[1:]:
        if len(row) != len(header):
            raise PylogmapError(
                f"{what} {str(path)!r}, line {lineno}: {len(row)} fields, the header has {len(header)}; "
                "fix the row, and quote fields that contain the delimiter."
            )
        for h, cell in zip(header, row):
            columns[h].append(cell)
    return Table(path=path, columns=columns, lines=[lineno for lineno, _ in rows[1:]])


def _delimiter(path: Path, text: str) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    first = text.split("\n", 1)[0]
    return "\t" if "\t" in first and "," not in first else ","


def is_missing(value: str) -> bool:
    """Whether a cell means "no value" (see `MISSING_VALUES`)."""
    return value.strip().lower() in MISSING_VALUES


def parse_number(value: str) -> float | None:
    """A cell as a float: NaN when it is missing, None when it is not a number."""
    if is_missing(value):
        return math.nan
    try:
        return float(value.strip())
    except ValueError:
        return None


def typed_column(values: Sequence[str]) -> np.ndarray:
    """float64 (NaN = missing) when every non-missing value is a number and one at least is
    present; otherwise an object array of the stripped strings ("" = missing)."""
    parsed = [parse_number(v) for v in values]
    if all(p is not None for p in parsed) and any(not math.isnan(p) for p in parsed):
        return np.array(parsed, dtype=np.float64)
    return np.array([("" if is_missing(v) else v.strip()) for v in values], dtype=object)
