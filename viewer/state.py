"""What the viewer shows and what the user picked, apart from Qt: `ViewerState` and its events.

The state holds the map being shown (a `MapData`), the active embedding, the colour-by and
size-by columns, the categories hidden by the legend filters, whether trajectories are drawn, the
selected model with its k nearest neighbours, the second model of a pair with its KL estimate,
the hovered model, the neighbour ringed from the side panel and the last search. The widgets
(map, side panel, window) change it only through its methods and redraw when one of its events
fires, so the rules (what a new map keeps, what a filter hides, what a click or a search selects)
live in one place and are tested on arrays, without Qt.

Events are plain lists of callbacks (`state.events.selection.connect(callback)`; a callback
takes no arguments and reads the state). Qt signals would tie this model to a QObject.
numpy only; no Qt, no torch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pylogmap.errors import PylogmapError
from pylogmap.mapping import MAX_LEGEND_CATEGORIES, OTHER_CATEGORY, order_by_count

from .data import FAMILY, MapData, Neighbours, PairKL

DEFAULT_K = 10
NO_KL = "no log-likelihoods in this file to estimate KL"


class Event:
    """Callbacks run in the order they were connected, each time the state emits this event."""

    def __init__(self, name: str):
        self.name = name
        self._callbacks: list[Callable[[], object]] = []

    def connect(self, callback: Callable[[], object]) -> Callable[[], object]:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[[], object]) -> None:
        self._callbacks.remove(callback)

    def emit(self) -> None:
        for callback in list(self._callbacks):
            callback()

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {len(self._callbacks)} callbacks)"


class StateEvents:
    """One event per kind of change of a `ViewerState`."""

    def __init__(self):
        self.map = Event("map")  # a new MapData: anything may have changed
        self.embedding = Event("embedding")
        self.colour = Event("colour")
        self.size = Event("size")
        self.filters = Event("filters")  # categories hidden or shown
        self.trajectories = Event("trajectories")  # drawn or not
        self.selection = Event("selection")  # the selected model and its neighbours (the pair is cleared)
        self.pair = Event("pair")  # the second model of a pair and its KL estimate
        self.hover = Event("hover")  # the model under the pointer
        self.highlight = Event("highlight")  # the neighbour ringed from the side panel
        self.search = Event("search")  # a search ran (`search_text`, `search_result`)


class ViewerState:
    """The viewer's state (see the module docstring). Read the attributes; change them through
    the methods, which emit the matching event. Rows are `MapData` row indices, -1 = none."""

    def __init__(self, k: int = DEFAULT_K):
        self.events = StateEvents()
        self.data: MapData | None = None
        self.embedding: str | None = None
        self.color_by: str = FAMILY
        self.size_by: str | None = None
        self.hidden: dict[str, set[str]] = {}  # categorical column -> hidden categories
        self.show_trajectories = True
        self.k = int(k)
        self.selected = -1
        self.neighbours: Neighbours | None = None
        self.neighbour_error: str | None = None  # why there are no neighbours to show
        self.pair = -1
        self.pair_kl: PairKL | None = None
        self.pair_error: str | None = None
        self.hovered = -1
        self.highlighted = -1
        self.search_text = ""
        self.search_result: int | None = None
        self._categories: dict[str, np.ndarray] = {}
        self._visible: np.ndarray | None = None

    # ------------------------------------------------------------------ the map
    def set_map(self, data: MapData, embedding: str | None = None) -> None:
        """Show a new map. Keeps the embedding, colour, size and filters that still apply, and
        the selection by label; `embedding` chooses the embedding to show when the map has it."""
        old = self.data.labels[self.selected] if self.data is not None and self.selected >= 0 else None
        self.data = data
        if embedding not in data.embeddings:
            embedding = self.embedding if self.embedding in data.embeddings else next(iter(data.embeddings), None)
        self.embedding = embedding
        if self.color_by not in data.categorical and self.color_by not in data.numeric:
            self.color_by = FAMILY
        if self.size_by is not None and self.size_by not in data.numeric:
            self.size_by = None
        self.hidden = {column: hidden for column, hidden in self.hidden.items() if column in data.categorical}
        self._categories = {}
        self._visible = None
        self._reset_selection()
        self.hovered = self.highlighted = -1
        self.events.map.emit()
        row = data.row_of(old) if old is not None else None
        if row is not None:
            self.select(row)

    def add_embedding(self, name: str, xy, note: str = "") -> None:
        """Add coordinates computed in this session to the map and show them."""
        data = self._require_data()
        xy = np.asarray(xy, dtype=np.float64)
        if xy.shape != (len(data), 2):
            raise ValueError(f"embedding {name!r} has shape {xy.shape}, expected ({len(data)}, 2)")
        data.embeddings[name] = xy
        if note:
            data.notes.append(note)
        self.set_map(data, embedding=name)

    def coords(self) -> np.ndarray:
        """The (models, 2) coordinates of the active embedding (NaN where a model is not on it)."""
        data = self._require_data()
        if self.embedding is None:
            raise KeyError("the map has no embedding")
        return data.embeddings[self.embedding]

    # ------------------------------------------------------------------ appearance
    def set_embedding(self, name: str) -> None:
        if self.data is None or name not in self.data.embeddings:
            raise KeyError(f"no embedding {name!r}")
        self.embedding = name
        self._visible = None
        self.events.embedding.emit()

    def set_color_by(self, column: str) -> None:
        if self.data is None or (column not in self.data.numeric and column not in self.data.categorical):
            raise KeyError(f"no column {column!r}")
        self.color_by = column
        self.events.colour.emit()

    def set_size_by(self, column: str | None) -> None:
        if column is not None and (self.data is None or column not in self.data.numeric):
            raise KeyError(f"no numeric column {column!r}")
        self.size_by = column
        self.events.size.emit()

    def set_show_trajectories(self, show: bool) -> None:
        self.show_trajectories = bool(show)
        self.events.trajectories.emit()

    def colour_is_categorical(self) -> bool:
        """Whether the map is coloured by categories (a legend) rather than a numeric column."""
        return self.data is not None and self.color_by in self.data.categorical

    # ------------------------------------------------------------------ categories and filters
    def categories(self, column: str) -> np.ndarray:
        """The column as strings, with categories beyond the legend's capacity merged into one."""
        cached = self._categories.get(column)
        if cached is not None:
            return cached
        data = self._require_data()
        values = data.categorical[column].astype(str)
        order = data.family_order() if column == FAMILY else order_by_count(values)
        if len(order) > MAX_LEGEND_CATEGORIES:
            keep = order[: MAX_LEGEND_CATEGORIES - 1]
            values = np.where(np.isin(values, keep), values, OTHER_CATEGORY)
        self._categories[column] = values
        return values

    def category_order(self, column: str) -> list[str]:
        """The categories of a column in legend order (published families first for `family`)."""
        data = self._require_data()
        values = self.categories(column)
        present = set(np.unique(values))
        base = data.family_order() if column == FAMILY else order_by_count(values)
        order = [c for c in base if c in present and c != OTHER_CATEGORY]
        if OTHER_CATEGORY in present:  # the merged rest comes last, once
            order.append(OTHER_CATEGORY)
        return order

    def filter_column(self) -> str:
        """The column the legend filters: the colour column when it is categorical, else family."""
        return self.color_by if self.colour_is_categorical() else FAMILY

    def is_hidden(self, category: str, column: str | None = None) -> bool:
        return category in self.hidden.get(column or self.filter_column(), set())

    def set_category_visible(self, category: str, visible: bool, column: str | None = None) -> None:
        """Show or hide the models of one category (of the legend's column by default)."""
        hidden = self.hidden.setdefault(column or self.filter_column(), set())
        (hidden.discard if visible else hidden.add)(category)
        self._visible = None
        self.events.filters.emit()

    def toggle_category(self, category: str) -> None:
        """What a click on a legend entry does."""
        column = self.filter_column()
        self.set_category_visible(category, self.is_hidden(category, column), column)

    def show_all(self) -> None:
        """Clear every filter."""
        self.hidden.clear()
        self._visible = None
        self.events.filters.emit()

    def visible_mask(self) -> np.ndarray:
        """Models drawn now: on the active embedding and not hidden by a filter."""
        data = self.data
        if data is None or self.embedding is None:
            return np.zeros(0 if data is None else len(data), dtype=bool)
        if self._visible is None:
            mask = np.isfinite(self.coords()).all(axis=1)
            for column, hidden in self.hidden.items():
                if hidden:
                    mask &= ~np.isin(self.categories(column), list(hidden))
            self._visible = mask
        return self._visible

    # ------------------------------------------------------------------ selection
    def select(self, row: int | None) -> None:
        """Select a model and find its k nearest neighbours (None or -1 clears the selection)."""
        data = self.data
        if data is None or row is None or row < 0:
            self.clear_selection()
            return
        neighbours, error = None, None
        if data.kl is None:
            error = NO_KL
        else:
            try:
                neighbours = data.kl.neighbours(int(row), self.k)
            except PylogmapError as err:
                error = str(err)
        self._reset_selection()
        self.selected, self.neighbours, self.neighbour_error = int(row), neighbours, error
        self.events.selection.emit()

    def select_pair(self, row: int) -> None:
        """Make `row` the second model of a pair with the selected one and estimate their KL."""
        data, first = self.data, self.selected
        if data is None or first < 0 or row < 0 or row == first:
            return
        kl, error = None, None
        if data.kl is None:
            error = NO_KL
        else:
            try:
                kl = data.kl.pair(first, int(row))
            except PylogmapError as err:
                error = str(err)
        self.pair, self.pair_kl, self.pair_error = int(row), kl, error
        self.events.pair.emit()

    def clear_selection(self) -> None:
        self._reset_selection()
        self.events.selection.emit()

    def click(self, row: int, *, second: bool = False) -> None:
        """A click on the map: on a model it selects it, or with the second-selection modifier
        makes it the pair of the selected one; on empty space it clears (unless the modifier is held)."""
        if row < 0:
            if not second:
                self.clear_selection()
        elif second and self.selected >= 0:
            self.select_pair(row)
        else:
            self.select(row)

    def set_k(self, k: int) -> None:
        """How many neighbours to find; recomputes those of the selected model."""
        self.k = max(1, int(k))
        if self.selected >= 0:
            self.select(self.selected)

    def neighbour_rows(self) -> np.ndarray:
        return self.neighbours.rows if self.neighbours is not None else np.empty(0, dtype=np.int64)

    def _reset_selection(self) -> None:
        self.selected, self.neighbours, self.neighbour_error = -1, None, None
        self.pair, self.pair_kl, self.pair_error = -1, None, None

    # ------------------------------------------------------------------ pointing and searching
    def hover(self, row: int) -> None:
        """The model under the pointer (-1: none); emits only when it changes."""
        row = int(row)
        if row != self.hovered:
            self.hovered = row
            self.events.hover.emit()

    def highlight(self, row: int) -> None:
        """Ring a model without selecting it (the neighbour chosen in the side panel; -1: none)."""
        self.highlighted = int(row)
        self.events.highlight.emit()

    def search(self, text: str) -> int | None:
        """Select the model best matching `text` (see `MapData.find`), showing all families first
        when a filter hides it; returns its row, or None when nothing matches."""
        if self.data is None:
            return None
        row = self.data.find(text)
        self.search_text, self.search_result = text, row
        if row is not None:
            if not self.visible_mask()[row]:
                self.show_all()
            self.select(row)
        self.events.search.emit()
        return row

    def _require_data(self) -> MapData:
        if self.data is None:
            raise KeyError("no map is shown")
        return self.data

