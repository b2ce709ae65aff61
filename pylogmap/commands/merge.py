"""Merge map files scored on one text set into one map file.

Use it to put together the shards of a scoring run split with 'pylogmap score --shard I/N', or
maps scored separately on the same texts. Rows are matched by model, revision and layer:

- a model found in several parts with identical results (bit for bit) is kept once;
- a model with different results in different parts stops the merge, unless --prefer says which
  part wins: first or last (in the order given), or a part's file name;
- a failed row gives way to a scored one.

Every row keeps its model metadata, and its JSON meta records the part it came from
(merged_from); the file's merged_from attribute lists the parts. Annotation columns are merged
and per-token files copied. Derived results (/map: t-SNE, PCA, neighbours) are not copied, as
they describe other rows: run 'pylogmap map OUT' afterwards.

The parts are only read. OUT is built beside its name and renamed into place, so an interrupted
merge leaves no output (or the complete one); run the same command again.

examples:
  pylogmap merge shard-0.h5 shard-1.h5 shard-2.h5 -o map.h5
  pylogmap merge old.h5 rescored.h5 -o map.h5 --prefer last
  pylogmap merge a.h5 b.h5 -o map.h5 --prefer b.h5 --force
"""

from __future__ import annotations

import argparse
import json

from pylogmap.store import merge_maps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("parts", metavar="PART", nargs="+", help="map files (.h5) of one text set")
    parser.add_argument("-o", "--output", metavar="OUT", required=True, help="the merged map file to write")
    parser.add_argument("--prefer", metavar="first|last|PART", default=None,
                        help="which part wins where parts hold different results for a model")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--json", action="store_true", help="print a JSON report")


def run(args: argparse.Namespace) -> int:
    result = merge_maps(args.parts, args.output, prefer=args.prefer, overwrite=args.force)
    report = {
        "output": str(result.path), "rows": result.n_rows, "rows_per_part": result.rows_per_part,
        "identical_duplicates": result.identical_duplicates, "conflicts_resolved": result.conflicts_resolved,
        "failed_replaced": result.failed_replaced, "token_files": result.token_files, "notes": result.notes,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    parts = ", ".join(f"{n} rows from {p}" for p, n in result.rows_per_part.items())
    print(f"merged {len(result.rows_per_part)} parts into {result.path}: {result.n_rows} rows ({parts})")
    if result.identical_duplicates:
        print(f"  {result.identical_duplicates} identical duplicate row(s) kept once")
    if result.failed_replaced:
        print(f"  {len(result.failed_replaced)} failed row(s) replaced by a scored one: "
              + ", ".join(result.failed_replaced[:5]) + (" ..." if len(result.failed_replaced) > 5 else ""))
    if result.conflicts_resolved:
        print(f"  {len(result.conflicts_resolved)} conflict(s) settled by --prefer {args.prefer}: "
              + ", ".join(result.conflicts_resolved[:5]) + (" ..." if len(result.conflicts_resolved) > 5 else ""))
    if result.token_files:
        print(f"  {result.token_files} per-token file(s) copied")
    for note in result.notes:
        print(f"  note: {note}")
    return 0
