"""Output helpers of the analysis commands: JSON (strict, NaN -> null, full precision) and
plain-text tables whose numbers follow `pylogmap.numbers` (one rule for every command)."""

from __future__ import annotations

import json
import math
import sys
from typing import NamedTuple

import numpy as np

from pylogmap.numbers import format_pm, format_value


class Estimate(NamedTuple):
    """A table cell holding a value with its error (standard error, or spread over seeds),
    written `value ± error` by `pylogmap.numbers.format_pm`; error None: the value alone."""

    value: float
    error: float | None


def to_jsonable(obj):
    """numpy arrays/scalars -> lists/numbers; NaN/inf -> None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def print_json(obj) -> None:
    json.dump(to_jsonable(obj), sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


def print_table(headers: list[str], rows: list[list], file=None) -> None:
    """Left-aligned text columns, right-aligned numbers (and `Estimate` cells)."""
    file = file or sys.stdout
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(headers))]
    numeric = [all(_is_num(r[j]) for r in rows) if rows else False for j in range(len(headers))]
    for k, r in enumerate(cells):
        line = "  ".join(c.rjust(w) if numeric[j] and k else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths)))
        print(line.rstrip(), file=file)
        if k == 0:
            print("  ".join("-" * w for w in widths), file=file)


def _is_num(x) -> bool:
    return isinstance(x, (Estimate, int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _fmt(x) -> str:
    if isinstance(x, Estimate):
        return format_pm(x.value, x.error)
    if isinstance(x, (float, np.floating)):
        return format_value(x)
    return str(x)
