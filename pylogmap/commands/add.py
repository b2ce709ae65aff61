"""Place new models on an existing map, scoring only its selected texts (resampling paper).

Needs a text selection stored by 'pylogmap resample FILE --target-error TAU'. Scores the new
models on the selected texts only (a fraction of the full set; kept in the resumable side file
FILE.selection.h5), adds them to the map as rows scored on those texts, estimates their KL
divergence to every existing model from the weighted selection with the map's clip threshold,
and lists their nearest models. When the map has t-SNE coordinates, each new model is also
placed in 2-D among its nearest neighbours (annotation columns placed_x, placed_y; the existing
map does not move).

Example:  pylogmap add map.h5 --models ./my-finetune EleutherAI/pythia-160m -k 5
"""

from __future__ import annotations

from pylogmap.analysis._report import print_json, print_table
from pylogmap.errors import PylogmapError
from pylogmap.numbers import format_value
from pylogmap.experiments import add_models
from pylogmap.scoring import DTYPES


def add_arguments(parser) -> None:
    parser.add_argument("file", help="map file (.h5) with a stored text selection")
    parser.add_argument("--models", nargs="+", required=True, metavar="MODEL",
                        help="models to add (local folders, .gguf files or cached hub ids)")
    parser.add_argument("--revision", help="hub revision of the models")
    parser.add_argument("--dtype", default="auto", choices=DTYPES,
                        help="weight dtype for scoring (default auto)")
    parser.add_argument("--device", default="auto", help="device for scoring (default auto)")
    parser.add_argument("-k", type=int, default=10, help="nearest models to report (default 10)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args) -> int:
    if args.k < 1:
        raise PylogmapError("-k must be at least 1.")
    res = add_models(args.file, args.models, revision=args.revision, dtype=args.dtype,
                     device=args.device, k=args.k, progress=not args.json)
    if args.json:
        print_json(res)
        return 0
    print(f"scored {len(res['models'])} model(s) on {res['n_selected_texts']} of {res['n_texts']} texts "
          f"(side file {res['side_file']})")
    for j, name in enumerate(res["models"]):
        where = ""
        if res["xy"] is not None:
            where = f" placed at ({format_value(res['xy'][j][0])}, {format_value(res['xy'][j][1])})"
        print(f"\n{name}{where}")
        print_table(["nearest model", "KL bits/byte", "KL nats/text"],
                    [[n["label"], n["kl_bpb"], n["kl_nats"]] for n in res["neighbors"][j]])
    return 0
