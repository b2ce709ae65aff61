"""Attach per-model columns (family, size, date, benchmark scores...) to a map file from a CSV.

The table needs a header row and a column naming the models (default 'model'; --key to change),
matched against the map's labels (name@revision, name#L<layer>) and model names (a plain name
gives its value to all its revisions/layers). Columns whose values are all numbers (empty =
missing) are stored as numbers; any other column is categorical. Names not in the map are
reported with the closest model names. Without a table (or with --family), the default 'family'
column is derived from each model's name and architecture using the published colour classes
(llama-1, llama-2, llama-3, mistral, gpt_neox, gptj, gemma, opt, bloom, falcon, deepseek, others).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from pylogmap.io import annotations


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the map file (.h5)")
    parser.add_argument("table", metavar="TABLE", nargs="?", help="CSV (or .tsv) with one row per model")
    parser.add_argument("--key", default="model", help="column holding model names (default 'model')")
    parser.add_argument("--family", action="store_true",
                        help="(re)write the default 'family' column from names and architectures")
    parser.add_argument("--json", action="store_true", help="print a JSON report")


def run(args: argparse.Namespace) -> int:
    report: dict = {}
    if args.family or not args.table:
        fam = annotations.set_default_families(args.file, overwrite=True)
        report["family"] = dict(Counter(fam).most_common())
        if not args.json:
            print("family column written: " + ", ".join(f"{k} {v}" for k, v in report["family"].items()))
    if args.table:
        matched = annotations.annotate_file(args.file, args.table, key=args.key)
        report.update({
            "matched_rows": matched.matched_rows,
            "columns": {k: ("numeric" if v.dtype.kind == "f" else "categorical") for k, v in matched.columns.items()},
            "unknown": [{"name": n, "suggestions": s} for n, s in matched.unknown],
            "duplicates": matched.duplicates,
        })
        if not args.json:
            print(matched.report())
    if args.json:
        print(json.dumps(report, indent=2))
    return 0
