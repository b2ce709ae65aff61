"""The main window: map, side panel, toolbar (search, embedding, colour, size), menus, live refresh.

The window shows a `MapData`; where it came from is a `source` object with `load() -> MapData`,
`changed() -> bool` and `path` (see `loader.FileSource`), so the same window serves a map file,
tests on arrays, and File > Open. Problems the user can fix (`PylogmapError`) are shown in a
dialog; the window stays usable.
"""

from __future__ import annotations

import threading
import traceback
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from pylogmap.errors import PylogmapError

from .data import FAMILY, MapData
from .panels import ModelPanel
from .scatter import EMBEDDING_TITLES, MapView

POLL_MS = 2000
NO_SIZE = "uniform"


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("pylogmap viewer")
        self.resize(1400, 900)
        self.data: MapData | None = None
        self.source = None
        self.error_box: QtWidgets.QMessageBox | None = None
        self.last_error: str = ""
        self._job: dict | None = None  # running embedding computation

        self.view = MapView(self)
        self.setCentralWidget(self.view)
        self.panel = ModelPanel(self)
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

        self.view.hovered.connect(self._on_hover)
        self.view.clicked.connect(self._on_click)
        self.view.filtersChanged.connect(self._update_status)
        self.panel.rowActivated.connect(lambda r: self.select_row(r, centre=True))
        self.panel.rowHighlighted.connect(self.view.highlight)
        self.panel.kChanged.connect(lambda _k: self.select_row(self.view.selected) if self.view.selected >= 0 else None)
        self.panel.copyRequested.connect(self.copy_name)

        self.poll_timer = QtCore.QTimer(self)
        self.poll_timer.setInterval(POLL_MS)
        self.poll_timer.timeout.connect(self.check_for_updates)

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
        self.completer.activated.connect(self.search_for)
        self.search.returnPressed.connect(lambda: self.search_for(self.search.text()))
        tb.addWidget(self.search)
        tb.addSeparator()

        tb.addWidget(QtWidgets.QLabel(" Map "))
        self.embedding_combo = QtWidgets.QComboBox()
        self.embedding_combo.activated.connect(self._on_embedding_chosen)
        tb.addWidget(self.embedding_combo)
        tb.addWidget(QtWidgets.QLabel("  Colour "))
        self.color_combo = QtWidgets.QComboBox()
        self.color_combo.setMinimumContentsLength(14)
        self.color_combo.activated.connect(lambda _i: self.set_color_by(self.color_combo.currentData()))
        tb.addWidget(self.color_combo)
        tb.addWidget(QtWidgets.QLabel("  Size "))
        self.size_combo = QtWidgets.QComboBox()
        self.size_combo.setMinimumContentsLength(10)
        self.size_combo.activated.connect(lambda _i: self.set_size_by(self.size_combo.currentData()))
        tb.addWidget(self.size_combo)
        tb.addSeparator()
        self.traj_check = QtWidgets.QCheckBox("Trajectories")
        self.traj_check.setChecked(True)
        self.traj_check.setToolTip("Connect checkpoints of one run, or layers of one model, in order")
        self.traj_check.toggled.connect(self.view.set_show_trajectories)
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
        edit.addAction("Clear &selection", self.clear_selection).setShortcut(QtGui.QKeySequence("Esc"))

        view = bar.addMenu("&View")
        act = view.addAction("&Reset zoom", lambda: self.view.plot.vb.enableAutoRange(enable=True))
        act.setShortcut(QtGui.QKeySequence("Home"))
        self.show_all_action = view.addAction("Show &all families", self.show_all_categories)
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
    def open_source(self, source) -> bool:
        """Load a source (`load()`, `changed()`, `path`) and show it; errors go to a dialog."""
        try:
            data = source.load()
        except PylogmapError as err:
            self.show_error("Cannot open map", str(err))
            return False
        except Exception as err:  # a bug or an unexpected file state: report it, never crash
            self.show_error("Cannot open map", f"Unexpected error while reading {getattr(source, 'path', '')}: "
                            f"{type(err).__name__}: {err}", details=traceback.format_exc())
            return False
        self.source = source
        self.set_map(data)
        self.poll_timer.start()
        return True

    def open_path(self, path: str | Path) -> bool:
        from .loader import FileSource

        return self.open_source(FileSource(path))

    def set_map(self, data: MapData, *, keep_view: bool = False) -> None:
        """Show a MapData (keeps the selection by label and, with keep_view, the zoom)."""
        old_sel = self.data.labels[self.view.selected] if self.data is not None and self.view.selected >= 0 else None
        old_range = self.view.plot.vb.viewRange() if keep_view else None
        self.data = data
        self.refresh_bar.hide()
        self.setWindowTitle(f"pylogmap viewer — {Path(data.source).name}" if data.source else "pylogmap viewer")
        self.completer_model.setStringList(list(data.labels))
        self._fill_combos()
        embedding = self.view.embedding if self.view.embedding in data.embeddings else None
        self.view.set_data(data, embedding)
        self._sync_combos()
        self.panel.clear()
        if old_range is not None:
            self.view.plot.vb.setRange(xRange=old_range[0], yRange=old_range[1], padding=0)
        if old_sel is not None and data.row_of(old_sel) is not None:
            self.select_row(data.row_of(old_sel))
        self._update_status()
        if not data.embeddings:
            self._offer_compute()

    def reload(self) -> None:
        if self.source is None:
            return
        try:
            data = self.source.load()
        except PylogmapError as err:
            self.show_error("Cannot reload map", str(err))
            return
        self.set_map(data, keep_view=True)

    def check_for_updates(self) -> bool:
        """Poll the source; show the refresh bar when a scorer committed new models."""
        if self.source is None or not hasattr(self.source, "changed"):
            return False
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

    # ------------------------------------------------------------------ combos and appearance
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
        for combo, value in ((self.embedding_combo, self.view.embedding), (self.color_combo, self.view.color_by),
                             (self.size_combo, self.view.size_by)):
            i = combo.findData(value)
            if i >= 0:
                combo.setCurrentIndex(i)

    def set_color_by(self, column: str) -> None:
        self.view.set_color_by(column)
        self._sync_combos()
        self._update_status()

    def set_size_by(self, column: str | None) -> None:
        self.view.set_size_by(column)
        self._sync_combos()

    def set_embedding(self, name: str) -> None:
        self.view.set_embedding(name)
        self._sync_combos()
        self._update_status()

    def show_all_categories(self) -> None:
        self.view.hidden.clear()
        self.view.redraw()
        self._update_status()

    def _on_embedding_chosen(self, _index: int) -> None:
        value = self.embedding_combo.currentData()
        if isinstance(value, str) and value.startswith("compute:"):
            self.compute_embedding(value.split(":", 1)[1])
        elif value:
            self.set_embedding(value)

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
        """Compute a missing embedding in a worker thread, with a progress dialog."""
        data = self.data
        if data is None or data.compute_embedding is None or self._job is not None:
            return
        progress = QtWidgets.QProgressDialog(f"Computing the {EMBEDDING_TITLES.get(name, name)} embedding of "
                                             f"{len(data):,} models…", None, 0, 0, self)
        progress.setWindowTitle("Computing embedding")
        progress.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        progress.setMinimumDuration(0)
        progress.show()
        job: dict = {"name": name, "data": data, "progress": progress, "result": None, "error": None}

        def work():
            try:
                job["result"] = np.asarray(data.compute_embedding(name), dtype=np.float64)
            except Exception as err:  # reported in the GUI thread
                job["error"] = f"{type(err).__name__}: {err}"

        job["thread"] = threading.Thread(target=work, name=f"pylogmap-viewer-{name}", daemon=True)
        self._job = job
        job["thread"].start()
        job["timer"] = QtCore.QTimer(self)
        job["timer"].setInterval(100)
        job["timer"].timeout.connect(self._poll_job)
        job["timer"].start()

    def computing(self) -> bool:
        return self._job is not None

    def _poll_job(self) -> None:
        job = self._job
        if job is None or job["thread"].is_alive():
            return
        job["timer"].stop()
        job["progress"].close()
        self._job = None
        if job["error"]:
            self.show_error("Cannot compute embedding", job["error"])
            self._sync_combos()
            return
        if job["data"] is not self.data:
            return  # another map was opened meanwhile
        self.data.embeddings[job["name"]] = job["result"]
        self.data.notes.append(f"{EMBEDDING_TITLES.get(job['name'], job['name'])} computed in this session "
                               "(not saved; 'pylogmap map FILE' stores it)")
        self._fill_combos()
        self.view.set_data(self.data, job["name"])
        self._sync_combos()
        self._update_status()

    # ------------------------------------------------------------------ selection
    def select_row(self, row: int, *, centre: bool = False) -> None:
        data = self.data
        if data is None or row is None or row < 0:
            self.clear_selection()
            return
        neighbours, error = None, None
        if data.kl is None:
            error = "no log-likelihoods in this file to estimate KL"
        else:
            try:
                neighbours = data.kl.neighbours(row, self.panel.k_spin.value())
            except PylogmapError as err:
                error = str(err)
        nb_rows = neighbours.rows if neighbours is not None else ()
        self.view.set_selection(row, nb_rows, pair=-1)
        self.panel.show_model(data, row, neighbours, error)
        self.panel.clear_pair()
        if centre:
            self.view.centre_on(row)
        self._update_status()

    def select_pair(self, row: int) -> None:
        data = self.data
        a = self.view.selected
        if data is None or a < 0 or row < 0 or row == a:
            return
        kl, error = None, None
        if data.kl is None:
            error = "no log-likelihoods in this file to estimate KL"
        else:
            try:
                kl = data.kl.pair(a, row)
            except PylogmapError as err:
                error = str(err)
        self.view.set_selection(a, self.view.neighbour_rows, pair=row)
        self.panel.show_pair(data, a, row, kl, error)

    def clear_selection(self) -> None:
        self.view.set_selection(-1)
        self.panel.clear()

    def search_for(self, text: str) -> int | None:
        """Select and centre the model best matching `text`; returns its row or None."""
        if self.data is None:
            return None
        row = self.data.find(text)
        if row is None:
            self.statusBar().showMessage(f"no model matches {text!r}", 4000)
            return None
        if not self.view.visible_mask()[row]:
            self.show_all_categories()
        self.select_row(row, centre=True)
        return row

    def copy_name(self) -> None:
        if self.data is not None and self.view.selected >= 0:
            name = self.data.labels[self.view.selected]
            QtWidgets.QApplication.clipboard().setText(name)
            self.statusBar().showMessage(f"copied {name}", 3000)

    def _on_click(self, row: int, second: bool) -> None:
        if row < 0:
            if not second:
                self.clear_selection()
            return
        if second and self.view.selected >= 0:
            self.select_pair(row)
        else:
            self.select_row(row)

    def _on_hover(self, row: int) -> None:
        if row >= 0 and self.data is not None:
            self.status_label.setText(self.view.hover_text.replace("\n", "  ·  "))
        else:
            self._update_status()

    def _update_status(self) -> None:
        data = self.data
        if data is None:
            self.status_label.setText("File > Open a map file")
            return
        shown = len(self.view.visible_rows())
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
