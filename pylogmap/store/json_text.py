"""JSON text of the values the store keeps as JSON (row metadata, text-set recipes, attributes):
numpy numbers and arrays and paths become plain JSON, keys sorted, UTF-8 kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def _default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(obj: Any) -> str:
    """`obj` as JSON text (sorted keys, numpy and Path values converted)."""
    return json.dumps(obj, default=_default, ensure_ascii=False, sort_keys=True)
