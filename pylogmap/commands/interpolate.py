"""Score weight interpolations of three models on a grid (map paper, section 8).

Builds the merged models (1-a-b) BASE + a A + b B for a and b on a grid (--grid step over
--range, default 0..1 by 0.2: 36 models), scores each on the text set with the real scorer into
OUT.h5 (resumable: a rerun skips merged models already scored), and compares the grid of
log-likelihood vectors (PCA to 2-D of the double-centred matrix) with the exact weight-space
grid: Procrustes disparity (0 = same shape) and the rank correlation of pairwise distances.
The three models must share one architecture and all parameter shapes (e.g. fine-tunes of one
base); they are given as local model folders (or hub ids in the local cache).

Example:  pylogmap interpolate base/ chat/ code/ --grid 0.25 --texts texts.jsonl -o interp.h5 --plot interp.png
"""

from __future__ import annotations

from pylogmap.analysis._report import print_json, print_table
from pylogmap.analysis.plots import plot_interpolation
from pylogmap.experiments import interpolate_models
from pylogmap.files import check_target
from pylogmap.numbers import format_value
from pylogmap.texts import load_texts


def add_arguments(parser) -> None:
    parser.add_argument("base", help="theta0: the base model (folder or cached hub id)")
    parser.add_argument("a", help="theta1: weight a")
    parser.add_argument("b", help="theta2: weight b")
    parser.add_argument("--texts", required=True, help="text set (jsonl, .txt or folder) to score on")
    parser.add_argument("-o", "--out", required=True, help="map file to write (.h5)")
    parser.add_argument("--grid", type=float, default=0.2, help="grid step for a and b (default 0.2)")
    parser.add_argument("--range", nargs=2, type=float, default=(0.0, 1.0), metavar=("LO", "HI"),
                        help="range of a and b (default 0 1; e.g. -0.5 1.5 to extrapolate)")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"],
                        help="dtype the merged models are built, saved and scored in (default fp32)")
    parser.add_argument("--device", default="auto", help="device for scoring (default auto)")
    parser.add_argument("--work-dir", help="where merged model folders are written (default OUT.models/)")
    parser.add_argument("--keep-models", action="store_true", help="keep the merged model folders")
    parser.add_argument("--plot", metavar="PNG", help="draw both grids (needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args) -> int:
    check_target(args.out)  # its folder exists and it is not a folder; an existing map is resumed
    if args.plot:
        check_target(args.plot)  # before the (long) scoring
    ts = load_texts(args.texts)
    res = interpolate_models(
        args.base, args.a, args.b, texts=ts, out=args.out, step=args.grid, lo=args.range[0], hi=args.range[1],
        work_dir=args.work_dir, keep_models=args.keep_models, dtype=args.dtype, device=args.device,
        progress=not args.json,
    )
    if args.plot:
        plot_interpolation(res["ab"], res["weight_xy_std"], res["loglik_xy"], args.plot, res["disparity"])
    if args.json:
        print_json({k: v for k, v in res.items()})
        return 0
    ip = res["inner_products"]
    print(f"{len(res['ab'])} merged models scored into {args.out}")
    print(f"weight space: |A-BASE|^2 = {format_value(ip['ip11'])}, |B-BASE|^2 = {format_value(ip['ip22'])}, "
          f"<A-BASE, B-BASE> = {format_value(ip['ip12'])}")
    ev = res["explained_variance_ratio"]
    print(f"log-likelihood grid: PCA explains {format_value(ev[0])} + {format_value(ev[1])} of the variance")
    print(f"Procrustes disparity (weight grid vs log-likelihood grid): {format_value(res['disparity'])}")
    print(f"Spearman rho of pairwise squared distances: {format_value(res['distance_spearman'])}")
    print()
    print_table(["a", "b", "weight x", "weight y", "loglik x", "loglik y"],
                [[a, b, w[0], w[1], ll[0], ll[1]] for (a, b), w, ll in zip(res["ab"], res["weight_xy_std"], res["loglik_xy"])])
    if args.plot:
        print(f"\nwrote {args.plot}")
    return 0
