"""Choose a smaller text set by likelihood-variance resampling (resampling paper).

Draws texts with replacement with probabilities uniform, LS (proportional to the variance of a
text's log-likelihood across the map's models) or KL (proportional to the root of the sum of
4th powers of pairwise differences), weighs each draw 1/sqrt(n p), merges duplicates, and
measures how well the resampled map reproduces the full one: tau1 = ||G~ - G||_F / ||G||_F and
tau2 (RMS relative error per pair) of the pairwise squared distances, RMS over --seeds seeds,
against the number of unique texts. Prints the error curves (and draws them with --plot).

With --target-error, the smallest sample whose RMS error (by --error, default tau1) reaches that
target with --method (default ls) is stored in the file (/map/selected_texts and
/map/selected_weights, with the clip threshold), so 'pylogmap add' can place new models scoring
only those texts. The target is met by the RMS over the seeds (what a draw of that size gives,
and what to expect for models added later), never by one lucky draw; the stored draw's own error
on the map's models is shown beside it. Without --sizes, sizes beyond the number of texts are
tried when the default ones miss the target.

Example:  pylogmap resample map.h5 --target-error 0.05 --plot resampling.png
"""

from __future__ import annotations

import sys

from pylogmap.analysis import _mapdata, resampling
from pylogmap.analysis._report import print_json, print_table
from pylogmap.analysis.plots import plot_error_curves
from pylogmap.errors import PylogmapError
from pylogmap.files import check_target
from pylogmap.numbers import format_value


def _grid(text):
    return [int(x) for x in text.split(",") if x.strip()]


def add_arguments(parser) -> None:
    parser.add_argument("file", help="map file (.h5)")
    parser.add_argument("--method", choices=["ls", "kl", "uniform"], default="ls",
                        help="method of the stored selection (default ls)")
    parser.add_argument("--methods", default="uniform,ls,kl", metavar="M,M",
                        help="methods of the error curves (default uniform,ls,kl)")
    parser.add_argument("--sizes", type=_grid, metavar="N,N,...",
                        help="numbers of draws (default 10, 20, 50, 100, 200, 500, ... up to all texts)")
    parser.add_argument("--seeds", type=int, default=100, help="resamples per size; errors are RMS over them (default 100)")
    parser.add_argument("--target-error", type=float, metavar="TAU",
                        help="store the smallest text selection whose RMS error is at most TAU")
    parser.add_argument("--error", choices=["tau1", "tau2"], default="tau1", help="error measure of --target-error")
    parser.add_argument("--plot", metavar="PNG", help="write the error curves as a figure (needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")


def run(args) -> int:
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not methods:
        raise PylogmapError("--methods names no method; give some of uniform, ls, kl (e.g. --methods uniform,ls).")
    for m in methods:
        if m not in resampling.METHODS:
            raise PylogmapError(f"unknown method {m!r} in --methods; use uniform, ls, kl.")
    if args.seeds < 1:
        raise PylogmapError("--seeds must be at least 1.")
    if args.target_error is not None and not args.target_error > 0:
        raise PylogmapError("--target-error must be positive, e.g. 0.05.")
    if args.sizes is not None and (not args.sizes or min(args.sizes) < 1):
        raise PylogmapError("--sizes must be positive numbers of draws, e.g. 10,50,100.")
    if args.plot:
        check_target(args.plot)  # before the work, and before a selection is stored
    data = _mapdata.load(args.file)
    if args.sizes and max(args.sizes) > resampling.MAX_DRAWS_PER_TEXT * data.n_texts:
        raise PylogmapError(
            f"--sizes {max(args.sizes)} is more than {resampling.MAX_DRAWS_PER_TEXT} draws per text "
            f"({data.n_texts} texts); the error is already about 0 well before that: use smaller sizes."
        )
    res = resampling.resample_map(
        data, methods=methods, grid=args.sizes, seeds=range(args.seeds), target_error=args.target_error,
        select_method=args.method, error=args.error, progress=not args.json and sys.stderr.isatty(),
    )
    sel = res.pop("selection", None)
    if sel is not None:
        _mapdata.write_derived(args.file, resampling.selection_items(sel, res["tau"], res["n_texts"], res["n_models"]))
    if args.plot:
        plot_error_curves(res["rows"], args.plot)
    if args.json:
        out = dict(res)
        if sel is not None:
            out["selection"] = {
                "method": sel.method, "n_draws": sel.n_draws, "n_texts": int(len(sel.indices)),
                "rms_tau1": sel.rms_tau1, "rms_tau2": sel.rms_tau2, "n_seeds": sel.n_seeds,
                "tau1": sel.tau1, "tau2": sel.tau2, "target_error": sel.target_error, "error": args.error,
                "seed": sel.seed, "indices": sel.indices, "weights": sel.weights,
            }
        print_json(out)
        return 0
    print(f"{res['n_models']} models x {res['n_texts']} texts, {args.seeds} seeds per size (RMS errors)\n")
    print_table(["method", "draws", "unique texts", "tau1", "tau2"],
                [[r["method"], r["n_draws"], r["unique_mean"], r["tau1"], r["tau2"]] for r in res["rows"]])
    if sel is not None:
        rms = sel.rms_tau1 if args.error == "tau1" else sel.rms_tau2
        print(f"\nstored a {sel.method} selection of {len(sel.indices)} texts ({sel.n_draws} draws, seed {sel.seed}): "
              f"RMS {args.error} {format_value(rms)} over the {sel.n_seeds} draws of that size "
              f"(target {args.error} <= {sel.target_error:g}; expect about this for models added later);")
        print(f"this draw on the map's own models: tau1 {format_value(sel.tau1)}, tau2 {format_value(sel.tau2)}")
    if args.plot:
        print(f"wrote {args.plot}")
    return 0
