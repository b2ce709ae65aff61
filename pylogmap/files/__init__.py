"""Reading the plain files a user hands us (JSON lines, plain text, CSV tables), one way each.

May import: the standard library, numpy, zstandard (optional, lazily), `pylogmap.errors`.
"""

from pylogmap.files.jsonl import JSONL_SUFFIXES, is_jsonl, iter_jsonl
from pylogmap.files.plaintext import decode_utf8, iter_lines, read_text, txt_files
from pylogmap.files.tables import MISSING_VALUES, Table, is_missing, parse_number, read_table, typed_column

__all__ = [
    "JSONL_SUFFIXES", "MISSING_VALUES", "Table", "decode_utf8", "is_jsonl", "is_missing", "iter_jsonl",
    "iter_lines", "parse_number", "read_table", "read_text", "txt_files", "typed_column",
]
