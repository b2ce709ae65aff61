"""Build a map file from an existing log-likelihood matrix, without scoring anything.

  pylogmap import MATRIX.npy --models NAMES.txt --texts TEXTS.jsonl -o FILE.h5
      MATRIX.npy: float [models, texts] log-likelihoods in nats (summed over tokens, NaN = not
      scored); NAMES.txt: one model per line, in row order ('name' or 'name<TAB>revision<TAB>layer');
      TEXTS.jsonl: the texts in column order (published jsonl, plain jsonl with 'text', or .txt).
  pylogmap import log-likelihood_1018.pkl --texts texts-10k-pile.jsonl -o published.h5
      the published format of the map paper: a pickled dict model name -> vector over the texts.
      Unpickling can run code: only import pickles from a source you trust.
Then run 'pylogmap map FILE.h5'.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pylogmap.errors import PylogmapError
from pylogmap.io import exchange


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SRC", help="MATRIX.npy, or the published .pkl")
    parser.add_argument("--models", metavar="NAMES.txt", help="model names, one per line in row order (for .npy)")
    parser.add_argument("--texts", metavar="TEXTS.jsonl", required=True, help="the texts, in column order")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.h5", help="the map file to create")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE.h5 if it exists")
    parser.add_argument("--json", action="store_true", help="print a JSON report")


def run(args: argparse.Namespace) -> int:
    ext = Path(args.source).suffix.lower()
    if ext == ".npy":
        if not args.models:
            raise PylogmapError("importing a .npy matrix needs --models NAMES.txt (one model name per row).")
        info = exchange.import_matrix(args.source, args.models, args.texts, args.output, overwrite=args.overwrite)
    elif ext in (".pkl", ".pickle"):
        if args.models:
            raise PylogmapError("--models is for .npy matrices; the pickle already names its models.")
        info = exchange.import_published(args.source, args.texts, args.output, overwrite=args.overwrite)
    else:
        raise PylogmapError(f"unknown source type {ext or '(none)'!r}; give a .npy matrix or the published .pkl.")
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"created {info['path']}: {info['models']} models x {info['texts']} texts; "
              f"next: pylogmap map {info['path']}")
    return 0
