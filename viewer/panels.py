"""The side panel: the selected model, its nearest neighbours with KL estimates, and a pair's KL.

It shows what a `ViewerState` holds (redrawn on its map, selection and pair events) and writes
back the number of neighbours and the neighbour chosen in its table.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from pylogmap.mapping.geometry import SAME_KL_NATS
from pylogmap.numbers import format_pm

from .data import MEAN_LOGLIK, SIZE, MapData, Neighbours, PairKL
from .state import ViewerState

NEIGHBOUR_COLUMNS = ("#", "model", "KL bits/byte", "KL nats/text")
HINT = (
    "Click a model on the map (or search for one) to see its nearest neighbours.\n\n"
    "Ctrl-click (or shift-click) a second model to see the KL estimate of the pair."
)

#: Shown after a neighbour whose numbers are those of the selected model (`SAME_KL_NATS`).
IDENTICAL = " (identical: the model itself)"


class ModelPanel(QtWidgets.QWidget):
    """Shows the selected model and its neighbours; emits `rowActivated` when a neighbour is
    double-clicked (the window selects it and centres the map on it)."""

    rowActivated = QtCore.Signal(int)
    copyRequested = QtCore.Signal()

    def __init__(self, state: ViewerState, parent=None):
        super().__init__(parent)
        self.state = state
        self.setMinimumWidth(440)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)

        self.title = QtWidgets.QLabel("No model selected")
        font = self.title.font()
        font.setPointSize(font.pointSize() + 2)
        font.setBold(True)
        self.title.setFont(font)
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.title)

        self.info = QtWidgets.QLabel(HINT)
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.info)

        row = QtWidgets.QHBoxLayout()
        self.copy_button = QtWidgets.QPushButton("Copy name")
        self.copy_button.setEnabled(False)
        self.copy_button.clicked.connect(self.copyRequested)
        row.addWidget(self.copy_button)
        row.addStretch(1)
        row.addWidget(QtWidgets.QLabel("neighbours k ="))
        self.k_spin = QtWidgets.QSpinBox()
        self.k_spin.setRange(1, 200)
        self.k_spin.setValue(state.k)
        self.k_spin.valueChanged.connect(state.set_k)
        row.addWidget(self.k_spin)
        layout.addLayout(row)

        self.nb_header = QtWidgets.QLabel("<b>Nearest neighbours</b> (KL estimate ± standard error)")
        layout.addWidget(self.nb_header)
        self.table = QtWidgets.QTableWidget(0, len(NEIGHBOUR_COLUMNS))
        self.table.setHorizontalHeaderLabels(NEIGHBOUR_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.setTextElideMode(QtCore.Qt.TextElideMode.ElideLeft)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.cellDoubleClicked.connect(self._on_double_click)
        self.table.currentCellChanged.connect(
            lambda r, _c, _pr, _pc: state.highlight(self._rows[r] if 0 <= r < len(self._rows) else -1))
        self.table.setToolTip("Double-click a neighbour to select it")
        layout.addWidget(self.table, 1)

        self.pair_box = QtWidgets.QGroupBox("Pair")
        pair_layout = QtWidgets.QVBoxLayout(self.pair_box)
        self.pair_label = QtWidgets.QLabel("Ctrl-click a second model to compare it with the selected one.")
        self.pair_label.setWordWrap(True)
        self.pair_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        pair_layout.addWidget(self.pair_label)
        layout.addWidget(self.pair_box)
        self._rows: list[int] = []

        state.events.map.connect(self.clear)
        state.events.selection.connect(self._on_selection)
        state.events.pair.connect(self._on_pair)

    # ------------------------------------------------------------------ state events
    def _on_selection(self) -> None:
        state = self.state
        if state.data is None or state.selected < 0:
            self.clear()
            return
        self.show_model(state.data, state.selected, state.neighbours, state.neighbour_error)
        self.clear_pair()

    def _on_pair(self) -> None:
        state = self.state
        if state.data is None or state.selected < 0 or state.pair < 0:
            self.clear_pair()
            return
        self.show_pair(state.data, state.selected, state.pair, state.pair_kl, state.pair_error)

    # ------------------------------------------------------------------ content
    def clear(self) -> None:
        self.title.setText("No model selected")
        self.info.setText(HINT)
        self.copy_button.setEnabled(False)
        self.table.setRowCount(0)
        self._rows = []
        self.clear_pair()

    def clear_pair(self) -> None:
        self.pair_label.setText("Ctrl-click a second model to compare it with the selected one.")

    def show_model(self, data: MapData, row: int, neighbours: Neighbours | None, error: str | None = None) -> None:
        self.title.setText(data.labels[row])
        lines = [f"family: {data.families[row]}"]
        for name in (SIZE, MEAN_LOGLIK):
            if name in data.numeric:
                lines.append(f"{name}: {data.value_text(row, name)}")
        for name in data.numeric:  # other columns, where this model has a value
            if name not in (SIZE, MEAN_LOGLIK) and np.isfinite(data.numeric[name][row]):
                lines.append(f"{name}: {data.value_text(row, name)}")
        for name, col in data.categorical.items():
            if name != "family" and str(col[row]) not in ("", "unknown"):
                lines.append(f"{name}: {col[row]}")
        self.info.setText("\n".join(lines))
        self.copy_button.setEnabled(True)
        self.table.setRowCount(0)
        self._rows = []
        if error:
            self.nb_header.setText(f"<b>Nearest neighbours</b>: {error}")
            return
        self.nb_header.setText("<b>Nearest neighbours</b> (KL estimate ± standard error)")
        if neighbours is None:
            return
        self.table.setRowCount(len(neighbours))
        mono = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        for r, j in enumerate(neighbours.rows):
            cells = (
                str(r + 1),
                data.labels[int(j)] + (IDENTICAL if neighbours.kl_nats[r] <= SAME_KL_NATS else ""),
                format_pm(neighbours.kl_bpb[r], neighbours.se_bpb[r]),
                format_pm(neighbours.kl_nats[r], neighbours.se_nats[r]),
            )
            for c, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if c != 1:
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
                    item.setFont(mono)
                else:
                    item.setToolTip(data.tooltip(int(j)))
                self.table.setItem(r, c, item)
            self._rows.append(int(j))

    def show_pair(self, data: MapData, a: int, b: int, kl: PairKL | None, error: str | None = None) -> None:
        head = f"<b>{_esc(data.labels[a])}</b> vs <b style='color:#b00000'>{_esc(data.labels[b])}</b>"
        if error or kl is None:
            self.pair_label.setText(f"{head}<br>{_esc(error or 'no KL estimate available')}")
            return
        self.pair_label.setText(
            f"{head}<br>KL ≈ <b>{format_pm(kl.kl_bpb, kl.se_bpb)}</b> bits/byte"
            f"<br>= {format_pm(kl.kl_nats, kl.se_nats)} nats/text"
        )

    def neighbour_table(self) -> list[tuple[str, ...]]:
        """The table's text, row by row (what a user reads; used by tests)."""
        return [
            tuple(self.table.item(r, c).text() for c in range(self.table.columnCount()))
            for r in range(self.table.rowCount())
        ]

    def neighbour_rows(self) -> list[int]:
        return list(self._rows)

    def _on_double_click(self, r: int, _c: int) -> None:
        if 0 <= r < len(self._rows):
            self.rowActivated.emit(self._rows[r])


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
