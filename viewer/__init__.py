"""The pylogmap desktop viewer (PySide6 + pyqtgraph), installed as `pylogmap.viewer`.

Layout of the package, one job per module:

- `data.py`      `MapData`: the in-memory model of a map (labels, families, numeric columns,
                 2-D coordinates per embedding, trajectories, KL/neighbour provider). numpy only.
- `loader.py`    builds a `MapData` from an HDF5 map file through `pylogmap.store` and
                 `pylogmap.geometry` (the thin layer between the file and the UI).
- `palette.py`   family colours (the 12 published classes), colour maps, size scales.
- `scatter.py`   the map widget: one pyqtgraph ScatterPlotItem, a KD-tree for hover/click,
                 overlays for selection, neighbour lines and trajectories, legend, colour bar.
- `panels.py`    the side panel: selected model, its nearest neighbours, the KL of a pair.
- `window.py`    the main window: menus, toolbar (search, embedding, colour, size), live refresh.
- `app.py`       `main(path, screenshot=None, select=None)`: the entry point of `pylogmap view`.

Importing this package is cheap and never imports Qt or torch; `require_qt()` checks that the
optional `viewer` extra is installed and says how to install it when it is not.
"""

from __future__ import annotations

QT_MISSING = (
    "the viewer needs PySide6 and pyqtgraph, which are not installed ({missing}). "
    "They are dependencies of pylogmap: pip install PySide6-Essentials pyqtgraph"
)


def require_qt() -> None:
    """Raise a PylogmapError naming the `viewer` extra when PySide6 or pyqtgraph is missing."""
    import importlib.util

    from pylogmap.errors import PylogmapError

    missing = [name for name in ("PySide6", "pyqtgraph") if importlib.util.find_spec(name) is None]
    if missing:
        raise PylogmapError(QT_MISSING.format(missing=", ".join(missing)))
