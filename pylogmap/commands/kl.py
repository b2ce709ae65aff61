"""KL divergence estimate between two models of a map file, with its standard error.

KL(A, B) ~= Var_k(L_Ak - L_Bk) / 2 over the N texts (clipped log-likelihoods, method.md
section 3): a symmetric estimate (about half the Jeffreys divergence) in nats per text, also
given in bits per byte (divided by mean bytes per text x ln 2). The standard error is the delta
method's sqrt((m4 - m2^2)/N)/2 with m2, m4 the central moments of the differences.
"""

from __future__ import annotations

import argparse
import json

from pylogmap import mapping
from pylogmap.numbers import format_pm, format_value
from pylogmap.store import open_map


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the map file (.h5)")
    parser.add_argument("a", metavar="A", help="first model (name or label)")
    parser.add_argument("b", metavar="B", help="second model (name or label)")
    parser.add_argument("--json", action="store_true", help="print JSON (nats per text and bits per byte, with SEs)")


def run(args: argparse.Namespace) -> int:
    with open_map(args.file) as mf:
        res = mapping.kl_between(mf, args.a, args.b)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"KL estimate between\n  A = {res['a']}\n  B = {res['b']}")
    print(f"  {format_pm(res['kl_bits_per_byte'], res['se_bits_per_byte'])} bits/byte")
    print(f"  {format_pm(res['kl_nats'], res['se_nats'])} nats/text")
    print(f"  ({res['n_texts']} texts, {format_value(res['mean_bytes'])} bytes/text; clipped at tau = "
          f"{format_value(res['tau'], 6)}, "
          f"{'from the map' if res['tau_source'] == 'map' else '2% quantile of the scored rows'}; ± = standard error)")
    return 0
