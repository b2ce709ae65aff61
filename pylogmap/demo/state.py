"""Which map file the demo may replace: the text sets of the maps it made, kept in DIR/demo.json.

The quick and the full demo use the same model names and differ in their text sets, so a full
run after a `--quick` run in the same folder must replace the quick map instead of resuming it.
The demo remembers the text-set hash of every map it scores into `DIR/map.h5` (before scoring,
so that a killed run's map stays its own) and replaces only those; any other file at that path
is refused before any work is done.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from pylogmap.errors import PylogmapError
from pylogmap.store import open_map
from pylogmap.texts import TextSet


def prepare_map_path(map_path: Path, texts: TextSet, state_path: Path, log: Callable[[str], None]) -> bool:
    """Whether scoring must replace `map_path`: only a map the demo itself made for another text
    set (a --quick run before a full one) is replaced; any other foreign file is an error."""
    if not map_path.exists():
        return False
    try:
        with open_map(map_path) as mf:
            existing = mf.text_hash
    except PylogmapError:
        existing = None
    if existing == texts.hash:
        return False
    if existing is not None and existing in remembered_text_hashes(state_path):
        log(f"      {map_path} holds the demo's map of another size; replacing it")
        return True
    raise PylogmapError(
        f"{map_path} exists and is not a map of this demo's text set, so the demo will not overwrite it; "
        f"choose another output folder with -o DIR, or delete {map_path}."
    )


def remembered_text_hashes(state_path: Path) -> list[str]:
    """Text-set hashes of the maps this demo has scored into DIR/map.h5 (DIR/demo.json)."""
    try:
        return list(json.loads(state_path.read_text()).get("text_hashes", []))
    except (OSError, ValueError, AttributeError):
        return []


def remember_text_hash(state_path: Path, text_hash: str) -> None:
    """Add `text_hash` to DIR/demo.json (written to a temporary file and renamed)."""
    hashes = remembered_text_hashes(state_path)
    if text_hash not in hashes:
        tmp = state_path.with_name(state_path.name + ".tmp")
        tmp.write_text(json.dumps({"text_hashes": hashes + [text_hash]}))
        os.replace(tmp, state_path)
