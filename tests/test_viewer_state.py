"""The viewer's Qt-free state (`pylogmap.viewer.state`), on arrays: plain pytest, no Qt needed.

What a new map keeps, what a filter hides, what a click, a search or a change of k selects, and
which events fire, checked without any widget; tests/test_viewer.py drives the same rules
through the real widgets.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pylogmap.errors import PylogmapError
from pylogmap.mapping import MAX_LEGEND_CATEGORIES, OTHER_CATEGORY
from pylogmap.viewer.data import FAMILY, MEAN_LOGLIK, SIZE, MapData, Neighbours, PairKL
from pylogmap.viewer.state import NO_KL, Event, ViewerState

EVENTS = ("map", "embedding", "colour", "size", "filters", "trajectories", "selection", "pair", "hover",
          "highlight", "search")


class FakeKL:
    """A KL provider that says which rows it was asked about (neighbours: the next k rows)."""

    def __init__(self, n: int, fail: bool = False):
        self.n, self.fail, self.calls = n, fail, []

    def neighbours(self, row: int, k: int) -> Neighbours:
        self.calls.append(("neighbours", row, k))
        if self.fail:
            raise PylogmapError("the row has no log-likelihoods")
        rows = np.array([(row + 1 + i) % self.n for i in range(k)], dtype=np.int64)
        kl = np.arange(1, k + 1, dtype=np.float64)
        return Neighbours(rows, kl, kl / 10, kl / 100, kl / 1000)

    def pair(self, i: int, j: int) -> PairKL:
        self.calls.append(("pair", i, j))
        if self.fail:
            raise PylogmapError("the pair has no log-likelihoods")
        return PairKL(float(abs(i - j)), 0.1, 0.01, 0.001)


def make_data(n: int = 8, *, kl=True, tsne_missing: int | None = 7, labels=None) -> MapData:
    families = np.array(["llama-2", "opt", "llama-2", "others", "opt", "gemma", "llama-2", "opt"] * (n // 8 + 1))[:n]
    rng = np.random.default_rng(0)
    tsne = rng.normal(size=(n, 2))
    if tsne_missing is not None:
        tsne[tsne_missing] = np.nan
    return MapData(
        labels=labels or [f"org/model-{i}" for i in range(n)],
        families=families,
        numeric={MEAN_LOGLIK: -np.arange(n, dtype=float), SIZE: np.geomspace(1e6, 1e10, n)},
        categorical={"architecture": np.array(["llama", "opt"] * (n // 2), dtype=object)},
        embeddings={"tsne": tsne, "pca": rng.normal(size=(n, 2))},
        kl=FakeKL(n) if kl else None,
    )


@pytest.fixture
def state():
    st = ViewerState()
    st.fired = []
    for name in EVENTS:
        getattr(st.events, name).connect(lambda name=name: st.fired.append(name))
    return st


def test_event_calls_its_callbacks_in_order_until_disconnected():
    event, calls = Event("x"), []
    first = event.connect(lambda: calls.append(1))
    event.connect(lambda: calls.append(2))
    event.emit()
    event.disconnect(first)
    event.emit()
    assert calls == [1, 2, 2]
    assert "x" in repr(event)


def test_a_new_map_starts_on_its_first_embedding_coloured_by_family(state):
    data = make_data()
    state.set_map(data)
    assert state.fired == ["map"]
    assert state.data is data and state.embedding == "tsne"
    assert state.color_by == FAMILY and state.size_by is None and state.hidden == {}
    assert state.selected == -1 and state.pair == -1 and state.hovered == -1
    np.testing.assert_array_equal(state.coords(), data.embeddings["tsne"])
    # the model without t-SNE coordinates is not drawn
    assert list(np.flatnonzero(~state.visible_mask())) == [7]


def test_a_new_map_keeps_what_still_applies(state):
    state.set_map(make_data())
    state.set_embedding("pca")
    state.set_color_by("architecture")
    state.set_size_by(SIZE)
    state.set_category_visible("opt", False, FAMILY)
    state.select(3)
    state.fired.clear()

    # the same models again (a reload): every choice is kept, the selection by label
    again = make_data()
    state.set_map(again)
    assert state.fired == ["map", "selection"]
    assert (state.embedding, state.color_by, state.size_by) == ("pca", "architecture", SIZE)
    assert state.hidden == {FAMILY: {"opt"}}
    assert state.selected == 3 and state.neighbours is not None

    # a map without those columns, embedding or model: back to the defaults
    other = MapData([f"other/{i}" for i in range(4)], ["opt"] * 4, embeddings={"tsne": np.zeros((4, 2))})
    state.set_map(other)
    assert (state.embedding, state.color_by, state.size_by) == ("tsne", FAMILY, None)
    assert state.hidden == {FAMILY: {"opt"}}  # family is a column of every map
    assert state.selected == -1


def test_unknown_embedding_or_column_is_refused(state):
    with pytest.raises(KeyError):
        state.set_embedding("tsne")  # no map yet
    state.set_map(make_data())
    with pytest.raises(KeyError, match="umap"):
        state.set_embedding("umap")
    with pytest.raises(KeyError, match="nope"):
        state.set_color_by("nope")
    with pytest.raises(KeyError, match="architecture"):
        state.set_size_by("architecture")  # categorical, not numeric
    state.set_size_by(None)
    assert state.fired[-1] == "size"


def test_filters_hide_categories_of_the_legend_column(state):
    data = make_data(tsne_missing=None)
    state.set_map(data)
    state.fired.clear()
    state.toggle_category("opt")  # coloured by family: the legend filters families
    assert state.fired == ["filters"]
    assert state.is_hidden("opt")
    np.testing.assert_array_equal(state.visible_mask(), data.families != "opt")

    state.set_color_by("architecture")  # a categorical colour: the legend filters that column
    assert state.filter_column() == "architecture"
    state.toggle_category("llama")
    archs = data.categorical["architecture"]
    np.testing.assert_array_equal(state.visible_mask(), (data.families != "opt") & (archs != "llama"))
    state.toggle_category("llama")
    np.testing.assert_array_equal(state.visible_mask(), data.families != "opt")

    state.set_color_by(MEAN_LOGLIK)  # a numeric colour: the legend's filters stay on families
    assert state.filter_column() == FAMILY and not state.colour_is_categorical()
    state.show_all()
    assert state.visible_mask().all() and state.fired[-1] == "filters"


def test_categories_beyond_the_legend_are_merged():
    n = 2 * MAX_LEGEND_CATEGORIES
    names = [f"cat{i:02d}" for i in range(n)]
    values = np.array([names[i] for i in range(n) for _ in range(n - i)], dtype=object)  # cat00 most common
    data = MapData([f"m{i}" for i in range(len(values))], ["others"] * len(values),
                   categorical={"source": values}, embeddings={"pca": np.zeros((len(values), 2))})
    state = ViewerState()
    state.set_map(data)
    order = state.category_order("source")
    assert order[: MAX_LEGEND_CATEGORIES - 1] == names[: MAX_LEGEND_CATEGORIES - 1]
    assert order[-1] == OTHER_CATEGORY and len(order) == MAX_LEGEND_CATEGORIES
    cats = state.categories("source")
    assert set(cats[values == names[-1]]) == {OTHER_CATEGORY}
    state.set_color_by("source")
    state.toggle_category(OTHER_CATEGORY)
    assert not state.visible_mask()[values == names[-1]].any()
    assert state.visible_mask()[values == names[0]].all()


def test_select_finds_k_neighbours_and_k_recomputes_them(state):
    data = make_data()
    state.set_map(data)
    state.fired.clear()
    state.select(2)
    assert state.fired == ["selection"]
    assert state.selected == 2 and state.neighbour_error is None
    assert state.k == 10 and list(state.neighbour_rows()) == [(3 + i) % 8 for i in range(10)]
    state.set_k(3)
    assert list(state.neighbour_rows()) == [3, 4, 5]
    assert data.kl.calls[-1] == ("neighbours", 2, 3)
    state.clear_selection()
    assert state.selected == -1 and len(state.neighbour_rows()) == 0
    state.set_k(0)  # at least one neighbour; nothing selected, nothing computed
    assert state.k == 1 and data.kl.calls[-1] == ("neighbours", 2, 3)


def test_clicks_select_pair_and_clear(state):
    state.set_map(make_data())
    state.click(1)
    assert state.selected == 1 and state.pair == -1
    state.fired.clear()
    state.click(4, second=True)
    assert state.fired == ["pair"]
    assert state.selected == 1 and state.pair == 4 and state.pair_kl.kl_nats == 3.0
    state.click(-1, second=True)  # empty space with the modifier held: nothing changes
    assert state.selected == 1 and state.pair == 4
    state.click(6)  # a plain click selects anew and drops the pair
    assert state.selected == 6 and state.pair == -1 and state.pair_kl is None
    state.select_pair(6)  # a model is not its own pair
    assert state.pair == -1
    state.click(-1)
    assert state.selected == -1
    state.click(5, second=True)  # nothing selected yet: the modifier selects
    assert state.selected == 5


def test_kl_problems_become_messages(state):
    state.set_map(make_data(kl=False))
    state.select(0)
    assert state.selected == 0 and state.neighbours is None and state.neighbour_error == NO_KL
    state.select_pair(1)
    assert state.pair == 1 and state.pair_kl is None and state.pair_error == NO_KL

    data = make_data()
    data.kl.fail = True
    state.set_map(data)
    state.select(0)
    assert state.neighbour_error == "the row has no log-likelihoods"
    state.select_pair(1)
    assert state.pair_error == "the pair has no log-likelihoods"


def test_hover_fires_on_change_only_and_highlight_always(state):
    state.set_map(make_data())
    state.fired.clear()
    state.hover(3)
    state.hover(3)
    state.hover(-1)
    state.highlight(2)
    state.highlight(2)
    assert state.fired == ["hover", "hover", "highlight", "highlight"]
    assert state.hovered == -1 and state.highlighted == 2


def test_search_selects_and_shows_a_hidden_model(state):
    data = make_data(labels=["org/alpha-1b", "org/alpha-7b", "other/Beta", "x/opt-1", "y", "z", "w", "v"])
    state.set_map(data)
    state.set_category_visible("opt", False)  # hides org/alpha-7b (an opt model here)
    assert not state.visible_mask()[1]
    state.fired.clear()
    assert state.search("ALPHA-7B") == 1
    assert state.fired == ["filters", "selection", "search"]
    assert state.selected == 1 and state.hidden == {} and state.visible_mask()[1]
    assert (state.search_text, state.search_result) == ("ALPHA-7B", 1)
    state.fired.clear()
    assert state.search("gamma") is None
    assert state.fired == ["search"] and state.search_result is None
    assert state.selected == 1  # a failed search leaves the selection alone
    assert ViewerState().search("alpha") is None  # no map: nothing to search


def test_an_embedding_computed_in_the_session_is_added_and_shown(state):
    data = make_data()
    del data.embeddings["pca"]
    state.set_map(data)
    state.select(4)
    with pytest.raises(ValueError, match="expected"):
        state.add_embedding("pca", np.zeros((3, 2)))
    xy = np.arange(2 * len(data), dtype=float).reshape(-1, 2)
    state.add_embedding("pca", xy, note="PCA computed in this session")
    assert state.embedding == "pca" and "pca" in data.embeddings
    np.testing.assert_array_equal(state.coords(), xy)
    assert data.notes == ["PCA computed in this session"]
    assert state.selected == 4  # kept


def test_trajectories_switch(state):
    assert state.show_trajectories
    state.set_show_trajectories(False)
    assert not state.show_trajectories and state.fired == ["trajectories"]


def test_the_state_never_imports_qt():
    code = ("import sys; import pylogmap.viewer.state, pylogmap.viewer.data, pylogmap.viewer.loader; "
            "bad = [m for m in ('PySide6', 'pyqtgraph', 'superqt', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
