"""The text set: the fixed, ordered list of texts every model of a map is scored on, and its hash.

A text set is identified by its content (method.md section 1): two text sets are the same
exactly when their `hash` is the same, and the map file stores the hash so that scores from
different text sets are never mixed. Sources and metadata travel with the texts but do not
change the hash. `TextSet.to_jsonl` writes the published format that `load_texts` reads back.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from pylogmap.errors import TextSetError
from pylogmap.files import atomic_open

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
        """Write the published format (`write_jsonl`) to `path`, atomically
        (`pylogmap.files.atomic_open`): a failed write leaves no half file, or temporary one, behind."""
        with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
            self.write_jsonl(f)

    def write_jsonl(self, stream: TextIO) -> None:
        """Write the published format to an open text stream: one object per line with `index`,
        `text`, `pile_set_name` (the source) and the metadata fields."""
        for i, (text, source, meta) in enumerate(zip(self.texts, self.sources, self.meta)):
            record = {"index": i, "text": text, "pile_set_name": source}
            record.update({k: v for k, v in meta.items() if k not in record})
            stream.write(json.dumps(record, ensure_ascii=False))
            stream.write("\n")

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
