"""Build a map file from an existing log-likelihood matrix, without scoring anything.

  pylogmap import MATRIX.npy --models NAMES.txt --texts TEXTS.jsonl -o FILE.h5
      MATRIX.npy: float [models, texts] log-likelihoods in nats (summed over tokens, NaN = not
      scored); NAMES.txt: one model per line, in row order ('name' or 'name<TAB>revision<TAB>layer');
      TEXTS.jsonl: the texts in column order (published jsonl, plain jsonl with 'text', or .txt).
  pylogmap import log-likelihood_1018.pkl --texts texts-10k-pile.jsonl -o published.h5
      the published format of the map paper: a pickled dict model name -> vector over the texts.
      The pickle is read as data only (dicts, lists, strings, numbers, numpy arrays): a pickle
      that asks to run anything else is refused before any of it runs.
--force replaces an existing FILE.h5. Then run 'pylogmap map FILE.h5'.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pylogmap.errors import PylogmapError
from pylogmap.io import exchange


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SRC", help="MATRIX.npy, or the published .pkl")
    parser.add_argument("--models", metavar="NAMES.txt", help="model names, one per line in row order (for .npy)")
    parser.add_argument("--texts", metavar="TEXTS.jsonl", required=True, help="the texts, in column order")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.h5", help="the map file to create")
    parser.add_argument("--force", action="store_true", help="replace FILE.h5 if it exists")
    parser.add_argument("--json", action="store_true", help="print a JSON report")


def run(args: argparse.Namespace) -> int:
    ext = Path(args.source).suffix.lower()
    if ext == ".npy":
        if not args.models:
            raise PylogmapError("importing a .npy matrix needs --models NAMES.txt (one model name per row).")
        info = exchange.import_matrix(args.source, args.models, args.texts, args.output, force=args.force)
    elif ext in (".pkl", ".pickle"):
        if args.models:
            raise PylogmapError("--models is for .npy matrices; the pickle already names its models.")
        info = exchange.import_published(args.source, args.texts, args.output, force=args.force)
    else:
        raise PylogmapError(f"unknown source type {ext or '(none)'!r}; give a .npy matrix or the published .pkl.")
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"created {info['path']}: {info['models']} models x {info['texts']} texts; "
          f"next: pylogmap map {info['path']}")
    bad = info["infinite_rows"]
    if bad:
        print(f"note: {len(bad)} row(s) have -inf log-likelihoods (texts the model gave zero probability): "
              f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}. They stay off the map; rescore those models "
              "(e.g. in float32), or replace -inf by a finite floor in the matrix and import again.", file=sys.stderr)
    return 0
