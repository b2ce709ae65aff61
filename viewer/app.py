"""Entry point of the viewer: `main(path, screenshot=None, select=None)`.

With `screenshot` the window is rendered to a PNG and the function returns without entering
the event loop (the offscreen Qt platform is chosen automatically when there is no display), so
docs and checks see exactly what a user sees. Problems with the file raise `PylogmapError`
before any window opens, so the command line prints a clear message.

Imports Qt: call `pylogmap.viewer.require_qt()` before importing this module.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from pylogmap.errors import PylogmapError

from . import qtlibs
from .loader import FileSource
from .window import MainWindow

#: The size of a screenshot (fixed, so pictures are reproducible) and the most a window starts with.
WINDOW_SIZE = (1500, 920)
#: The share of the screen's free area a first window may take.
SCREEN_SHARE = 0.9


def _ensure_platform(offscreen_ok: bool) -> None:
    """Use the offscreen platform for a screenshot without a display; without a display and
    without --screenshot, say so instead of letting Qt abort the process."""
    if os.environ.get("QT_QPA_PLATFORM") or not sys.platform.startswith("linux"):
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    if offscreen_ok:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        return
    raise PylogmapError(
        "no display to open the viewer window on (DISPLAY and WAYLAND_DISPLAY are unset). Run it on a "
        "desktop session, over 'ssh -X', under 'xvfb-run', or render a PNG with --screenshot OUT.png"
    )


def _check_platform_libraries() -> None:
    """Qt aborts the process, naming the wrong library, when its platform plugin cannot load:
    ask the dynamic linker first and say which system packages are missing."""
    check = qtlibs.check_qt_platform()
    if not check.ok:
        raise PylogmapError(check.message())


def place_window(win: MainWindow, *, screenshot: bool) -> None:
    """A screenshot is always WINDOW_SIZE. A window gets the geometry it had when last closed, if
    that still fits a screen, else WINDOW_SIZE shrunk to fit the screen's free area, centred."""
    if screenshot:
        win.resize(*WINDOW_SIZE)
        return
    if win.restore_saved_geometry():
        return
    screen = win.screen() or QtGui.QGuiApplication.primaryScreen()
    if screen is None:
        win.resize(*WINDOW_SIZE)
        return
    free = screen.availableGeometry()
    width = min(WINDOW_SIZE[0], int(free.width() * SCREEN_SHARE))
    height = min(WINDOW_SIZE[1], int(free.height() * SCREEN_SHARE))
    win.resize(width, height)
    win.move(free.x() + (free.width() - width) // 2, free.y() + (free.height() - height) // 2)


_QUIET = ("This plugin does not support",)  # offscreen platform notes on every window; harmless


def _qt_messages(mode, context, message: str) -> None:
    if not message.startswith(_QUIET):
        print(message, file=sys.stderr)


def application() -> QtWidgets.QApplication:
    """The QApplication (created once, with a readable default font)."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        QtCore.qInstallMessageHandler(_qt_messages)
        app = QtWidgets.QApplication(["pylogmap view"])
        app.setApplicationName("pylogmap viewer")
        font = QtGui.QFont(app.font())
        if font.pointSizeF() < 10:
            font.setPointSizeF(10)
            app.setFont(font)
    return app


def build_window(source=None, data=None, *, select: str | None = None, screenshot: bool = True) -> MainWindow:
    """A MainWindow showing `data` (already loaded from `source`; empty without), with an
    optional selection; sized for a screenshot, or placed on the screen (`place_window`)."""
    win = MainWindow()
    place_window(win, screenshot=screenshot)
    if data is not None:
        win.show_source(source, data)
        if select:
            row = data.find(select)
            if row is None:
                dispose(win)
                raise PylogmapError(f"no model matches --select {select!r}; "
                                    "run 'pylogmap info FILE' to list the models")
            win.state.select(row)
    return win


def main(path: str | Path | None, screenshot: str | Path | None = None, select: str | None = None) -> int:
    """Open the viewer on a map file (or an empty window when path is None)."""
    _ensure_platform(offscreen_ok=screenshot is not None)
    _check_platform_libraries()
    source = data = None
    if path is not None:
        source = FileSource(path)
        data = source.load()
        if screenshot is not None and not data.embeddings:
            raise PylogmapError(f"{path} has no 2-D embedding to draw; run 'pylogmap map {path}' first")
    elif screenshot is not None:
        raise PylogmapError("--screenshot needs a map file to draw")

    app = application()
    win = build_window(source, data, select=select, screenshot=screenshot is not None)
    try:
        win.show()
        if screenshot is not None:
            win.screenshot(screenshot)
            return 0
        return int(app.exec())
    finally:
        dispose(win)


def dispose(win: MainWindow) -> None:
    """Close and delete a window while Qt is still up.

    pyqtgraph 0.14 with PySide6 6.12 can segfault at interpreter exit when scatter items are
    still alive then; deleting the window first makes the exit clean.
    """
    win.shutdown()
    win.close()
    win.deleteLater()
    app = QtWidgets.QApplication.instance()
    if app is not None:
        app.processEvents()
    gc.collect()
