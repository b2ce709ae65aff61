"""Open the desktop viewer on a map file: a scatter of the models (t-SNE/PCA), coloured by family
or any column, with hover, search, nearest neighbours and KL estimates, trajectories and export.

With --screenshot the window is rendered to a PNG (offscreen when there is no display) and the
command exits, so scripts and checks can see what a user sees. Needs PySide6, pyqtgraph and
superqt (dependencies of pylogmap).
"""

from __future__ import annotations

from pylogmap.viewer import require_qt


def add_arguments(parser) -> None:
    parser.add_argument("file", nargs="?", help="the HDF5 map file (pylogmap score / pylogmap map); "
                        "omit to open an empty window and use File > Open")
    parser.add_argument("--screenshot", metavar="OUT.png",
                        help="render the window to this PNG and exit instead of opening it")
    parser.add_argument("--select", metavar="MODEL",
                        help="select this model (its label, or part of it) and show its nearest neighbours "
                        "and the lines to them; the whole map stays in view")


def run(args) -> int:
    require_qt()
    from pylogmap.viewer import main  # imports Qt, so only once require_qt() found it

    return main(args.file, screenshot=args.screenshot, select=args.select)
