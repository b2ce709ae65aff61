"""The desktop viewer (PySide6, pyqtgraph, superqt), installed as `pylogmap.viewer`.

May import: the map side (`pylogmap.store`, `pylogmap.mapping`, `pylogmap.analysis`, `pylogmap.files`, `pylogmap.errors`), numpy, scipy; Qt only in the widget modules; never torch.

Layout of the package, one job per module:

- `data.py`      `MapData`: the in-memory model of a map (labels, families, numeric columns,
                 2-D coordinates per embedding, trajectories, KL/neighbour provider). numpy only.
- `state.py`     `ViewerState`: what is shown and picked (embedding, colour, size, filters,
                 selection and neighbours, hover, search) with plain callback events. No Qt.
- `loader.py`    builds a `MapData` from an HDF5 map file through `pylogmap.store` and
                 `pylogmap.mapping` (the thin layer between the file and the UI).
- `palette.py`   numeric colour maps and size scales (the category colours are `mapping.families`').
- `scatter.py`   the map widget: one pyqtgraph ScatterPlotItem, a KD-tree for hover/click,
                 overlays for selection, neighbour lines and trajectories, legend, colour bar.
- `panels.py`    the side panel: selected model, its nearest neighbours, the KL of a pair.
- `window.py`    the main window: menus, toolbar (search, embedding, colour, size), live refresh,
                 background loading and embedding in superqt thread workers.
- `app.py`       `main(path, screenshot=None, select=None)`: the entry point of `pylogmap view`.

Importing this package is cheap and never imports Qt or torch: the names below resolve on first
use, and `main` (the only one that needs Qt) should be preceded by `require_qt()`, which says
what to install when PySide6, pyqtgraph or superqt is missing.
"""

from __future__ import annotations

import importlib
import importlib.util

from pylogmap.errors import PylogmapError

QT_PACKAGES = {"PySide6": "PySide6-Essentials", "pyqtgraph": "pyqtgraph", "superqt": "superqt"}
QT_MISSING = (
    "the viewer needs {missing}, which {verb} not installed. "
    "They are dependencies of pylogmap: pip install {install}"
)

# Public names: name -> module of this package, imported on first use.
_LAZY = {
    "main": "app",
    "MapData": "data",
    "ViewerState": "state",
    "FileSource": "loader",
    "build_mapdata": "loader",
}

__all__ = ["QT_MISSING", "require_qt", *_LAZY]


def require_qt() -> None:
    """Raise a PylogmapError naming the missing Qt packages and the pip command that installs them."""
    missing = [name for name in QT_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise PylogmapError(QT_MISSING.format(missing=", ".join(missing), verb="is" if len(missing) == 1 else "are",
                                              install=" ".join(QT_PACKAGES[name] for name in missing)))


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pylogmap.viewer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pylogmap.viewer.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
