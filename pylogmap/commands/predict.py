"""Predict benchmark scores from the map with ridge regression (map paper, section 5).

Reads a CSV with one row per model: a column `model` (or `name`/`label`, else the first column)
with the map's model names or display labels, and benchmark columns (e.g. ARC, HellaSwag, MMLU,
TruthfulQA, Winogrande, GSM8K; empty = unknown). Every numeric column is a target (or those of
--targets); columns of text (a leaderboard's type, precision, license...) are ignored and listed.
For each target and for the model's mean log-likelihood, ridge regression from the double-centred
log-likelihood vectors (Q) and from the clipped raw vectors (L) is cross-validated: penalty by
inner 5-fold CV over 1e-10..1e3 times the features' scale (reported when it sits at an edge),
outer 5-fold CV grouped by model type (--group-by, default `family`; one fold per group when
there are fewer groups) and plainly shuffled, seeds 0-4, predictions clipped to [0, 100]. Prints
Pearson r and Spearman rho (mean ± std over seeds) and the correlation of mean log-likelihood
with each benchmark, and writes the out-of-fold predictions from Q back to the file as
annotation columns `pred_<column>` that the viewer can colour by.

Example:  pylogmap predict map.h5 leaderboard.csv --group-by family
"""

from __future__ import annotations

import sys

from pylogmap.analysis import _mapdata, prediction
from pylogmap.analysis._report import Estimate, print_json, print_table
from pylogmap.errors import PylogmapError


def add_arguments(parser) -> None:
    parser.add_argument("file", help="map file (.h5)")
    parser.add_argument("scores", help="CSV of benchmark scores, one row per model")
    parser.add_argument("--group-by", default="family", metavar="COLUMN",
                        help="model-type column (in the CSV or the map's annotations) for the grouped split; "
                             "'none' to skip the grouped split (default: family)")
    parser.add_argument("--targets", metavar="A,B,...", help="only these CSV columns (default: all numeric columns)")
    parser.add_argument("--split", choices=["both", "group", "kfold"], default="both",
                        help="outer cross-validation: grouped by model type, plain shuffled, or both (default)")
    parser.add_argument("--seeds", type=int, default=5, help="number of outer-CV seeds, 0..N-1 (default 5)")
    parser.add_argument("--folds", type=int, default=5, help="outer folds (default 5)")
    parser.add_argument("--skip-unknown", action="store_true",
                        help="ignore CSV rows whose model is not in the map (default: error)")
    parser.add_argument("--no-write", action="store_true", help="do not write pred_<column> annotations to the file")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")


def run(args) -> int:
    if args.seeds < 1 or args.folds < 2:
        raise PylogmapError("--seeds must be >= 1 and --folds >= 2.")
    group_by = None if args.group_by.lower() == "none" else args.group_by
    targets = [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets is not None else None
    if targets is not None and not targets:
        raise PylogmapError("--targets names no column; give benchmark columns like --targets ARC,MMLU.")
    ids, columns = prediction.read_scores_csv(args.scores, categorical=[group_by] if group_by else [],
                                              targets=targets)
    data = _mapdata.load(args.file)
    splits = {"both": ("group", "kfold"), "group": ("group",), "kfold": ("kfold",)}[args.split]
    if group_by is None and "group" in splits:
        if args.split == "group":
            raise PylogmapError("--split group needs a grouping column; drop --group-by none.")
        splits = ("kfold",)
    res = prediction.predict_map(
        data, ids, columns, group_by=group_by, targets=targets, splits=splits,
        seeds=range(args.seeds), n_splits=args.folds, skip_unknown=args.skip_unknown,
        progress=not args.json and sys.stderr.isatty(),
    )
    if not args.no_write:
        _mapdata.write_annotations(args.file, res["columns"])
    written = [] if args.no_write else sorted(res["columns"])
    if args.json:
        out = {k: v for k, v in res.items() if k != "columns"}
        out["written_columns"] = written
        print_json(out)
        return 0
    for note in res["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(f"{res['n_models']} models, seeds 0-{args.seeds - 1}, outer cross-validation\n")
    print_table(
        ["target", "features", "split", "models", "folds", "pearson r", "spearman rho"],
        [[r["target"], r["features"], r["split"], r["n_models"], r["n_folds"],
          Estimate(r["pearson_mean"], _spread(r, "pearson_std")),
          Estimate(r["spearman_mean"], _spread(r, "spearman_std"))] for r in res["rows"]],
    )
    print("± = std over seeds" + (" (none where every seed gives the same split)"
                                   if any(r["distinct_splits"] == 1 for r in res["rows"]) else ""))
    if res["loglik_correlations"]:
        print("\nmean log-likelihood vs benchmark")
        print_table(["target", "models", "pearson r", "spearman rho"],
                    [[c["target"], c["n_models"], c["pearson"], c["spearman"]] for c in res["loglik_correlations"]])
    if written:
        print(f"\nwrote out-of-fold predictions ({res['primary_split']} split, Q) as annotations: {', '.join(written)}")
    return 0


def _spread(row: dict, key: str) -> float | None:
    """The std over seeds, or None when every seed gave the same split (a std of 0 by construction)."""
    return None if row["distinct_splits"] == 1 else row[key]
