"""The plain-file readers (`pylogmap.files`): JSON lines, plain text, CSV/TSV tables, data pickles,
one way each; and the atomic writer every output goes through."""

from __future__ import annotations

import collections
import errno
import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from pylogmap.errors import PylogmapError, TextSetError, os_error_message
from pylogmap.files import (
    MISSING_VALUES,
    atomic_open,
    atomic_write,
    check_target,
    is_jsonl,
    is_missing,
    iter_jsonl,
    iter_lines,
    load_data_pickle,
    parse_number,
    read_table,
    read_text,
    require_file,
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


# ---------------------------------------------------------------------------------------- data pickles


class _Payload:
    """Unpickling this with `pickle.load` creates `path`: a stand-in for a shell command."""

    def __init__(self, path):
        self.path = Path(path)

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_pickle_that_would_run_code_is_refused_unread(tmp_path):
    marker = tmp_path / "ran"
    crafted = tmp_path / "crafted.pkl"
    crafted.write_bytes(pickle.dumps({"model": _Payload(marker)}))
    with open(crafted, "rb") as f:  # the control: plain pickle.load runs it
        pickle.load(f)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(PylogmapError, match=r"asks to run pathlib\.Path\.touch .*nothing of it ran"):
        load_data_pickle(crafted)
    assert not marker.exists()
    for payload in ((os.system, ("true",)), (eval, ("1",)), (collections.Counter, ())):
        class Reduce:
            def __reduce__(self, payload=payload):
                return payload
        path = tmp_path / "other.pkl"
        path.write_bytes(pickle.dumps([Reduce()]))
        with pytest.raises(PylogmapError, match="refused"):
            load_data_pickle(path)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_data_pickles_of_every_protocol_read_back(tmp_path, protocol):
    data = {"a": np.arange(5, dtype=np.float16), "b": -np.random.default_rng(0).random(4), "c": [np.float64(1.5), 2, "x"],
            "d": collections.OrderedDict(x=np.float32(3)), "e": np.asfortranarray(np.ones((2, 3))), "f": b"raw",
            "g": (None, True, 2.5)}
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    back = load_data_pickle(path)
    assert back["a"].dtype == np.float16 and np.array_equal(back["a"], data["a"])
    assert np.array_equal(back["b"], data["b"]) and np.array_equal(back["e"], data["e"])
    assert back["c"] == data["c"] and back["d"] == data["d"] and back["f"] == b"raw" and back["g"] == data["g"]


def test_broken_pickles_are_one_line_errors(tmp_path):
    with pytest.raises(PylogmapError, match="does not exist"):
        load_data_pickle(tmp_path / "missing.pkl")
    with pytest.raises(PylogmapError, match="is a folder"):
        load_data_pickle(tmp_path)
    (tmp_path / "empty.pkl").write_bytes(b"")
    (tmp_path / "cut.pkl").write_bytes(pickle.dumps({"a": list(range(100))})[:-20])
    (tmp_path / "junk.pkl").write_bytes(bytes(range(256)))
    for name in ("empty.pkl", "cut.pkl", "junk.pkl"):
        with pytest.raises(PylogmapError, match="not a readable pickle") as info:
            load_data_pickle(tmp_path / name)
        assert "\n" not in str(info.value)


def test_require_file(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    assert require_file(tmp_path / "f.txt", "table") == tmp_path / "f.txt"
    with pytest.raises(PylogmapError, match=r"table '.*nope' does not exist; give a CSV"):
        require_file(tmp_path / "nope", "table", "give a CSV")
    with pytest.raises(PylogmapError, match="is a folder, not a file"):
        require_file(tmp_path, "table")


# ---------------------------------------------------------------------------------------- atomic writes


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_replaces_the_target_only_when_complete(tmp_path):
    out = tmp_path / "x.csv"
    out.write_text("old")
    with atomic_open(out) as f:
        f.write("new")
        assert out.read_text() == "old"  # not yet
    assert out.read_text() == "new" and _names(tmp_path) == ["x.csv"]
    with pytest.raises(RuntimeError):
        with atomic_open(out) as f:
            f.write("half")
            raise RuntimeError("a library failed midway")
    assert out.read_text() == "new" and _names(tmp_path) == ["x.csv"]
    with atomic_write(tmp_path / "a.npy", tmp_path / "a.txt") as (t_npy, t_txt):
        assert t_npy.suffix == ".npy" and t_npy.name.startswith(".")
        np.save(t_npy, np.arange(3))
        t_txt.write_text("names")
    assert _names(tmp_path) == ["a.npy", "a.txt", "x.csv"] and np.load(tmp_path / "a.npy").tolist() == [0, 1, 2]
    assert oct((tmp_path / "a.txt").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_check_target_names_the_problem_before_anything_is_written(tmp_path):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    cases = [
        (tmp_path / "nope" / "x.csv", r"folder '.*nope' does not exist; create it first"),
        (tmp_path / "adir", r"is a folder; give the name of a file"),
        (tmp_path / "afile" / "x.csv", r"'.*afile' is a file, not a folder"),
    ]
    for target, message in cases:
        with pytest.raises(PylogmapError, match=message):
            check_target(target)
    with pytest.raises(PylogmapError, match="already exists; pass --overwrite-it to replace it"):
        check_target(tmp_path / "afile", force=False, flag="--overwrite-it")
    assert check_target(tmp_path / "afile") == tmp_path / "afile"
    if Path("/proc").is_dir():
        with pytest.raises(PylogmapError, match="cannot create files in folder '/proc'"):
            check_target("/proc/pylogmap-out.csv")
    assert _names(tmp_path) == ["adir", "afile"]  # the probe file is gone


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only"),
                                         (errno.EACCES, "permission denied")])
def test_an_os_error_while_writing_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, code, words):
    out = tmp_path / "x.jsonl"

    def fail(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(PylogmapError, match=words) as info:
        with atomic_open(out) as f:
            f.write("x")
    assert str(out) in str(info.value) and ".tmp" not in str(info.value)
    assert _names(tmp_path) == []


def test_os_error_messages_name_the_path_and_the_fix():
    cases = {
        errno.ENOENT: "does not exist", errno.EISDIR: "is a folder", errno.ENOTDIR: "is a file, not a folder",
        errno.EROFS: "read-only", errno.EACCES: "permission denied", errno.ENOSPC: "no space left",
        errno.EEXIST: "already exists", errno.ENAMETOOLONG: "too long",
    }
    for code, words in cases.items():
        text = os_error_message(OSError(code, os.strerror(code), "/x/out.h5"))
        assert words in text and "'/x/out.h5'" in text and "\n" not in text
    assert os_error_message(OSError(errno.EIO, "Input/output error"), "/x/y") == "cannot use '/x/y': Input/output error."
    assert "check the paths" in os_error_message(OSError("Unable to open file\n(h5py)"))
