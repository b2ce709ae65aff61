"""KL along checkpoints or layers, and diffusion exponents (trajectory paper).

Groups the map's rows into ordered trajectories: the same model at several training checkpoints
(revisions such as `step1000`, or folders `.../checkpoint-1000`, ordered by step) and the same
model at several logit-lens layers (ordered by layer). For each, prints the KL estimate between
consecutive members with its standard error, in bits per byte and nats per text, and for
checkpoints the diffusion exponent c: from each start t0, over the next --window checkpoints t,
the least-squares fit of log KL(t, t0) = c log(t - t0) + b (c < 1: subdiffusion). With --weights
the same fit on squared weight distances ||theta_t - theta_t0||^2 (float64), reading the
checkpoints from local folders or the local Hugging Face cache. --drop-jumpy 0.03 leaves out the
3 % of texts whose log-likelihood changes most between consecutive checkpoints.

Example:  pylogmap trajectory map.h5 --model EleutherAI/pythia-410m --drop-jumpy 0.03 --plot traj.png
"""

from __future__ import annotations

import sys
from functools import partial

from pylogmap.analysis import _mapdata, trajectories
from pylogmap.analysis._report import Estimate, print_json, print_table
from pylogmap.analysis.plots import plot_trajectories
from pylogmap.errors import PylogmapError
from pylogmap.experiments import checkpoint_weight_distances
from pylogmap.files import check_target
from pylogmap.numbers import format_value


def add_arguments(parser) -> None:
    parser.add_argument("file", help="map file (.h5)")
    parser.add_argument("--model", metavar="NAME", help="only the trajectory of this model (name or label prefix)")
    parser.add_argument("--drop-jumpy", type=float, default=0.0, metavar="FRAC",
                        help="fraction of most jumpy texts to leave out, e.g. 0.03 (default 0: keep all)")
    parser.add_argument("--window", type=int, default=10,
                        help="checkpoints after each start used in the exponent fit (default 10)")
    parser.add_argument("--weights", action="store_true",
                        help="also fit exponents on squared weight distances (needs the checkpoints' weights)")
    parser.add_argument("--plot", metavar="PNG", help="write a figure (needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")


def run(args) -> int:
    if not 0.0 <= args.drop_jumpy < 1.0:
        raise PylogmapError("--drop-jumpy must be a fraction in [0, 1), e.g. 0.03.")
    if args.window < 2:
        raise PylogmapError("--window must be at least 2 (a fit needs two points).")
    if args.plot:
        check_target(args.plot)  # before the work
    data = _mapdata.load(args.file)
    weight_distances = None
    if args.weights:
        weight_distances = partial(checkpoint_weight_distances, progress=not args.json and sys.stderr.isatty())
    res = trajectories.trajectories_map(
        data, model=args.model, drop_jumpy=args.drop_jumpy, window=args.window, weight_distances=weight_distances,
    )
    if args.plot:
        plot_trajectories(res["trajectories"], args.plot)
    if args.json:
        print_json(res)
        return 0
    print(f"texts used: {res['n_texts_used']} (dropped {res['n_texts_dropped']}), mean "
          f"{format_value(res['mean_bytes'])} bytes, clip tau {format_value(res['clip_tau'])}")
    for t in res["trajectories"]:
        c = t["consecutive"]
        unit = "step" if t["kind"] == "checkpoints" else "layer"
        print(f"\n{t['name']}{'@' + t['revision'] if t['revision'] else ''}: {len(t['labels'])} {t['kind']}")
        if t["skipped"]:
            print(f"(left out, no step number: {', '.join(t['skipped'])})")
        print_table(
            [f"from {unit}", f"to {unit}", "KL bits/byte", "KL nats/text"],
            [[int(t["positions"][k]), int(t["positions"][k + 1]), Estimate(c["kl_bpb"][k], c["se_bpb"][k]),
              Estimate(c["kl_nats"][k], c["se_nats"][k])] for k in range(len(c["kl_nats"]))],
        )
        for space, d in t["diffusion"].items():
            s = d["summary"]
            print(f"diffusion exponent ({space} space, window {res['window']}): mean {format_value(s['mean'])}, "
                  f"median {format_value(s['median'])}, std {format_value(s['std'])} over {s['n_starts']} starts")
    print("\n± = standard error (delta method)")
    if args.plot:
        print(f"\nwrote {args.plot}")
    return 0
