"""Write a map file's content for other tools.

By the output's extension:
  .csv / .parquet   one row per model: label, name, revision, layer, status, architecture,
                    parameters, on_map, mean log-likelihood, t-SNE/PCA/UMAP coordinates, and
                    every annotation column (run 'pylogmap map' first)
  .npy              the log-likelihood matrix [models, texts] float32 (NaN = not scored), with
                    OUT.models.txt and OUT.texts.jsonl beside it ('pylogmap import' reads them back)
  .h5ad             an AnnData object: X = the matrix, obs = models (+ annotations), obsm =
                    embeddings, var = texts
--matrix q exports the double-centred Q of the models on the map instead of raw L.
Models scored since the last 'pylogmap map' are exported without coordinates (on_map false) and
listed; run 'pylogmap map FILE' to place them. OUT is replaced atomically: complete or untouched.
"""

from __future__ import annotations

import argparse
import json
import sys

from pylogmap.errors import PylogmapError
from pylogmap.files import check_target
from pylogmap.io import exchange


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the map file (.h5)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output file: .csv, .parquet (map table), .npy or .h5ad (matrix)")
    parser.add_argument("--matrix", choices=["loglik", "q"], default="loglik",
                        help="for .npy/.h5ad: raw log-likelihoods (default) or the double-centred Q")
    parser.add_argument("--json", action="store_true", help="print a JSON report")


def run(args: argparse.Namespace) -> int:
    ext = check_target(args.output).suffix.lower()  # a bad output path fails before anything is read
    if ext in exchange.MAP_FORMATS:
        info = exchange.export_map(args.file, args.output)
    elif ext in exchange.MATRIX_FORMATS:
        info = exchange.export_matrix(args.file, args.output, what=args.matrix)
    else:
        raise PylogmapError(
            f"unknown output type {ext or '(none)'!r} for {args.output!r}; use .csv, .parquet, .npy or .h5ad."
        )
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("wrote " + ", ".join(info.get("files", [info["path"]])))
    unplaced = info["unplaced"]
    if unplaced:
        print(f"note: {len(unplaced)} model(s) scored since the last map have no coordinates yet: "
              f"{', '.join(unplaced[:5])}{' ...' if len(unplaced) > 5 else ''}; run 'pylogmap map {args.file}' "
              "to place them.", file=sys.stderr)
    elif info["stale"]:
        print(f"note: rows changed since the last map, so the coordinates are those of the old rows; run "
              f"'pylogmap map {args.file}' to update them.", file=sys.stderr)
    return 0
