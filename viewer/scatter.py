"""The map widget: a 2-D scatter of the models with hover, click, legend, colour bar and overlays.

Built to stay fluid with 100,000 points:
- all models are one `pyqtgraph.ScatterPlotItem` in pixel mode, with brushes taken from a small
  cache (one per category, or 256 bins of a colour map) so that pyqtgraph's sprite atlas stays small;
- hover and click use a `scipy.spatial.cKDTree` over the visible points instead of pyqtgraph's
  per-point hit tests, and hover lookups are throttled to one per ~30 ms;
- selection, neighbours, the pair and trajectories are separate small overlay items, so selecting
  a model never redraws the 100,000 points.

What is drawn (embedding, colour, size, filters, selection, hover) is a `ViewerState`: the widget
writes hover, clicks and legend clicks to the state and redraws on the state's events.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pyqtgraph.exporters as exporters
from PySide6 import QtCore, QtGui, QtSvg, QtWidgets
from scipy.spatial import cKDTree

from pylogmap.mapping import OTHER_CATEGORY, category_colors

from .data import FAMILY
from .palette import N_COLOR_BINS, NUMERIC_COLORMAP, default_marker_size, size_levels, value_bins
from .state import ViewerState

HOVER_RADIUS_PX = 6.0
EMBEDDING_TITLES = {"tsne": "t-SNE", "pca": "PCA", "umap": "UMAP"}


def _qcolor(hex_or_rgb, alpha: int = 255) -> QtGui.QColor:
    c = QtGui.QColor(hex_or_rgb) if isinstance(hex_or_rgb, str) else QtGui.QColor(*hex_or_rgb)
    c.setAlpha(alpha)
    return c


class MapView(pg.GraphicsLayoutWidget):
    """Scatter of the active embedding of a `ViewerState`'s map, redrawn on the state's events."""

    def __init__(self, state: ViewerState, parent=None):
        pg.setConfigOptions(antialias=True, foreground="k", background="w")
        super().__init__(parent)
        self.state = state
        self.setBackground("w")
        self.plot: pg.PlotItem = self.addPlot(row=0, col=0)
        self.plot.setAspectLocked(True)
        for axis in ("left", "bottom"):
            self.plot.hideAxis(axis)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.vb.setBorder(pg.mkPen(200, 200, 200))

        self.traj_item = pg.PlotDataItem(pen=pg.mkPen(60, 60, 60, 170, width=1.6), connect="finite")
        self.traj_ends = pg.ScatterPlotItem(pxMode=True, size=7, symbol="t1", pen=None, brush=(40, 40, 40, 200))
        self.points = pg.ScatterPlotItem(pxMode=True, hoverable=False, tip=None, useCache=True)
        self.nb_lines = pg.PlotDataItem(pen=pg.mkPen(30, 30, 30, 150, width=1.3), connect="pairs")
        self.nb_rings = pg.ScatterPlotItem(pxMode=True, brush=None, pen=pg.mkPen(20, 20, 20, 220, width=1.6))
        self.pair_line = pg.PlotDataItem(pen=pg.mkPen(200, 0, 0, 220, width=2.0, style=QtCore.Qt.PenStyle.DashLine))
        self.pair_ring = pg.ScatterPlotItem(pxMode=True, brush=None, pen=pg.mkPen(200, 0, 0, 255, width=2.5))
        self.sel_ring = pg.ScatterPlotItem(pxMode=True, brush=None, pen=pg.mkPen(0, 0, 0, 255, width=2.8))
        self.hover_ring = pg.ScatterPlotItem(pxMode=True, brush=None, pen=pg.mkPen(0, 0, 0, 160, width=1.5))
        self.sel_label = pg.TextItem(color=(0, 0, 0), anchor=(0, 1.15), fill=pg.mkBrush(255, 255, 255, 210))
        self.pair_label = pg.TextItem(color=(170, 0, 0), anchor=(0, 1.15), fill=pg.mkBrush(255, 255, 255, 210))
        label_font = QtGui.QFont()
        label_font.setPointSize(10)
        label_font.setBold(True)
        self.sel_label.setFont(label_font)
        self.pair_label.setFont(label_font)
        self.plot.vb.setDefaultPadding(0.03)
        self.plot.addItem(self.points)
        # overlays never change the auto-range (only the points do)
        for item in (self.traj_item, self.traj_ends, self.nb_lines, self.nb_rings,
                     self.pair_line, self.pair_ring, self.sel_ring, self.hover_ring,
                     self.sel_label, self.pair_label):
            self.plot.addItem(item, ignoreBounds=True)
        self.traj_item.setZValue(-1)
        self.traj_ends.setZValue(-1)
        for item in (self.sel_label, self.pair_label):
            item.setZValue(20)
            item.hide()

        # The legend sits beside the map (never over points); the colour bar takes its place
        # when colouring by a numeric column.
        self.legend = pg.LegendItem(labelTextSize="10pt", brush=pg.mkBrush(255, 255, 255, 0),
                                    pen=pg.mkPen(255, 255, 255, 0), verSpacing=-4, labelTextColor=(20, 20, 20))
        self._show_legend(True)
        self.colorbar: pg.ColorBarItem | None = None

        self.hover_text = ""
        self.marker_size = 8.0
        self._draw_rows = np.empty(0, dtype=np.int64)  # MapData rows in the scatter, in draw order
        self._visible_rows = np.empty(0, dtype=np.int64)  # the subset not hidden by a filter
        self._tree: cKDTree | None = None
        self._sizes = np.empty(0)
        self._legend_items: dict[str, pg.ScatterPlotItem] = {}

        self._hover_pos: QtCore.QPointF | None = None
        self._hover_timer = QtCore.QTimer(self)
        self._hover_timer.setSingleShot(True)
        self._hover_timer.setInterval(30)
        self._hover_timer.timeout.connect(self._do_hover)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        self.setMouseTracking(True)

        events = state.events
        events.map.connect(self._on_map)
        events.embedding.connect(lambda: self.redraw(autorange=True))
        events.colour.connect(self.redraw)
        events.size.connect(self.redraw)
        events.filters.connect(self._on_filters)
        events.trajectories.connect(self._draw_trajectories)
        events.selection.connect(self._update_overlays)
        events.pair.connect(self._update_overlays)
        events.hover.connect(self._on_hover)
        events.highlight.connect(self._on_highlight)

    # ----------------------------------------------------------------- state events
    def _on_map(self) -> None:
        data = self.state.data
        self.marker_size = default_marker_size(len(data)) if data is not None else 8.0
        self.hover_ring.setData([], [])
        self.hover_text = ""
        self.redraw(autorange=True)

    def _on_filters(self) -> None:
        for category, sample in self._legend_items.items():
            sample.setVisible(not self.state.is_hidden(category, self.state.color_by))
        self.apply_filters()

    def _on_hover(self) -> None:
        row = self.state.hovered
        if row >= 0 and self.state.data is not None:
            self._ring(self.hover_ring, row, 1.6)
            self.hover_text = self.state.data.tooltip(row)
        else:
            self.hover_ring.setData([], [])
            self.hover_text = ""

    def _on_highlight(self) -> None:
        """Ring the model chosen in the side panel's table; -1 removes the ring."""
        row = self.state.highlighted
        if row < 0 or self.state.data is None or not np.isfinite(self.state.coords()[row]).all():
            self.hover_ring.setData([], [])
        else:
            self._ring(self.hover_ring, row, 1.6)

    def _ring(self, item: pg.ScatterPlotItem, row: int, factor: float) -> None:
        x, y = self.state.coords()[row]
        item.setData(x=[x], y=[y], size=[self._ring_size(row, factor)])

    # ----------------------------------------------------------------- drawing the points
    def visible_rows(self) -> np.ndarray:
        """The rows drawn now (on the embedding, not filtered out), in draw order."""
        return self._visible_rows.copy()

    def redraw(self, autorange: bool = False) -> None:
        """Rebuild the scatter (after a change of map, embedding, colour or size)."""
        state, data = self.state, self.state.data
        self._clear_colorbar()
        self.legend.clear()
        self._legend_items = {}
        if data is None or state.embedding is None:
            self.points.clear()
            self._draw_rows = self._visible_rows = np.empty(0, dtype=np.int64)
            self._tree = None
            self._draw_trajectories()
            self._update_overlays()
            return
        xy = state.coords()
        mask = np.isfinite(xy).all(axis=1)  # filters are applied as visibility, see apply_filters
        outline = len(data) <= 5_000
        pen = pg.mkPen(255, 255, 255, 200, width=0.8) if outline else pg.mkPen(None)
        alpha = 230 if len(data) <= 5_000 else 200

        if state.colour_is_categorical():
            cats = state.categories(state.color_by)
            order = state.category_order(state.color_by)
            colors = category_colors(order)
            brushes = {c: pg.mkBrush(_qcolor(colors[c], alpha)) for c in order}
            # draw the grey "others" underneath the coloured families
            rank = {c: (1 if c in ("others", OTHER_CATEGORY) else 2) for c in order}
            priority = np.array([rank[c] for c in cats])
            draw = np.lexsort((np.arange(len(data)), priority))
            draw = draw[mask[draw]]
            brush_list = [brushes[c] for c in cats[draw]]
            counts = dict(zip(*np.unique(cats, return_counts=True)))
            for c in order:
                sample = pg.ScatterPlotItem(symbol="o", size=10, pen=pg.mkPen(255, 255, 255), brush=brushes[c])
                sample.setVisible(not state.is_hidden(c, state.color_by))
                self.legend.addItem(sample, f"{c} ({counts[c]:,})")
                self._legend_items[c] = sample
            self._show_legend(True)
            # keep the legend at its natural height at the top (the layout would spread its rows)
            self.legend.layout.activate()
            self.legend.setMaximumHeight(self.legend.layout.preferredHeight() + 4)
            for legend_sample, _label in self.legend.items:
                legend_sample.sigClicked.connect(self._on_legend_clicked)
        else:
            values = data.numeric[state.color_by]
            bins, lo, hi = value_bins(values)
            cmap = pg.colormap.get(NUMERIC_COLORMAP)
            lut = cmap.getLookupTable(0.0, 1.0, N_COLOR_BINS, alpha=False)
            brushes_lut = [pg.mkBrush(_qcolor(tuple(int(v) for v in lut[b][:3]), alpha)) for b in range(N_COLOR_BINS)]
            nan_brush = pg.mkBrush(_qcolor((170, 170, 170), 140))
            draw = np.argsort(bins, kind="stable")  # unknown (-1) first, highest values on top
            draw = draw[mask[draw]]
            brush_list = [brushes_lut[b] if b >= 0 else nan_brush for b in bins[draw]]
            self._show_legend(False)
            self.colorbar = pg.ColorBarItem(values=(lo, hi), colorMap=cmap, interactive=False, width=14,
                                            label=state.color_by, colorMapMenu=False)
            self.addItem(self.colorbar, row=0, col=1)

        self.legend.setVisible(bool(self._legend_items))
        if state.size_by is not None:
            sizes = size_levels(data.numeric[state.size_by], self.marker_size)
        else:
            sizes = np.full(len(data), self.marker_size)
        self._sizes = sizes
        self._draw_rows = draw.astype(np.int64)
        self.points.setData(x=xy[draw, 0], y=xy[draw, 1], size=sizes[draw], brush=brush_list, pen=pen,
                            data=self._draw_rows)
        self.apply_filters()
        if autorange:
            # fit the map now and on every resize, until the user pans or zooms
            self.plot.vb.enableAutoRange(pg.ViewBox.XYAxes, True)

    def apply_filters(self) -> None:
        """Hide the points of hidden categories without rebuilding the scatter.

        pyqtgraph's `setPointsVisible` would look every point up in its sprite atlas again (about a
        second for 100,000 points); the sprites do not change, so their atlas rectangles are kept.
        """
        state = self.state
        if state.data is None or state.embedding is None or not len(self._draw_rows):
            self._visible_rows = np.empty(0, dtype=np.int64)
            self._tree = None
        else:
            vis = state.visible_mask()[self._draw_rows]
            src = self.points.data["sourceRect"].copy()
            self.points.setPointsVisible(vis, update=False)
            self.points.data["sourceRect"] = src
            self.points.updateSpots()
            self._visible_rows = self._draw_rows[vis]
            self._tree = cKDTree(state.coords()[self._visible_rows]) if len(self._visible_rows) else None
        self._draw_trajectories()
        self._update_overlays()
        self.plot.setTitle(self._title(), size="11pt")

    def _title(self) -> str:
        state, data = self.state, self.state.data
        if data is None:
            return ""
        shown = len(self._visible_rows)
        name = EMBEDDING_TITLES.get(state.embedding or "", state.embedding or "")
        what = f"{shown:,} models" if shown == len(data) else f"{shown:,} of {len(data):,} models"
        title = f"{name} map of {what}"
        if state.color_by != FAMILY:
            title += f" — colour: {state.color_by}"
        if state.size_by is not None:
            title += f" — size: {state.size_by}"
        return title

    def _show_legend(self, show: bool) -> None:
        """Put the legend beside the map, or take it out of the layout (for the colour bar)."""
        in_layout = self.legend in self.ci.items
        if show and not in_layout:
            self.addItem(self.legend, row=0, col=1)
            self.ci.layout.setAlignment(self.legend, QtCore.Qt.AlignmentFlag.AlignTop)
        elif not show and in_layout:
            self.removeItem(self.legend)

    def _clear_colorbar(self) -> None:
        if self.colorbar is not None:
            self.removeItem(self.colorbar)
            self.colorbar = None

    def _on_legend_clicked(self, item) -> None:
        """pyqtgraph has already toggled the sample's visibility; the state follows it."""
        for cat, sample in self._legend_items.items():
            if sample is item:
                self.state.set_category_visible(cat, item.isVisible(), self.state.color_by)
                return

    # ----------------------------------------------------------------- overlays
    def _draw_trajectories(self) -> None:
        state, data = self.state, self.state.data
        if data is None or state.embedding is None or not state.show_trajectories or not data.trajectories:
            self.traj_item.setData([], [])
            self.traj_ends.setData([], [])
            return
        xy = state.coords()
        mask = state.visible_mask()
        xs, ys, ends = [], [], []
        for traj in data.trajectories:
            rows = traj.rows[mask[traj.rows]]
            if len(rows) < 2:
                continue
            xs.extend(xy[rows, 0].tolist() + [np.nan])
            ys.extend(xy[rows, 1].tolist() + [np.nan])
            ends.append(rows[-1])
        self.traj_item.setData(np.array(xs), np.array(ys), connect="finite")
        ends = np.array(ends, dtype=np.int64)
        self.traj_ends.setData(x=xy[ends, 0], y=xy[ends, 1]) if len(ends) else self.traj_ends.setData([], [])

    def _ring_size(self, row: int, factor: float) -> float:
        base = self._sizes[row] if len(self._sizes) > row >= 0 else self.marker_size
        return max(base * factor, base + 8)

    def _update_overlays(self) -> None:
        """Draw the selected model, the lines to its neighbours and the pair (from the state)."""
        state, data = self.state, self.state.data
        for item in (self.sel_ring, self.nb_rings, self.pair_ring):
            item.setData([], [])
        self.nb_lines.setData([], [])
        self.pair_line.setData([], [])
        self.sel_label.hide()
        self.pair_label.hide()
        selected = state.selected
        if selected < 0 or data is None or state.embedding is None:
            return
        xy = state.coords()
        if not np.isfinite(xy[selected]).all():
            return
        x0, y0 = xy[selected]
        nb = state.neighbour_rows()
        nb = nb[np.isfinite(xy[nb]).all(axis=1)] if len(nb) else nb
        if len(nb):
            lx = np.empty(2 * len(nb))
            ly = np.empty(2 * len(nb))
            lx[0::2], ly[0::2] = x0, y0
            lx[1::2], ly[1::2] = xy[nb, 0], xy[nb, 1]
            self.nb_lines.setData(lx, ly, connect="pairs")
            self.nb_rings.setData(x=xy[nb, 0], y=xy[nb, 1], size=[self._ring_size(r, 1.5) for r in nb])
        self.sel_ring.setData(x=[x0], y=[y0], size=[self._ring_size(selected, 2.2)])
        self.sel_label.setText(data.labels[selected])
        self.sel_label.setPos(x0, y0)
        self.sel_label.show()
        pair = state.pair
        if pair >= 0 and np.isfinite(xy[pair]).all():
            x1, y1 = xy[pair]
            self.pair_line.setData([x0, x1], [y0, y1])
            self.pair_ring.setData(x=[x1], y=[y1], size=[self._ring_size(pair, 2.2)])
            self.pair_label.setText(data.labels[pair])
            self.pair_label.setPos(x1, y1)
            self.pair_label.show()

    def centre_on(self, row: int) -> None:
        """Centre the view on a model (keeping the zoom, zooming in if the whole map is shown)."""
        xy = self.state.coords()[row]
        if not np.isfinite(xy).all():
            return
        (x0, x1), (y0, y1) = self.plot.vb.viewRange()
        w, h = x1 - x0, y1 - y0
        self.plot.vb.setRange(xRange=(xy[0] - w / 2, xy[0] + w / 2), yRange=(xy[1] - h / 2, xy[1] + h / 2), padding=0)

    def view_centre(self) -> tuple[float, float]:
        (x0, x1), (y0, y1) = self.plot.vb.viewRange()
        return (x0 + x1) / 2, (y0 + y1) / 2

    # ----------------------------------------------------------------- hover and click
    def row_at_view(self, x: float, y: float, radius_px: float = HOVER_RADIUS_PX) -> int:
        """The visible model nearest to a point in view (data) coordinates within a few pixels, or -1."""
        if self._tree is None:
            return -1
        px, py = self.plot.vb.viewPixelSize()
        scale = max(px, py)
        reach = (radius_px + float(self._sizes.max() if len(self._sizes) else self.marker_size) / 2) * scale
        dist, i = self._tree.query((x, y), k=1, distance_upper_bound=reach)
        if not np.isfinite(dist):
            return -1
        return int(self._visible_rows[i])

    def row_at_scene(self, pos: QtCore.QPointF) -> int:
        if not self.plot.vb.sceneBoundingRect().contains(pos):
            return -1
        if self.legend.isVisible() and self.legend.sceneBoundingRect().contains(pos) and self._legend_items:
            return -1
        p = self.plot.vb.mapSceneToView(pos)
        return self.row_at_view(p.x(), p.y())

    def _on_mouse_moved(self, pos) -> None:
        self._hover_pos = QtCore.QPointF(pos)
        if not self._hover_timer.isActive():
            self._hover_timer.start()

    def _do_hover(self) -> None:
        if self._hover_pos is None:
            return
        self.hover_at_scene(self._hover_pos)

    def hover_at_scene(self, pos: QtCore.QPointF) -> int:
        """Hover the model at a scene position (state and tooltip); returns the row (-1 = none)."""
        row = self.row_at_scene(pos)
        if row != self.state.hovered:
            self.state.hover(row)
            if row >= 0:
                QtWidgets.QToolTip.showText(self.mapToGlobal(self.mapFromScene(pos)), self.hover_text, self)
            else:
                QtWidgets.QToolTip.hideText()
        return row

    def _on_mouse_clicked(self, ev) -> None:
        if ev.button() != QtCore.Qt.MouseButton.LeftButton or ev.double():
            return
        pos = ev.scenePos()
        if self._legend_items and self.legend.sceneBoundingRect().contains(pos):
            return
        if not self.plot.vb.sceneBoundingRect().contains(pos):
            return
        mods = ev.modifiers()
        second = bool(mods & (QtCore.Qt.KeyboardModifier.ControlModifier | QtCore.Qt.KeyboardModifier.MetaModifier
                              | QtCore.Qt.KeyboardModifier.ShiftModifier))
        self.state.click(self.row_at_scene(pos), second=second)

    def scene_pos_of(self, row: int) -> QtCore.QPointF:
        """Scene position of a model (for tests and programmatic hovering)."""
        x, y = self.state.coords()[row]
        return self.plot.vb.mapViewToScene(QtCore.QPointF(float(x), float(y)))

    # ----------------------------------------------------------------- export
    def export(self, path: str) -> None:
        """Write the current view (map, legend, colour bar) as PNG or SVG, chosen by the suffix."""
        suffix = str(path).lower().rsplit(".", 1)[-1]
        if suffix == "svg":
            self._export_svg(str(path))
        elif suffix in ("png", "jpg", "jpeg", "bmp", "tif", "tiff"):
            exp = exporters.ImageExporter(self.ci)
            width = int(self.ci.sceneBoundingRect().width())
            exp.parameters()["width"] = max(2 * width, 800)
            exp.parameters()["antialias"] = True
            exp.export(str(path))
        else:
            raise ValueError(f"cannot export to {path!r}: use a .png or .svg file name")

    def _export_svg(self, path: str) -> None:
        """SVG through QSvgGenerator: pyqtgraph's own SVG exporter fails on Qt 6.12's path output.

        Items are switched to pyqtgraph's export mode while painting, so the points are drawn as
        vector symbols rather than cached pixmaps.
        """
        rect = self.ci.sceneBoundingRect()
        gen = QtSvg.QSvgGenerator()
        gen.setFileName(path)
        gen.setSize(rect.size().toSize())
        gen.setViewBox(QtCore.QRectF(0, 0, rect.width(), rect.height()))
        gen.setTitle(self._title())
        gen.setDescription("pylogmap map view")
        items = [it for it in self.scene().items() if hasattr(it, "setExportMode")]
        painter = QtGui.QPainter()
        if not painter.begin(gen):
            raise OSError(f"cannot open {path} for writing")
        try:
            painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
            opts = {"antialias": True, "background": QtGui.QColor("white"), "painter": painter}
            for it in items:
                it.setExportMode(True, opts)
            painter.fillRect(QtCore.QRectF(0, 0, rect.width(), rect.height()), QtGui.QColor("white"))
            self.scene().render(painter, QtCore.QRectF(0, 0, rect.width(), rect.height()), rect)
        finally:
            for it in items:
                it.setExportMode(False)
            painter.end()
