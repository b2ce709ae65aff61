"""Nearest models of one model on the map, with KL estimates and their standard errors.

The KL estimate between models i and j is Var_k(L_ik - L_jk)/2 over the texts (clipped L,
method.md section 3), shown in bits per byte and in nats per text, with the delta-method
standard error. The search is exact (float64 over all models on the map) and uses the
clipping threshold stored by 'pylogmap map' when there is one.
"""

from __future__ import annotations

import argparse
import json

from pylogmap import mapping
from pylogmap.errors import PylogmapError
from pylogmap.mapping.geometry import SAME_KL_NATS
from pylogmap.numbers import format_pm, format_value
from pylogmap.store import open_map


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the map file (.h5)")
    parser.add_argument("model", metavar="MODEL", help="model name or label (name@revision, name#L<layer>)")
    parser.add_argument("-k", type=int, default=10, help="number of neighbours (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON (KL in nats per text and bits per byte, with SEs)")


def run(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise PylogmapError(f"-k must be at least 1; got {args.k}.")
    with open_map(args.file) as mf:
        res = mapping.neighbors_for(mf, args.model, args.k)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"nearest models of {res['model']}  ({res['n_used']} models on the map, {res['n_texts']} texts, "
          f"{format_value(res['mean_bytes'])} bytes/text)")
    # A neighbour with identical numbers is the model itself (its last lens layer, or a copy).
    names = [n["model"] + ("  (identical: the model itself)" if n["kl_nats"] <= SAME_KL_NATS else "")
             for n in res["neighbors"]]
    bpb = [format_pm(n["kl_bits_per_byte"], n["se_bits_per_byte"]) for n in res["neighbors"]]
    nats = [format_pm(n["kl_nats"], n["se_nats"]) for n in res["neighbors"]]
    width = max(5, min(70, max(map(len, names))))
    wb, wn = max(12, *map(len, bpb)), max(12, *map(len, nats))
    print(f"{'rank':>4}  {'model':<{width}}  {'KL bits/byte':>{wb}}  {'KL nats/text':>{wn}}")
    for n, name, b, q in zip(res["neighbors"], names, bpb, nats):
        print(f"{n['rank']:>4}  {name:<{width}}  {b:>{wb}}  {q:>{wn}}")
    print("KL = Var(L_i - L_j)/2 over texts (clipped at tau = "
          f"{format_value(res['tau'], 6)}); ± = standard error (delta method).")
    return 0
