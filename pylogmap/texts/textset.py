"""Text sets: load them, build them with the map paper's recipe, identify them by content.

A text set is the fixed list of texts every model of a map is scored on (method.md section 1).
Two text sets are the same exactly when their `hash` is the same; the map file stores the hash so
that scores from different text sets are never mixed.

Readers (`load_texts`):
- the published `texts-10k-pile.jsonl` (`index`, `text`, `pile_set_name`, `pile_idx`, `chunk_idx`),
- any jsonl with a `text` field (an optional `source`/`pile_set_name`/`meta.pile_set_name` becomes
  the source, every other field is kept in `meta`),
- a `.txt` file (one text per non-empty line),
- a folder of `.txt` files (one text per file, sorted by file name).

Builder (`make_texts`): split documents into chunks of at most `max_bytes` UTF-8 bytes without
cutting a character, keep chunks strictly longer than `min_bytes`, `random.seed(seed)`,
`random.sample(chunks, pool_size)`, keep the first `sample_size`. Byte-exact with the published set.

Only the standard library and numpy are used here (the map side never imports torch).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pylogmap.errors import TextSetError

__all__ = [
    "TextSet",
    "load_texts",
    "make_texts",
    "text_set_hash",
    "chunk_document",
    "iter_corpus",
    "DEFAULT_RECIPE",
]

#: The paper's parameters (method.md section 1).
DEFAULT_RECIPE = {"max_bytes": 1024, "min_bytes": 256, "sample_size": 10_000, "pool_size": 40_000, "seed": 42}

_HASH_DOMAIN = b"pylogmap-texts-v1\n"


def text_set_hash(texts: Iterable[str]) -> str:
    """Content hash of an ordered list of texts: ``"sha256:<hex>"``.

    Each text is framed by its UTF-8 length (8-byte little-endian) before its bytes, so the hash is
    unambiguous (``["ab", "c"]`` and ``["a", "bc"]`` differ) and order-sensitive. Only the texts
    count: sources, metadata and the file format do not change the hash.
    """
    h = hashlib.sha256(_HASH_DOMAIN)
    count = 0
    for text in texts:
        data = text.encode("utf-8")
        h.update(struct.pack("<Q", len(data)))
        h.update(data)
        count += 1
    h.update(b"count" + struct.pack("<Q", count))
    return "sha256:" + h.hexdigest()


@dataclass
class TextSet:
    """An ordered list of texts with their byte lengths, sources, metadata and content hash.

    Build one with `TextSet.from_texts`, `load_texts` or `make_texts`; `hash` and `n_bytes` are
    computed from `texts` when not given.
    """

    texts: list[str]
    n_bytes: np.ndarray = None  # type: ignore[assignment]
    sources: list[str] = None  # type: ignore[assignment]
    meta: list[dict] = None  # type: ignore[assignment]
    hash: str = ""
    name: str = ""
    recipe: dict | None = None

    def __post_init__(self) -> None:
        self.texts = list(self.texts)
        n = len(self.texts)
        for i, text in enumerate(self.texts):
            if not isinstance(text, str):
                raise TextSetError(f"text {i} is a {type(text).__name__}, not a str; pass strings.")
            if not text:
                raise TextSetError(f"text {i} is empty; remove empty texts from the text set.")
        if self.n_bytes is None:
            self.n_bytes = np.fromiter((len(t.encode("utf-8")) for t in self.texts), dtype=np.int64, count=n)
        else:
            self.n_bytes = np.asarray(self.n_bytes, dtype=np.int64)
        self.sources = [""] * n if self.sources is None else [str(s) for s in self.sources]
        self.meta = [{} for _ in range(n)] if self.meta is None else [dict(m) for m in self.meta]
        if not (len(self.n_bytes) == len(self.sources) == len(self.meta) == n):
            raise TextSetError(
                f"text set fields disagree in length: {n} texts, {len(self.n_bytes)} byte counts, "
                f"{len(self.sources)} sources, {len(self.meta)} meta entries."
            )
        if not self.hash:
            self.hash = text_set_hash(self.texts)

    @classmethod
    def from_texts(cls, texts: Iterable[str], *, sources=None, meta=None, name: str = "", recipe=None) -> "TextSet":
        """A text set from plain strings (hash and byte counts computed)."""
        return cls(texts=list(texts), sources=sources, meta=meta, name=name, recipe=recipe)

    def __len__(self) -> int:
        return len(self.texts)

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts)

    def __getitem__(self, i: int) -> str:
        return self.texts[i]

    @property
    def mean_bytes(self) -> float:
        """Mean UTF-8 length of the texts (B in the bits-per-byte conversion)."""
        return float(self.n_bytes.mean()) if len(self.n_bytes) else 0.0

    def to_jsonl(self, path: str | os.PathLike) -> None:
        """Write the published format: one object per line with `index`, `text`, `pile_set_name`
        (the source) and the metadata fields. Written to a temporary file and renamed, so an
        interrupted write never leaves a half file under `path`."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for i, (text, source, meta) in enumerate(zip(self.texts, self.sources, self.meta)):
                record = {"index": i, "text": text, "pile_set_name": source}
                record.update({k: v for k, v in meta.items() if k not in record})
                f.write(json.dumps(record, ensure_ascii=False))
                f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def summary(self) -> dict[str, Any]:
        """Count, hash, byte statistics and texts per source (for `pylogmap texts info`)."""
        nb = self.n_bytes
        counts: dict[str, int] = {}
        for s in self.sources:
            counts[s or "(unknown)"] = counts.get(s or "(unknown)", 0) + 1
        stats = {}
        if len(nb):
            stats = {
                "total": int(nb.sum()),
                "mean": float(nb.mean()),
                "min": int(nb.min()),
                "median": float(np.median(nb)),
                "max": int(nb.max()),
            }
        return {
            "name": self.name,
            "count": len(self),
            "hash": self.hash,
            "bytes": stats,
            "sources": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            "recipe": self.recipe,
        }


# --------------------------------------------------------------------------------------------
# Loading


def load_texts(path: str | os.PathLike) -> TextSet:
    """Read a text set from a jsonl file, a .txt file or a folder of .txt files (see module doc).

    Raises `TextSetError` naming the file and line for a missing file, bad JSON, a missing `text`
    field, an empty text or bytes that are not UTF-8.
    """
    path = Path(path)
    if not path.exists():
        raise TextSetError(f"text set {str(path)!r} does not exist; give a .jsonl, a .txt or a folder of .txt files.")
    if path.is_dir():
        ts = _load_folder(path)
    elif path.name.endswith((".jsonl", ".json", ".ndjson")):
        with open(path, "rb") as f:
            ts = _load_jsonl(f, path)
    elif path.name.endswith(".zst"):
        with _open_zst(path) as f:
            ts = _load_jsonl(f, path)
    else:
        ts = _load_txt(path)
    if len(ts) == 0:
        raise TextSetError(f"text set {str(path)!r} holds no texts; give a file with at least one text.")
    return ts


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TextSetError(
            f"{where}: bytes that are not valid UTF-8 (at byte {err.start}: {data[err.start:err.start + 4]!r}); "
            "re-encode the file as UTF-8."
        ) from None


def _iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line bytes without the newline), reading bytes so that a bad byte is
    reported with its line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            yield lineno, raw.rstrip(b"\n").rstrip(b"\r")


def _source_of(record: dict) -> str:
    for key in ("pile_set_name", "source"):
        if isinstance(record.get(key), str):
            return record[key]
    meta = record.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("pile_set_name"), str):
        return meta["pile_set_name"]
    return ""


def _open_zst(path: Path):
    """A binary line reader over a zstandard-compressed file (needs the `zstandard` module)."""
    try:
        import zstandard
    except ImportError:
        raise TextSetError(
            f"{path} is zstandard-compressed and the 'zstandard' module is not installed; "
            "run 'pip install zstandard' or decompress it first ('zstd -d FILE')."
        ) from None
    import io

    raw = open(path, "rb")
    reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
    return io.BufferedReader(reader)


def _load_jsonl(f, path: Path) -> TextSet:
    texts, sources, metas = [], [], []
    for lineno, raw in enumerate(f, start=1):
        raw = raw.rstrip(b"\n").rstrip(b"\r")
        where = f"{path}, line {lineno}"
        line = _decode(raw, where)
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise TextSetError(f"{where}: not valid JSON ({err.msg} at column {err.colno}); fix or remove the line.") from None
        if not isinstance(record, dict):
            raise TextSetError(f"{where}: expected a JSON object with a 'text' field, got {type(record).__name__}.")
        if "text" not in record:
            raise TextSetError(f"{where}: no 'text' field (fields: {', '.join(sorted(record)) or 'none'}); every line needs one.")
        text = record["text"]
        if not isinstance(text, str):
            raise TextSetError(f"{where}: 'text' is a {type(text).__name__}, not a string.")
        if not text:
            raise TextSetError(f"{where}: empty text; remove the line (every text must have at least one byte).")
        texts.append(text)
        sources.append(_source_of(record))
        metas.append({k: v for k, v in record.items() if k not in ("text", "pile_set_name", "source")})
    return TextSet(texts=texts, sources=sources, meta=metas, name=_stem(path))


def _load_txt(path: Path) -> TextSet:
    texts, metas = [], []
    for lineno, raw in _iter_lines(path):
        line = _decode(raw, f"{path}, line {lineno}")
        if line.strip():
            texts.append(line)
            metas.append({"line": lineno})
    return TextSet(texts=texts, sources=[path.name] * len(texts), meta=metas, name=_stem(path))


def _load_folder(path: Path) -> TextSet:
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix == ".txt")
    if not files:
        raise TextSetError(f"folder {str(path)!r} has no .txt files; put one text per .txt file in it.")
    texts = []
    for p in files:
        text = _decode(p.read_bytes(), str(p))
        if not text.strip():
            raise TextSetError(f"{p}: empty text file; remove it from the folder.")
        texts.append(text)
    return TextSet(
        texts=texts, sources=[p.name for p in files], meta=[{"file": p.name} for p in files], name=path.name
    )


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".jsonl.zst", ".jsonl", ".ndjson", ".json", ".txt"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


# --------------------------------------------------------------------------------------------
# The chunk-and-sample recipe (method.md section 1)


def chunk_document(data: bytes, max_bytes: int = 1024) -> list[bytes]:
    """Split UTF-8 bytes into chunks of at most `max_bytes` bytes, never inside a character.

    Cut at `max_bytes`; while the byte at the cut is a continuation byte (``b & 0xC0 == 0x80``)
    move the cut back by one; repeat on the rest. The last chunk is whatever remains.
    """
    if max_bytes < 4:
        raise TextSetError(f"max_bytes={max_bytes} is too small: a UTF-8 character can take 4 bytes; use at least 4.")
    chunks = []
    start, n = 0, len(data)
    while start < n:
        cut = start + max_bytes
        if cut >= n:
            chunks.append(data[start:])
            break
        while cut > start and data[cut] & 0xC0 == 0x80:
            cut -= 1
        if cut == start:  # only continuation bytes: not UTF-8 (cannot happen for decoded text)
            cut = start + max_bytes
        chunks.append(data[start:cut])
        start = cut
    return chunks


def _document_of(doc: Any, i: int) -> tuple[str, str]:
    """(text, source) of one corpus document: a str, a (text, source) pair, or a dict with `text`
    and an optional source (`meta.pile_set_name` as in the Pile, `pile_set_name` or `source`)."""
    if isinstance(doc, str):
        return doc, ""
    if isinstance(doc, dict):
        text = doc.get("text")
        if not isinstance(text, str):
            raise TextSetError(f"document {i} has no string 'text' field (fields: {', '.join(sorted(doc))}).")
        return text, _source_of(doc)
    if isinstance(doc, (tuple, list)) and len(doc) == 2 and isinstance(doc[0], str):
        return doc[0], str(doc[1] or "")
    raise TextSetError(f"document {i} is a {type(doc).__name__}; give str, (text, source) or a dict with 'text'.")


def make_texts(
    documents: Iterable[Any] | Callable[[], Iterable[Any]],
    *,
    max_bytes: int = 1024,
    min_bytes: int = 256,
    sample_size: int = 10_000,
    pool_size: int | None = 40_000,
    seed: int = 42,
    name: str = "",
    progress: bool = False,
) -> TextSet:
    """Build a text set with the map paper's recipe (method.md section 1), byte-exact.

    `documents`: strings, ``(text, source)`` pairs or dicts with `text` (and optionally
    `meta.pile_set_name`, `pile_set_name` or `source`), as a sequence, an iterable, or a
    zero-argument callable returning a fresh iterable (the CLI passes one that re-reads the corpus,
    so a corpus of a million documents is never held in memory).

    Chunks are numbered in corpus order (all kept chunks of document 0, then of document 1, ...);
    `random.seed(seed)` then `random.sample(range(n_chunks), pool_size)` picks the same positions
    as `random.sample(chunks, pool_size)` (the sampler only looks at the population's length), and
    the first `sample_size` picks are kept, in sampling order. `pool_size=None` samples all chunks
    (a random permutation). A pool larger than the number of chunks is an error that gives the count.

    Each text keeps `meta = {"doc_idx": document index, "chunk_idx": chunk index in its document}`
    and the document's source.
    """
    if min_bytes < 0 or max_bytes <= min_bytes:
        raise TextSetError(f"need 0 <= min_bytes < max_bytes, got min_bytes={min_bytes}, max_bytes={max_bytes}.")
    if sample_size < 1:
        raise TextSetError(f"sample_size must be at least 1, got {sample_size}.")
    if pool_size is not None and sample_size > pool_size:
        raise TextSetError(f"sample_size={sample_size} exceeds pool_size={pool_size}; the sample is the first "
                           "sample_size texts of the pool, so use pool_size >= sample_size.")

    if callable(documents):
        opener = documents
    elif isinstance(documents, (Sequence, list)):
        opener = lambda: documents  # noqa: E731
    else:  # a one-shot iterator: keep the documents for the second pass
        kept = list(documents)
        opener = lambda: kept  # noqa: E731

    # Pass 1: positions of the kept chunks (document, chunk index, byte start, byte end), in compact
    # arrays (the paper's 5.7 M chunks take ~180 MB instead of ~1 GB of Python ints).
    doc_idx, chunk_idx, starts, ends = array("q"), array("q"), array("q"), array("q")
    sources: list[str] = []
    bar = _progress(progress, "chunking documents")
    for d, doc in enumerate(opener()):
        text, source = _document_of(doc, d)
        sources.append(source)
        data = text.encode("utf-8")
        pos = 0
        for c, chunk in enumerate(chunk_document(data, max_bytes)):
            if len(chunk) > min_bytes:
                doc_idx.append(d)
                chunk_idx.append(c)
                starts.append(pos)
                ends.append(pos + len(chunk))
            pos += len(chunk)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    n_chunks = len(doc_idx)
    k = n_chunks if pool_size is None else pool_size
    if k > n_chunks:
        raise TextSetError(
            f"the corpus gives {n_chunks} chunks longer than {min_bytes} bytes, fewer than pool_size={pool_size}; "
            f"use a bigger corpus or a pool_size (and sample_size) of at most {n_chunks}."
        )
    if sample_size > k:
        raise TextSetError(f"only {k} chunks to sample from, fewer than sample_size={sample_size}; lower sample_size.")

    random.seed(seed)
    picks = random.sample(range(n_chunks), k)[:sample_size]

    # Pass 2: cut the picked chunks out of their documents.
    wanted: dict[int, list[int]] = {}
    for out_pos, j in enumerate(picks):
        wanted.setdefault(doc_idx[j], []).append(out_pos)
    texts: list[str | None] = [None] * len(picks)
    last_doc = max(wanted)
    bar = _progress(progress, "cutting the sampled chunks")
    if bar is not None:
        bar.total = last_doc + 1
    for d, doc in enumerate(opener()):
        if bar is not None:
            bar.update(1)
        if d > last_doc:
            break
        if d in wanted:
            text, _ = _document_of(doc, d)
            data = text.encode("utf-8")
            for out_pos in wanted[d]:
                j = picks[out_pos]
                texts[out_pos] = data[starts[j]:ends[j]].decode("utf-8")
    if bar is not None:
        bar.close()
    if any(t is None for t in texts):
        raise TextSetError("the corpus changed between the two passes over it; give a corpus that reads the same twice.")
    recipe = {
        "max_bytes": max_bytes, "min_bytes": min_bytes, "sample_size": sample_size,
        "pool_size": pool_size, "seed": seed, "n_documents": len(sources), "n_chunks": n_chunks,
    }
    return TextSet(
        texts=texts,  # type: ignore[arg-type]
        sources=[sources[doc_idx[j]] for j in picks],
        meta=[{"doc_idx": doc_idx[j], "chunk_idx": chunk_idx[j]} for j in picks],
        name=name,
        recipe=recipe,
    )


def _progress(enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(desc=desc, unit=" docs")


# --------------------------------------------------------------------------------------------
# Corpora for `pylogmap texts make`


def iter_corpus(path: str | os.PathLike, *, max_documents: int | None = None) -> Iterator[dict]:
    """Documents of a corpus as dicts with `text` and `source`, in order.

    Formats: jsonl with `text` (and optional `meta.pile_set_name`, as in the Pile), `.jsonl.zst`
    (needs the `zstandard` module), a .txt file (the whole file is one document) or a folder of
    .txt files (each file a document, sorted by name). Stops after `max_documents`.
    """
    path = Path(path)
    if not path.exists():
        raise TextSetError(f"corpus {str(path)!r} does not exist.")
    count = 0
    for doc in _iter_corpus_all(path):
        if max_documents is not None and count >= max_documents:
            return
        count += 1
        yield doc


def _iter_corpus_all(path: Path) -> Iterator[dict]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise TextSetError(f"folder {str(path)!r} has no .txt files to use as documents.")
        for p in files:
            yield {"text": _decode(p.read_bytes(), str(p)), "source": str(p.relative_to(path))}
        return
    name = path.name
    if name.endswith(".zst"):
        with _open_zst(path) as f:
            yield from _iter_jsonl_docs(f, str(path))
        return
    if name.endswith((".jsonl", ".json", ".ndjson")):
        with open(path, "rb") as f:
            yield from _iter_jsonl_docs(f, str(path))
        return
    yield {"text": _decode(path.read_bytes(), str(path)), "source": path.name}


def _iter_jsonl_docs(f, where: str) -> Iterator[dict]:
    for lineno, raw in enumerate(f, start=1):
        line = _decode(raw.rstrip(b"\n").rstrip(b"\r"), f"{where}, line {lineno}")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise TextSetError(f"{where}, line {lineno}: not valid JSON ({err.msg}); fix or remove the line.") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise TextSetError(f"{where}, line {lineno}: expected a JSON object with a string 'text' field.")
        yield {"text": record["text"], "source": _source_of(record)}
