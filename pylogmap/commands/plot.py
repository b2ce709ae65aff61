"""Draw a map file as a publication figure: the 2-D map coloured by family (or any column).

The figure shows every model on the map (the t-SNE of `pylogmap map`, or --embedding pca/umap)
in the map's colours (the viewer's), with a legend that counts the models of each family
(optionally one marker shape per category of a second column, --marker),
labels for the models named with --label (or automatically a few per family, placed without
overlaps), arrows along checkpoint and layer trajectories in order, optional marker sizes by
parameter count, a title and a caption line (text set, N texts, tau). The file type follows the
suffix: .png, or .pdf / .svg as vector figures whose text stays text. Marker sizes and opacity
suit a map of 20 models as well as one of 1,000.

Examples:
  pylogmap plot map.h5 -o map.pdf
  pylogmap plot map.h5 -o map.png --color kind --label gpt2 --label EleutherAI/pythia-410m
"""

from __future__ import annotations

import argparse

from pylogmap.analysis import plot_map


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="MAP.h5", help="the map file (after 'pylogmap map')")
    parser.add_argument("-o", "--out", required=True, metavar="FIGURE",
                        help="the figure to write: .png, .pdf or .svg")
    parser.add_argument("--color", default="family", metavar="COLUMN",
                        help="colour by this column: family (default), architecture, mean_loglik or any "
                        "annotation column ('pylogmap annotate')")
    parser.add_argument("--marker", default=None, metavar="COLUMN",
                        help="one marker shape per category of this column (e.g. kind); default: circles")
    parser.add_argument("--label", action="append", default=[], metavar="MODEL",
                        help="label this model (repeat for more); default: a few per category, without overlaps")
    parser.add_argument("--per-category", type=int, default=None, metavar="N",
                        help="automatic labels per category (default: 1 to 3, by the number of categories; 0: none)")
    parser.add_argument("--size-by-params", action="store_true", help="marker area by parameter count (log scale)")
    parser.add_argument("--embedding", choices=["tsne", "pca", "umap"], default="tsne",
                        help="which stored 2-D map to draw (default: tsne)")
    parser.add_argument("--no-trajectories", action="store_true", help="no arrows along checkpoints and layers")
    parser.add_argument("--title", default=None, help="the title (default: the number of models)")
    parser.add_argument("--caption", default=None, help="the caption line (default: embedding, text set, N, tau)")
    parser.add_argument("--width", type=float, default=7.0, help="width in inches (default 7)")
    parser.add_argument("--height", type=float, default=5.0, help="height in inches (default 5)")
    parser.add_argument("--dpi", type=int, default=200, help="resolution of a PNG (default 200)")


def run(args: argparse.Namespace) -> int:
    figure = plot_map(
        args.file, args.out, embedding=args.embedding, color=args.color, marker=args.marker, labels=args.label,
        per_category=args.per_category, size_by_params=args.size_by_params, title=args.title, caption=args.caption,
        trajectories=not args.no_trajectories, width=args.width, height=args.height, dpi=args.dpi,
    )
    for note in figure.notes:
        print(f"note: {note}")
    labelled = ", ".join(figure.labels) if figure.labels else "none"
    print(f"wrote {figure.path}: {figure.n_points:,} models, labelled: {labelled}")
    return 0
