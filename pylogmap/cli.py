"""The `pylogmap` command line.

Each subcommand is a module in `pylogmap.commands` with a docstring (its --help text), an
`add_arguments(parser)` function and a `run(args) -> int` function. Only the module of the
command being run is imported, so `pylogmap --help` is instant and never imports torch.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys

from pylogmap import __version__
from pylogmap.errors import PylogmapError, os_error_message

# name -> (module in pylogmap.commands, one-line summary for `pylogmap --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "texts": ("texts", "build a text set with the paper's chunk-and-sample recipe, or describe one"),
    "score": ("score", "score models on a text set into a resumable HDF5 map file"),
    "info": ("info", "summarise a map file: text set, models, status, what has been computed"),
    "merge": ("merge", "merge map files of one text set (e.g. the shards of a scoring run) into one"),
    "map": ("map", "clip, double-centre, embed (t-SNE/PCA) and index neighbours in a map file"),
    "neighbors": ("neighbors", "nearest models of one model, with KL estimates and standard errors"),
    "kl": ("kl", "KL divergence estimate between two models, with its standard error"),
    "annotate": ("annotate", "attach per-model columns (family, size, scores...) from a CSV"),
    "export": ("export", "write coordinates and annotations (CSV/Parquet) or the matrix (npy/h5ad)"),
    "import": ("import_", "build a map file from an existing matrix or the published pickle"),
    "view": ("view", "open the desktop viewer on a map file (or render it to a PNG)"),
    "plot": ("plot", "draw a map file as a publication figure (PNG, PDF or SVG) with matplotlib"),
    "predict": ("predict", "predict benchmark scores from the map with ridge regression"),
    "resample": ("resample", "choose a smaller text set by likelihood-variance resampling"),
    "add": ("add", "place new models on an existing map, scoring only its selected texts"),
    "trajectory": ("trajectory", "KL along checkpoints or layers, and diffusion exponents"),
    "interpolate": ("interpolate", "score weight interpolations of three models on a grid"),
    "leakage": ("leakage", "texts and sources a model finds anomalously easy (data-leakage hints)"),
    "demo": ("demo", "build a whole map offline from a small zoo of models trained here"),
    "doctor": ("doctor", "describe this installation (versions, native modules, GPUs, Qt, HF cache) for a bug report"),
}


def _top_level_parser() -> argparse.ArgumentParser:
    width = max(map(len, COMMANDS))
    listing = "\n".join(f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="pylogmap",
        description="Map language models by their log-likelihood vectors.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"commands:\n{listing}\n\nRun 'pylogmap COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"pylogmap {__version__}")
    parser.add_argument("command", nargs="?", metavar="COMMAND", help="one of the commands below")
    return parser


def _command_parser(name: str):
    module = importlib.import_module(f"pylogmap.commands.{COMMANDS[name][0]}")
    parser = argparse.ArgumentParser(
        prog=f"pylogmap {name}",
        description=(module.__doc__ or COMMANDS[name][1]).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    return module, parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_level_parser()
    if not argv or argv[0].startswith("-"):
        top.parse_args(argv)  # handles --help / --version and exits
        top.print_help()
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        top.error(f"unknown command {name!r}.{hint} Run 'pylogmap --help' for the list.")
    module, parser = _command_parser(name)
    args = parser.parse_args(rest)

    try:
        return int(module.run(args) or 0)
    except PylogmapError as err:
        print(f"pylogmap {name}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` or a pager that quit: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # last resort: a path the command did not check itself, in one line
        print(f"pylogmap {name}: error: {os_error_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pylogmap {name}: interrupted; finished work is kept and a rerun resumes.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
