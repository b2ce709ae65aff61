"""Build a text set with the map paper's chunk-and-sample recipe, or describe one.

  pylogmap texts make CORPUS -o texts.jsonl   split the corpus's documents into chunks of at most
                                              --max-bytes UTF-8 bytes (never inside a character),
                                              keep chunks longer than --min-bytes, random.seed(SEED),
                                              random.sample(chunks, POOL), keep the first SAMPLE.
                                              The defaults are the paper's (method.md section 1).
  pylogmap texts info FILE                    count, content hash, bytes per text, sources.

CORPUS and FILE are read by their name, with one rule for both (documents for make, texts for info):
  .jsonl / .ndjson / .json   one per line, in a 'text' field (the source from 'pile_set_name',
                             'source' or 'meta': {'pile_set_name': ...} as in the Pile);
                             the same compressed as .jsonl.zst needs 'pip install zstandard'
  any other file (.txt)      plain text: one per non-empty line
  a folder                   one per .txt file under it (sorted by path): for multi-line ones
The output of make is jsonl in the published format: index, text, pile_set_name (the source),
doc_idx, chunk_idx.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py

from pylogmap.errors import TextSetError
from pylogmap.files import check_target
from pylogmap.numbers import format_value
from pylogmap.store import open_map
from pylogmap.texts import iter_corpus, load_texts, make_texts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    make = sub.add_parser("make", help="build a text set from a corpus (the paper's recipe)",
                          description="Build a text set from a corpus with the paper's chunk-and-sample recipe.")
    make.add_argument("corpus", metavar="CORPUS",
                      help="jsonl / .jsonl.zst with 'text' (one document per line), a .txt file (one document "
                           "per non-empty line), or a folder of .txt files (one document per file)")
    make.add_argument("-o", "--output", required=True, metavar="TEXTS.jsonl", help="output jsonl (published format)")
    make.add_argument("--max-bytes", type=int, default=1024, help="largest chunk in UTF-8 bytes (default 1024)")
    make.add_argument("--min-bytes", type=int, default=256, help="keep chunks strictly longer than this (default 256)")
    make.add_argument("--sample-size", type=int, default=10_000, help="texts kept: the first of the pool (default 10000)")
    make.add_argument("--pool-size", type=int, default=40_000,
                      help="chunks drawn by random.sample (default 40000); 0 = all chunks (a shuffle)")
    make.add_argument("--seed", type=int, default=42, help="Python random.seed (default 42)")
    make.add_argument("--max-documents", type=int, default=None, metavar="N",
                      help="use only the first N documents (the paper used the first 1,000,000 of the Pile)")
    make.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    info = sub.add_parser("info", help="count, hash, byte statistics and sources of a text set",
                          description="Describe a text set file (jsonl, .txt, folder) or the text set of a map file.")
    info.add_argument("file", metavar="FILE",
                      help="text set (jsonl; .txt: one text per non-empty line; folder: one text per .txt file) "
                           "or a map file (.h5)")


def run(args: argparse.Namespace) -> int:
    if args.action == "make":
        return _make(args)
    return _info(args)


def _make(args) -> int:
    if not 0 <= args.min_bytes < args.max_bytes:
        raise TextSetError(f"need 0 <= --min-bytes < --max-bytes; got --min-bytes {args.min_bytes} "
                           f"and --max-bytes {args.max_bytes}.")
    if args.sample_size < 1:
        raise TextSetError(f"--sample-size must be at least 1; got {args.sample_size}.")
    if args.pool_size < 0 or 0 < args.pool_size < args.sample_size:
        raise TextSetError(f"--pool-size must be 0 (all chunks) or at least --sample-size ({args.sample_size}); "
                           f"got {args.pool_size}.")
    if args.max_documents is not None and args.max_documents < 1:
        raise TextSetError(f"--max-documents must be at least 1; got {args.max_documents}.")
    out = check_target(args.output, force=args.force)  # before reading the corpus
    corpus = Path(args.corpus)
    if not corpus.exists():
        raise TextSetError(f"corpus {str(corpus)!r} does not exist.")
    ts = make_texts(
        lambda: iter_corpus(corpus, max_documents=args.max_documents),
        max_bytes=args.max_bytes, min_bytes=args.min_bytes, sample_size=args.sample_size,
        pool_size=args.pool_size or None, seed=args.seed, name=out.stem, progress=sys.stderr.isatty(),
    )
    ts.to_jsonl(out)
    r = ts.recipe or {}
    print(f"wrote {len(ts)} texts to {out} ({r.get('n_documents')} documents, {r.get('n_chunks')} chunks "
          f"longer than {args.min_bytes} bytes)")
    print(f"hash {ts.hash}, mean {format_value(ts.mean_bytes)} bytes per text")
    return 0


def _info(args) -> int:
    path = Path(args.file)
    if path.is_file() and h5py.is_hdf5(path):
        with open_map(path) as mf:
            ts = mf.texts()
    else:
        ts = load_texts(path)
    print(format_text_set(ts, str(path)))
    return 0


def format_text_set(ts, where: str = "", max_sources: int = 15) -> str:
    """Human-readable summary of a TextSet (also used by `pylogmap info`)."""
    s = ts.summary()
    lines = [f"text set {where or s['name']}".rstrip()]
    lines.append(f"  texts   {s['count']}")
    lines.append(f"  hash    {s['hash']}")
    b = s["bytes"]
    if b:
        lines.append(f"  bytes   mean {format_value(b['mean'])}, median {format_value(b['median'], trim=True)}, "
                     f"min {b['min']}, max {b['max']}, total {b['total']}")
    if s["recipe"]:
        lines.append("  recipe  " + ", ".join(f"{k}={v}" for k, v in s["recipe"].items()))
    sources = list(s["sources"].items())
    if sources:
        lines.append(f"  sources ({len(sources)})")
        for name, count in sources[:max_sources]:
            lines.append(f"    {count:>7}  {name}")
        if len(sources) > max_sources:
            rest = sum(c for _, c in sources[max_sources:])
            lines.append(f"    {rest:>7}  ... {len(sources) - max_sources} more sources")
    return "\n".join(lines)
