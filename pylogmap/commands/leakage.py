"""Data-leakage hints: texts and text sources a model finds anomalously easy (method.md section 8).

The map predicts MODEL's double-centred log-likelihood vector by the mean of its -k nearest
models' vectors; the residual on each text, divided by that text's robust spread of residuals
across all models (1.4826 x MAD), is a z score: how many typical deviations easier than expected
the text is for MODEL. Prints the --top texts by z (index, source, z, a snippet) and, per text
source, the mean z with its t statistic (a source with large t hints that MODEL was trained on
it). These are hints for a human to follow up, not proof.

MODEL is a row label or a model name with a single row (see 'pylogmap info').

Example:  pylogmap leakage map.h5 EleutherAI/pythia-410m -k 10 --top 30
"""

from __future__ import annotations

from pylogmap.analysis import _mapdata, leakage
from pylogmap.analysis._report import print_json, print_table
from pylogmap.errors import PylogmapError
from pylogmap.store import open_map

SNIPPET = 60  # characters of each text shown in the table


def add_arguments(parser) -> None:
    parser.add_argument("file", help="map file (.h5)")
    parser.add_argument("model", metavar="MODEL", help="row label or model name (see 'pylogmap info')")
    parser.add_argument("-k", type=int, default=10, metavar="N",
                        help="nearest models whose mean predicts MODEL's vector (default 10)")
    parser.add_argument("--top", type=int, default=20, metavar="N",
                        help="how many of the most anomalous texts to list (default 20)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")


def run(args) -> int:
    if args.k < 1:
        raise PylogmapError("-k must be at least 1 (the number of neighbours that predict the model).")
    if args.top < 1:
        raise PylogmapError("--top must be at least 1.")
    with open_map(args.file, mode="r") as m:
        row = m.find_row(args.model)  # unknown names: MapFileError with the closest labels
        data = _mapdata.read_map(m, str(args.file))
        texts = m.texts()
    label = data.labels[row]
    if not data.used[row]:
        raise PylogmapError(
            f"{label!r} is not fully scored in {args.file} (status {data.status[row]!r}); "
            f"finish scoring it ('pylogmap score') before asking for leakage hints."
        )
    res = leakage.leakage_map(data, label, k=args.k, top=args.top, texts=texts)
    res.pop("z")  # one number per text: too long for a report
    if args.json:
        print_json(res)
        return 0
    print(f"{res['model']}: texts it finds easier than its {res['k']} nearest models predict "
          f"(z = robust residual, higher = more anomalous)")
    print_table(
        ["text", "source", "z", "snippet"],
        [[r["text"], r["source"], r["z"], _snippet(r["preview"])] for r in res["top_texts"]],
    )
    if res["sources"]:
        print("\nper source (sorted by t; large t hints at training on that source)")
        print_table(["source", "texts", "mean z", "t"],
                    [[s["source"], s["n_texts"], s["mean_z"], s["t"]] for s in res["sources"]])
    return 0


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET else text[: SNIPPET - 3] + "..."
