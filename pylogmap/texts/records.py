"""What a JSON record of a text set or a corpus holds: its text and where the text came from.

One reading for every place a record is met (a text-set file, a corpus file, a document passed
to `make_texts`), so that a field means the same thing everywhere.
"""

from __future__ import annotations

from pylogmap.errors import TextSetError

#: Fields naming a record's source, in the order they are looked for (`meta.pile_set_name` last).
SOURCE_FIELDS = ("pile_set_name", "source")


def record_text(record: dict, where: str) -> str:
    """The record's `text` field; `TextSetError` naming `where` when it is missing or not a string."""
    if "text" not in record:
        raise TextSetError(f"{where}: no 'text' field (fields: {', '.join(sorted(record)) or 'none'}); every line needs one.")
    text = record["text"]
    if not isinstance(text, str):
        raise TextSetError(f"{where}: 'text' is a {type(text).__name__}, not a string.")
    return text


def record_source(record: dict) -> str:
    """The record's source: `pile_set_name`, else `source`, else `meta.pile_set_name` (as in the
    Pile), else ""."""
    for key in SOURCE_FIELDS:
        if isinstance(record.get(key), str):
            return record[key]
    meta = record.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("pile_set_name"), str):
        return meta["pile_set_name"]
    return ""
