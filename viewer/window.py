"""The main window: map, side panel, toolbar (search, embedding, colour, size), menus, live refresh.

The window shows the map of its `ViewerState`; where the map came from is a `source` object with
`load() -> MapData`, `changed() -> bool` and `path` (see `loader.FileSource`), so the same window
serves a map file, tests on arrays, and File > Open. Loading a map and computing a missing
embedding run in superqt thread workers (Qt's thread pool), whose signals deliver the result or
the error to the GUI thread; nothing polls for results. Problems the user can fix
(`PylogmapError`) are shown in a dialog; the window stays usable.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets
from superqt.utils import WorkerBase, create_worker

from pylogmap.errors import PylogmapError

from .data import FAMILY, MapData
from .loader import FileSource
from .panels import ModelPanel
from .scatter import EMBEDDING_TITLES, MapView
from .state import ViewerState

POLL_MS = 2000
NO_SIZE = "uniform"


class MainWindow(QtWidgets.QMainWindow):
    """The viewer window. `loadFinished(ok)` is emitted when a map opened or reloaded in the
    background is shown (True) or its error dialog is (False)."""

    loadFinished = QtCore.Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("pylogmap viewer")
        self.state = ViewerState()
        self.source = None
        self.error_box: QtWidgets.QMessageBox | None = None
        self.last_error: str = ""
        self._loading: WorkerBase | None = None  # the worker loading a map
        self._computing: WorkerBase | None = None  # the worker computing an embedding
        self._closed = False

        self.view = MapView(self.state, self)
        self.setCentralWidget(self.view)
        self.panel = ModelPanel(self.state, self)
        dock = QtWidgets.QDockWidget("Model", self)
        dock.setObjectName("model-dock")
        dock.setWidget(self.panel)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.dock = dock

        self._build_toolbar()
        self._build_menus()
        self._build_statusbar()

        events = self.state.events
        events.map.connect(self._on_map)
        for event in (events.embedding, events.colour, events.size):
            event.connect(self._sync_combos)
        for event in (events.embedding, events.colour, events.filters, events.selection):
            event.connect(self._update_status)
        events.hover.connect(self._on_hover)
        events.search.connect(self._on_search)
        self.panel.rowActivated.connect(self._jump_to)
        self.panel.copyRequested.connect(self.copy_name)

        # Live refresh: a timer only stats the file for a newer commit (`source.changed()`, an
        # os.stat, far cheaper than a thread hop); re-reading it runs in a worker (`reload`).
        self.poll_timer = QtCore.QTimer(self)
        self.poll_timer.setInterval(POLL_MS)
        self.poll_timer.timeout.connect(self.check_for_updates)
        self._update_status()

    @property
    def data(self) -> MapData | None:
        """The map shown (the state's)."""
        return self.state.data

    # ------------------------------------------------------------------ construction
    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Map")
        tb.setObjectName("map-toolbar")
        tb.setMovable(False)
        tb.addWidget(QtWidgets.QLabel(" Search "))
        self.search = QtWidgets.QLineEdit()
        self.search.setPlaceholderText("model name…")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(280)
        self.completer_model = QtCore.QStringListModel(self)
        self.completer = QtWidgets.QCompleter(self.completer_model, self)
        self.completer.setCaseSensitivity(QtCore.Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setFilterMode(QtCore.Qt.MatchFlag.MatchContains)
        self.completer.setMaxVisibleItems(15)
        self.search.setCompleter(self.completer)
        self.completer.activated.connect(self.state.search)
        self.search.returnPressed.connect(lambda: self.state.search(self.search.text()))
        tb.addWidget(self.search)
        tb.addSeparator()

        tb.addWidget(QtWidgets.QLabel(" Map "))
        self.embedding_combo = QtWidgets.QComboBox()
        self.embedding_combo.activated.connect(self._on_embedding_chosen)
        tb.addWidget(self.embedding_combo)
        tb.addWidget(QtWidgets.QLabel("  Colour "))
        self.color_combo = QtWidgets.QComboBox()
        self.color_combo.setMinimumContentsLength(14)
        self.color_combo.activated.connect(lambda _i: self.state.set_color_by(self.color_combo.currentData()))
        tb.addWidget(self.color_combo)
        tb.addWidget(QtWidgets.QLabel("  Size "))
        self.size_combo = QtWidgets.QComboBox()
        self.size_combo.setMinimumContentsLength(10)
        self.size_combo.activated.connect(lambda _i: self.state.set_size_by(self.size_combo.currentData()))
        tb.addWidget(self.size_combo)
        tb.addSeparator()
        self.traj_check = QtWidgets.QCheckBox("Trajectories")
        self.traj_check.setChecked(self.state.show_trajectories)
        self.traj_check.setToolTip("Connect checkpoints of one run, or layers of one model, in order")
        self.traj_check.toggled.connect(self.state.set_show_trajectories)
        tb.addWidget(self.traj_check)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        act = file_menu.addAction("&Open…", self.open_dialog)
        act.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        self.reload_action = file_menu.addAction("&Reload", self.reload)
        self.reload_action.setShortcut(QtGui.QKeySequence.StandardKey.Refresh)
        file_menu.addSeparator()
        file_menu.addAction("Export view as &PNG…", lambda: self.export_dialog("png"))
        file_menu.addAction("Export view as &SVG…", lambda: self.export_dialog("svg"))
        file_menu.addSeparator()
        act = file_menu.addAction("&Quit", self.close)
        act.setShortcut(QtGui.QKeySequence.StandardKey.Quit)

        edit = bar.addMenu("&Edit")
        self.copy_action = edit.addAction("&Copy model name", self.copy_name)
        self.copy_action.setShortcut(QtGui.QKeySequence.StandardKey.Copy)
        act = edit.addAction("&Find model…", lambda: (self.search.setFocus(), self.search.selectAll()))
        act.setShortcut(QtGui.QKeySequence.StandardKey.Find)
        edit.addAction("Clear &selection", self.state.clear_selection).setShortcut(QtGui.QKeySequence("Esc"))

        view = bar.addMenu("&View")
        act = view.addAction("&Reset zoom", lambda: self.view.plot.vb.enableAutoRange(enable=True))
        act.setShortcut(QtGui.QKeySequence("Home"))
        self.show_all_action = view.addAction("Show &all families", self.state.show_all)
        view.addAction(self.dock.toggleViewAction())

        help_menu = bar.addMenu("&Help")
        help_menu.addAction("&How to use", self._show_help)

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.status_label = QtWidgets.QLabel("")
        sb.addWidget(self.status_label, 1)
        self.refresh_bar = QtWidgets.QWidget()
        lay = QtWidgets.QHBoxLayout(self.refresh_bar)
        lay.setContentsMargins(0, 0, 0, 0)
        self.refresh_label = QtWidgets.QLabel("The file has new models.")
        self.refresh_label.setStyleSheet("color: #8a4b00; font-weight: bold")
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.reload)
        lay.addWidget(self.refresh_label)
        lay.addWidget(self.refresh_button)
        sb.addPermanentWidget(self.refresh_bar)
        self.refresh_bar.hide()

    # ------------------------------------------------------------------ loading
    def open_source(self, source) -> None:
        """Load a source (`load()`, `changed()`, `path`) in a worker and show it; errors go to a
        dialog. `loadFinished` says which happened."""
        self._load(source, keep_view=False, title="Cannot open map")

    def open_path(self, path: str | Path) -> None:
        self.open_source(FileSource(path))

    def show_source(self, source, data: MapData, *, keep_view: bool = False) -> None:
        """Show a map already loaded from `source` and watch the source for newer commits.

        With keep_view the zoom is kept (a reload); the selection is kept by label either way."""
        if self.source is not None and self.source is not source and hasattr(self.source, "close"):
            self.source.close()
        self.source = source
        old_range = self.view.plot.vb.viewRange() if keep_view else None
        self.state.set_map(data)
        if old_range is not None:
            self.view.plot.vb.setRange(xRange=old_range[0], yRange=old_range[1], padding=0)
        self.poll_timer.start()
        if not data.embeddings:
            self._offer_compute()

    def reload(self) -> None:
        """Read the source again in a worker (keeping the zoom and the selection)."""
        if self.source is not None:
            self._load(self.source, keep_view=True, title="Cannot reload map")

    def _load(self, source, *, keep_view: bool, title: str) -> None:
        if self._loading is not None:
            self.statusBar().showMessage("still reading the previous map; try again in a moment", 4000)
            return
        name = Path(str(getattr(source, "path", ""))).name
        self.statusBar().showMessage(f"reading {name}…" if name else "reading the map…")
        self._loading = create_worker(source.load, _connect={
            "returned": lambda data: self._loaded(source, data, keep_view),
            "errored": lambda err: self._load_failed(source, err, title),
        })

    def _loaded(self, source, data: MapData, keep_view: bool) -> None:
        self._loading = None
        if self._closed:
            return
        self.statusBar().clearMessage()
        self.show_source(source, data, keep_view=keep_view)
        self.loadFinished.emit(True)

    def _load_failed(self, source, err: Exception, title: str) -> None:
        self._loading = None
        if self._closed:
            return
        self.statusBar().clearMessage()
        if isinstance(err, PylogmapError):
            self.show_error(title, str(err))
        else:  # a bug or an unexpected file state: report it, never crash
            self.show_error(title, f"Unexpected error while reading {getattr(source, 'path', '')}: "
                            f"{type(err).__name__}: {err}", details="".join(traceback.format_exception(err)))
        self.loadFinished.emit(False)

    def check_for_updates(self) -> bool:
        """Poll the source; show the refresh bar when a scorer committed new models."""
        if self.source is None or self._loading is not None or not hasattr(self.source, "changed"):
            return False  # while a worker reads the source, it is the worker's
        try:
            changed = bool(self.source.changed())
        except Exception:
            return False  # the file is being replaced right now; the next poll sees the commit
        if changed:
            self.refresh_bar.show()
        return changed

    def open_dialog(self) -> None:
        start = str(Path(self.data.source).parent) if self.data is not None and self.data.source else ""
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open a pylogmap map", start,
                                                        "Map files (*.h5 *.hdf5);;All files (*)")
        if path:
            self.open_path(path)

    # ------------------------------------------------------------------ geometry
    @staticmethod
    def settings() -> QtCore.QSettings:
        """Where the window remembers its geometry (the platform's per-user settings)."""
        return QtCore.QSettings("pylogmap", "viewer")

    def restore_saved_geometry(self) -> bool:
        """Take the geometry saved when a window was last closed, if it still fits on a screen."""
        saved = self.settings().value("window/geometry")
        if not isinstance(saved, QtCore.QByteArray) or not self.restoreGeometry(saved):
            return False
        frame = self.frameGeometry()
        return any(s.availableGeometry().intersects(frame) for s in QtGui.QGuiApplication.screens())

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.isVisible() and QtWidgets.QApplication.platformName() != "offscreen":
            self.settings().setValue("window/geometry", self.saveGeometry())
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop watching the source, wait for running workers (their results are dropped) and
        close the source."""
        self._closed = True
        self.poll_timer.stop()
        WorkerBase.await_workers()
        if self.source is not None and hasattr(self.source, "close"):
            self.source.close()

    # ------------------------------------------------------------------ errors
    def show_error(self, title: str, message: str, details: str | None = None) -> None:
        """A non-blocking, window-modal error dialog (kept in `error_box` for tests)."""
        self.last_error = message
        box = QtWidgets.QMessageBox(self)
        box.setIcon(QtWidgets.QMessageBox.Icon.Critical)
        box.setWindowTitle(title)
        box.setText(message)
        if details:
            box.setDetailedText(details)
        box.setStandardButtons(QtWidgets.QMessageBox.StandardButton.Ok)
        box.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        self.error_box = box
        box.open()

    # ------------------------------------------------------------------ state events
    def _on_map(self) -> None:
        data = self.data
        assert data is not None
        self.refresh_bar.hide()
        self.setWindowTitle(f"pylogmap viewer — {Path(data.source).name}" if data.source else "pylogmap viewer")
        self.completer_model.setStringList(list(data.labels))
        self._fill_combos()
        self._sync_combos()
        self._update_status()

    def _on_hover(self) -> None:
        row = self.state.hovered
        if row >= 0 and self.data is not None:
            self.status_label.setText(self.data.tooltip(row).replace("\n", "  ·  "))
        else:
            self._update_status()

    def _on_search(self) -> None:
        row = self.state.search_result
        if row is None:
            self.statusBar().showMessage(f"no model matches {self.state.search_text!r}", 4000)
        else:
            self.view.centre_on(row)

    def _jump_to(self, row: int) -> None:
        """Select a model and centre the map on it (a double-click in the neighbour table)."""
        self.state.select(row)
        if self.state.selected >= 0:
            self.view.centre_on(row)

    # ------------------------------------------------------------------ combos
    def _fill_combos(self) -> None:
        data = self.data
        assert data is not None
        self.embedding_combo.clear()
        for name in data.embeddings:
            self.embedding_combo.addItem(EMBEDDING_TITLES.get(name, name), name)
        for name in data.computable:
            if name not in data.embeddings:
                self.embedding_combo.addItem(f"{EMBEDDING_TITLES.get(name, name)} (compute…)", f"compute:{name}")
        self.color_combo.clear()
        self.color_combo.addItem(FAMILY, FAMILY)
        for name in data.categorical:
            if name != FAMILY:
                self.color_combo.addItem(name, name)
        if data.categorical and data.numeric:
            self.color_combo.insertSeparator(self.color_combo.count())
        for name in data.numeric:
            self.color_combo.addItem(name, name)
        self.size_combo.clear()
        self.size_combo.addItem(NO_SIZE, None)
        for name in data.numeric:
            self.size_combo.addItem(name, name)

    def _sync_combos(self) -> None:
        state = self.state
        for combo, value in ((self.embedding_combo, state.embedding), (self.color_combo, state.color_by),
                             (self.size_combo, state.size_by)):
            i = combo.findData(value)
            if i >= 0:
                combo.setCurrentIndex(i)

    def _on_embedding_chosen(self, _index: int) -> None:
        value = self.embedding_combo.currentData()
        if isinstance(value, str) and value.startswith("compute:"):
            self.compute_embedding(value.split(":", 1)[1])
        elif value:
            self.state.set_embedding(value)

    # ------------------------------------------------------------------ computing a missing embedding
    def _offer_compute(self) -> None:
        data = self.data
        assert data is not None
        if not data.computable or data.compute_embedding is None:
            self.show_error("No embedding", "This map has no 2-D embedding yet and none can be computed here. "
                            "Run 'pylogmap map FILE' to compute one, then reopen the file.")
            return
        box = QtWidgets.QMessageBox(self)
        box.setIcon(QtWidgets.QMessageBox.Icon.Question)
        box.setWindowTitle("No embedding")
        box.setText("This map has no 2-D embedding yet. Compute one now (kept in memory; "
                    "'pylogmap map FILE' stores it in the file)?")
        buttons = {}
        for name in data.computable:
            buttons[box.addButton(f"Compute {EMBEDDING_TITLES.get(name, name)}",
                                  QtWidgets.QMessageBox.ButtonRole.AcceptRole)] = name
        box.addButton(QtWidgets.QMessageBox.StandardButton.Cancel)
        box.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        box.buttonClicked.connect(lambda b: self.compute_embedding(buttons[b]) if b in buttons else None)
        self.error_box = box
        box.open()

    def compute_embedding(self, name: str) -> None:
        """Compute a missing embedding in a worker, with a progress dialog."""
        data = self.data
        if data is None or data.compute_embedding is None or self._computing is not None:
            return
        title = EMBEDDING_TITLES.get(name, name)
        progress = QtWidgets.QProgressDialog(f"Computing the {title} embedding of {len(data):,} models…",
                                             None, 0, 0, self)
        progress.setWindowTitle("Computing embedding")
        progress.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        progress.setMinimumDuration(0)
        progress.show()

        def done() -> None:
            self._computing = None
            if not self._closed:
                progress.close()

        self._computing = create_worker(data.compute_embedding, name, _connect={
            "returned": lambda xy: self._embedding_ready(data, name, xy),
            "errored": self._embedding_failed,
            "finished": done,
        })

    def computing(self) -> bool:
        return self._computing is not None

    def _embedding_ready(self, data: MapData, name: str, xy) -> None:
        if self._closed or data is not self.data:
            return  # another map was opened meanwhile
        self.state.add_embedding(name, xy, note=f"{EMBEDDING_TITLES.get(name, name)} computed in this session "
                                 "(not saved; 'pylogmap map FILE' stores it)")

    def _embedding_failed(self, err: Exception) -> None:
        if self._closed:
            return
        self.show_error("Cannot compute embedding", f"{type(err).__name__}: {err}")
        self._sync_combos()

    # ------------------------------------------------------------------ selection and status
    def copy_name(self) -> None:
        if self.data is not None and self.state.selected >= 0:
            name = self.data.labels[self.state.selected]
            QtWidgets.QApplication.clipboard().setText(name)
            self.statusBar().showMessage(f"copied {name}", 3000)

    def _update_status(self) -> None:
        data = self.data
        if data is None:
            self.status_label.setText("File > Open a map file")
            return
        shown = int(self.state.visible_mask().sum())
        parts = [f"{Path(data.source).name if data.source else 'map'}: {len(data):,} models"]
        if shown != len(data):
            parts.append(f"{shown:,} shown")
        if data.n_texts:
            parts.append(f"{data.n_texts:,} texts")
        parts.extend(data.notes)
        self.status_label.setText("  ·  ".join(parts))

    def _show_help(self) -> None:
        QtWidgets.QMessageBox.information(
            self, "pylogmap viewer",
            "Drag to pan, wheel to zoom, Home to reset.\n"
            "Hover a point for its name, family, size and mean log-likelihood.\n"
            "Click a model for its nearest neighbours (KL in bits/byte and nats, ± standard error);\n"
            "ctrl-click a second model for the KL of the pair.\n"
            "Click a legend entry to hide or show a family. Search with Ctrl+F.\n"
            "File > Export writes the current view as PNG or SVG.")

    # ------------------------------------------------------------------ export and screenshots
    def export_dialog(self, kind: str) -> None:
        start = str(Path(self.data.source).with_suffix(f".{kind}")) if self.data is not None and self.data.source else f"map.{kind}"
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, f"Export view as {kind.upper()}", start,
                                                        f"{kind.upper()} (*.{kind})")
        if path:
            self.export(path)

    def export(self, path: str | Path) -> None:
        try:
            self.view.export(str(path))
        except (OSError, ValueError) as err:
            self.show_error("Export failed", f"Cannot write {path}: {err}")
            return
        self.statusBar().showMessage(f"wrote {path}", 4000)

    def screenshot(self, path: str | Path) -> None:
        """Render the whole window to a PNG (works offscreen)."""
        app = QtWidgets.QApplication.instance()
        for _ in range(3):
            app.processEvents()
        image = self.grab()
        if not image.save(str(path), "PNG"):
            raise PylogmapError(f"cannot write the screenshot {path}: check the folder exists and is writable")
