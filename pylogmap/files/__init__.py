"""Plain files: what a user hands us (JSON lines, text, CSV, data pickles) read one way each; atomic writes.

May import: the standard library, numpy, zstandard (optional, lazily), `pylogmap.errors`.
"""

from pylogmap.files.atomic import atomic_open, atomic_write, check_target
from pylogmap.files.jsonl import JSONL_SUFFIXES, is_jsonl, iter_jsonl
from pylogmap.files.paths import require_file
from pylogmap.files.pickles import load_data_pickle
from pylogmap.files.plaintext import decode_utf8, iter_lines, read_text, txt_files
from pylogmap.files.tables import MISSING_VALUES, Table, is_missing, parse_number, read_table, typed_column

__all__ = [
    "JSONL_SUFFIXES", "MISSING_VALUES", "Table", "atomic_open", "atomic_write", "check_target", "decode_utf8",
    "is_jsonl", "is_missing", "iter_jsonl", "iter_lines", "load_data_pickle", "parse_number", "read_table", "read_text", "require_file", "txt_files",
    "typed_column",
]
