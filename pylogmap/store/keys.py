"""Row identity: the key (model name, revision, logit-lens layer) of a map row and its display label."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from pylogmap.errors import MapFileError


class RowKey(NamedTuple):
    """Identity of a row: (model name as given, revision, logit-lens layer; -1 = own output)."""

    name: str
    revision: str = ""
    layer: int = -1

    @property
    def label(self) -> str:
        """Display label: `name`, `name@revision`, `name#L<layer>`, or `name@revision#L<layer>`."""
        out = self.name
        if self.revision:
            out += f"@{self.revision}"
        if self.layer >= 0:
            out += f"#L{self.layer}"
        return out


def as_key(key: Any) -> RowKey:
    """A `RowKey` from a RowKey, a (name[, revision[, layer]]) tuple, or a plain name."""
    if type(key) is str and key:  # the common case, fast (bulk imports of 100k rows)
        return RowKey(key)
    if isinstance(key, RowKey):
        k = key
    elif isinstance(key, str):
        k = RowKey(key)
    elif isinstance(key, (tuple, list)) and 1 <= len(key) <= 3:
        k = RowKey(*key)
    else:
        raise MapFileError(f"cannot use {key!r} as a row key; give a name or (name, revision, layer).")
    if not isinstance(k.name, str) or not k.name:
        raise MapFileError(f"row key {key!r} has no model name; every row needs a non-empty name.")
    revision = "" if k.revision is None else k.revision
    if not isinstance(revision, str):
        raise MapFileError(f"row key {key!r}: revision must be a string.")
    try:
        layer = int(k.layer)
    except (TypeError, ValueError):
        raise MapFileError(f"row key {key!r}: layer must be an integer (-1 = the model's output).") from None
    return RowKey(k.name, revision, layer)


def unique_labels(keys: Iterable[RowKey]) -> list[str]:
    """One display label per row, unique: in the rare case two keys give the same label, later
    rows get a ` (2)`, ` (3)` suffix."""
    seen: dict[str, int] = {}
    out = []
    for key in keys:
        label = key.label
        if label in seen:
            seen[label] += 1
            label = f"{label} ({seen[label]})"
        else:
            seen[label] = 1
        out.append(label)
    return out
