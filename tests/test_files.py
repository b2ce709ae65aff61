"""The plain-file readers (`pylogmap.files`): JSON lines, plain text, CSV/TSV tables, one way each."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pylogmap.errors import PylogmapError, TextSetError
from pylogmap.files import (
    MISSING_VALUES,
    is_jsonl,
    is_missing,
    iter_jsonl,
    iter_lines,
    parse_number,
    read_table,
    read_text,
    txt_files,
    typed_column,
)

# ---------------------------------------------------------------------------------------- JSON lines


def test_jsonl_records_come_with_their_line_numbers(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \n{"b": "\xc3\xa9"}\r\n{"c": [1, 2]}')  # blank lines, CRLF, no final newline
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (4, {"b": "é"}), (5, {"c": [1, 2]})]


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"a": 1}\n{"a": "caf\xe9"}\n', r"r\.jsonl, line 2: bytes that are not valid UTF-8 \(at byte 10"),
        (b'{"a": 1}\n\n{"a": 1,}\n', r"r\.jsonl, line 3: not valid JSON \(.* at column 9\); fix or remove the line"),
        (b'{"a": 1}\n[1, 2]\n', r"r\.jsonl, line 2: expected a JSON object \(one per line\), got list"),
        (b'"text"\n', r"r\.jsonl, line 1: expected a JSON object \(one per line\), got str"),
    ],
)
def test_bad_jsonl_lines_raise_the_callers_error_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "r.jsonl"
    path.write_bytes(content)
    with pytest.raises(TextSetError, match=message):
        list(iter_jsonl(path, error=TextSetError))
    with pytest.raises(PylogmapError, match=message):  # the default error class
        list(iter_jsonl(path))


def test_jsonl_names():
    for name in ("a.jsonl", "a.ndjson", "a.json", "00.jsonl.zst", "a.zst", "dir/a.jsonl"):
        assert is_jsonl(name), name
    for name in ("a.txt", "a.csv", "jsonl", "a.jsonl.txt"):
        assert not is_jsonl(name), name


def test_zstandard_jsonl_of_several_frames(tmp_path):
    path = tmp_path / "c.jsonl.zst"
    lines = [json.dumps({"text": f"doc {i}"}) + "\n" for i in range(3)]
    try:
        import zstandard
    except ImportError:
        path.write_bytes(b"\x28\xb5\x2f\xfd")
        with pytest.raises(TextSetError, match="pip install zstandard"):
            list(iter_jsonl(path, error=TextSetError))
        return
    c = zstandard.ZstdCompressor()
    path.write_bytes(c.compress(lines[0].encode()) + c.compress("".join(lines[1:]).encode()))
    assert [(n, r["text"]) for n, r in iter_jsonl(path)] == [(1, "doc 0"), (2, "doc 1"), (3, "doc 2")]


# ---------------------------------------------------------------------------------------- plain text


def test_plain_text_lines_whole_files_and_folders(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"one\r\n\ntwo \xc3\xbc\nthree")
    assert list(iter_lines(path)) == [(1, "one"), (2, ""), (3, "two ü"), (4, "three")]
    assert read_text(path) == "one\r\n\ntwo ü\nthree"
    path.write_bytes(b"fine\nnot \xff\n")
    with pytest.raises(TextSetError, match=r"t\.txt, line 2: bytes that are not valid UTF-8"):
        list(iter_lines(path, error=TextSetError))
    with pytest.raises(TextSetError, match=r"t\.txt: bytes that are not valid UTF-8 \(at byte 9"):
        read_text(path, error=TextSetError)

    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.txt", "a.txt", "sub/c.txt", "notes.md"):
        (folder / name).write_text(name, encoding="utf-8")
    assert [p.relative_to(folder).as_posix() for p in txt_files(folder)] == ["a.txt", "b.txt", "sub/c.txt"]


# -------------------------------------------------------------------------------------------- tables


def test_csv_table_columns_and_row_lines(tmp_path):
    path = tmp_path / "t.csv"
    # a byte-order mark, spaces around header names, a blank row, a quoted field over two lines
    path.write_text('\ufeffmodel , score\na,1\n\n"b\nsecond line",2\nc,\n', encoding="utf-8")
    table = read_table(path)
    assert table.header == ["model", "score"]
    assert table.columns == {"model": ["a", "b\nsecond line", "c"], "score": ["1", "2", ""]}
    assert table.lines == [2, 4, 6]


@pytest.mark.parametrize("name, text", [("t.tsv", "model\tscore\na\t1\n"), ("t.csv", "model\tscore\na\t1\n")])
def test_tab_separated_tables(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert read_table(path).columns == {"model": ["a"], "score": ["1"]}


@pytest.mark.parametrize(
    "content, message",
    [
        (b"model,score\n\xff,1\n", r"scores table '.*t\.csv' is not UTF-8 text"),
        (b"\n \n", r"scores table '.*t\.csv' is empty; it needs a header row"),
        (b"model,score\n", r"has no data rows"),
        (b"model,score,score\na,1,2\n", r"empty or repeated column names: \['model', 'score', 'score'\]"),
        (b"model,,score\na,1,2\n", r"empty or repeated column names"),
        (b"model,score\na,1\n\nb,2,3\n", r"t\.csv', line 4: 3 fields, the header has 2; .*quote fields"),
    ],
)
def test_bad_tables_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(PylogmapError, match=message):
        read_table(path, what="scores table")


def test_missing_table_file(tmp_path):
    with pytest.raises(PylogmapError, match=r"annotation table '.*nope\.csv' does not exist"):
        read_table(tmp_path / "nope.csv", what="annotation table")


def test_one_set_of_missing_values_and_numeric_typing():
    for value in ("", " ", "NA", "nan", "N/A", "None", "null", "-"):
        assert is_missing(value) and math.isnan(parse_number(value)), value
    assert {"", "na", "nan", "n/a", "none", "null", "-"} == MISSING_VALUES
    assert parse_number(" 1e3 ") == 1000.0 and parse_number("7B") is None

    numeric = typed_column(["1", " 2.5", "NA", ""])
    assert numeric.dtype == np.float64 and numeric[:2].tolist() == [1.0, 2.5] and np.isnan(numeric[2:]).all()
    categorical = typed_column(["7B", " 13 ", "n/a"])
    assert categorical.dtype == object and categorical.tolist() == ["7B", "13", ""]
    assert typed_column(["", "NA"]).tolist() == ["", ""], "a column with no value at all is not numeric"


def test_scores_and_annotation_tables_agree_on_missing_values(tmp_path):
    """`pylogmap predict` and `pylogmap annotate` read one table the same way."""
    from pylogmap.analysis import prediction

    path = tmp_path / "s.tsv"
    path.write_text("model\tARC\tGSM8K\na\tN/A\t3\nb\t50\t-\n", encoding="utf-8")
    ids, cols = prediction.read_scores_csv(path)
    table = read_table(path)
    assert ids == ["a", "b"]
    for name in ("ARC", "GSM8K"):
        np.testing.assert_array_equal(cols[name], typed_column(table.columns[name]))
