"""Nearest models of one model on the map, with KL estimates and their standard errors.

The KL estimate between models i and j is Var_k(L_ik - L_jk)/2 over the texts (clipped L,
method.md section 3), shown in bits per byte and in nats per text, with the delta-method
standard error. The search is exact (float64 over all models on the map) and uses the
clipping threshold stored by 'pylogmap map' when there is one.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the map file (.h5)")
    parser.add_argument("model", metavar="MODEL", help="model name or label (name@revision, name#L<layer>)")
    parser.add_argument("-k", type=int, default=10, help="number of neighbours (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON (KL in nats per text and bits per byte, with SEs)")


def run(args: argparse.Namespace) -> int:
    import json

    from pylogmap import mapping
    from pylogmap.errors import PylogmapError
    from pylogmap.store import open_map

    if args.k < 1:
        raise PylogmapError(f"-k must be at least 1; got {args.k}.")
    with open_map(args.file) as mf:
        res = mapping.neighbors_for(mf, args.model, args.k)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"nearest models of {res['model']}  ({res['n_used']} models on the map, {res['n_texts']} texts, "
          f"{res['mean_bytes']:.1f} bytes/text)")
    width = max(5, min(70, max(len(n["model"]) for n in res["neighbors"])))
    print(f"{'rank':>4}  {'model':<{width}}  {'KL bits/byte':>20}  {'KL nats/text':>22}")
    for n in res["neighbors"]:
        bpb = f"{n['kl_bits_per_byte']:.4g} ± {n['se_bits_per_byte']:.2g}"
        nats = f"{n['kl_nats']:.4g} ± {n['se_nats']:.2g}"
        print(f"{n['rank']:>4}  {n['model']:<{width}}  {bpb:>20}  {nats:>22}")
    print("KL = Var(L_i - L_j)/2 over texts (clipped at tau = "
          f"{res['tau']:.6g}); ± = standard error (delta method).")
    return 0
