"""The map as a publication figure: the 2-D embedding of a map file drawn with matplotlib.

`read_figure_data` reads what the figure shows from a map file, and nothing more (no
log-likelihood matrix): the coordinates of one embedding (t-SNE by default) of the rows on the
map, the colour column (the family, as the viewer shows it, or any annotation column), the
parameter counts, the trajectories (checkpoints of one run, layers of one model, grouped by
`trajectories.group_trajectories`) and the facts of the caption (text set, N texts, tau).

`draw_map` draws it: points coloured with the map's own colours (`mapping.families`, the
viewer's), optionally one marker shape per category of a second column, a legend with counts
(a colour bar for a numeric column), arrows along each trajectory in order, labels for chosen
models or automatically a few per category (labels never overlap each other and avoid the
points), optional sizes by parameter count, a title and a caption line. The file type follows
the suffix: PNG, or PDF and SVG as vector figures for papers whose text stays text. Marker size
and opacity follow the number of points, so a map of 20 models and one of 1,000 both read.
`plot_map` does both steps.

matplotlib (Agg, no display) is imported only when a figure is drawn.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pylogmap.analysis.trajectories import group_trajectories
from pylogmap.errors import MapFileError, PylogmapError
from pylogmap.mapping import (
    MAX_LEGEND_CATEGORIES,
    OTHER_CATEGORY,
    category_colors,
    default_families,
    family_order,
    order_by_count,
)
from pylogmap.store import open_map

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS = (".png", ".pdf", ".svg")
EMBEDDING_TITLES = {"tsne": "t-SNE", "pca": "PCA", "umap": "UMAP"}
FAMILY = "family"
BUILT_IN_COLUMNS = (FAMILY, "architecture", "mean_loglik")
UNKNOWN = "others"  # the family (and category) of rows that have none, drawn grey
# Marker shapes of the categories of a --marker column, in turn (see marker_shapes).
SHAPES = ("o", "^", "s", "D", "v", "P", "X", "*", "h", "<", ">", "p")
# A label sits on a translucent white box (not a stroke effect, which would turn SVG text into paths).
LABEL_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.75}


@dataclass
class FigureData:
    """The rows on the map (those with coordinates) and what the figure says about them."""

    path: str
    labels: list[str]
    xy: np.ndarray  # [n, 2]
    color_column: str
    categories: np.ndarray | None  # str [n] when the colour column is categorical
    values: np.ndarray | None  # float [n] when it is numeric (NaN: unknown)
    n_params: np.ndarray  # float [n], NaN where unknown
    trajectories: list[np.ndarray]  # ordered point indices, one array per trajectory
    embedding: str = "tsne"
    marker_column: str | None = None
    shapes: np.ndarray | None = None  # str [n]: the marker column's categories, when there is one
    text_set: str = ""
    n_texts: int = 0
    mean_bytes: float = float("nan")
    tau: float | None = None
    n_rows: int = 0  # rows in the file, on the map or not
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class MapFigure:
    """What `plot_map` wrote: the file, the labels it placed (and their boxes, in display
    pixels), the number of points and of trajectory arrows, and notes for the user."""

    path: Path
    labels: list[str]
    n_points: int
    n_arrows: int = 0
    label_boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _color_columns(annotations: dict) -> list[str]:
    return list(BUILT_IN_COLUMNS) + sorted(c for c in annotations if c not in BUILT_IN_COLUMNS)


def read_figure_data(path, *, embedding: str = "tsne", color: str = FAMILY, marker: str | None = None) -> FigureData:
    """Read the figure's data from the map file at `path` (see the module docstring); `marker`
    names a categorical column whose categories get one marker shape each.

    A file without the embedding is an error that says to run `pylogmap map`; an unknown colour
    or marker column is an error that lists the columns there are.
    """
    if embedding not in EMBEDDING_TITLES:
        raise PylogmapError(f"unknown embedding {embedding!r}: use one of {', '.join(EMBEDDING_TITLES)}.")
    with open_map(path) as mf:
        got = mf.read_derived(embedding)
        where = str(path)
        if got is None:
            extra = " --umap" if embedding == "umap" else ""
            raise MapFileError(f"{where} has no {EMBEDDING_TITLES[embedding]} coordinates yet: run "
                               f"'pylogmap map {where}{extra}' first, then plot it.")
        coords = np.asarray(got[0], dtype=np.float64)
        n_rows = int(mf.n_models)
        xy_all = np.full((n_rows, 2), np.nan)
        xy_all[: min(n_rows, len(coords))] = coords[:n_rows]
        rows = np.flatnonzero(np.isfinite(xy_all).all(axis=1))
        if rows.size == 0:
            raise MapFileError(f"{where} has no model on its {EMBEDDING_TITLES[embedding]} map: run "
                               f"'pylogmap map {where}' after scoring models into it.")
        annotations = mf.annotations()
        for option, column in (("--color", color), ("--marker", marker)):
            if column is not None and column not in _color_columns(annotations):
                raise PylogmapError(f"{option} {column!r} is not a column of {where}; its columns are: "
                                    f"{', '.join(_color_columns(annotations))}.")
        table = mf.models_table()
        labels_all = mf.labels()
        categories, values = _color_values(color, table, annotations, mf, rows)
        shapes = None
        if marker is not None:
            shapes, numeric = _color_values(marker, table, annotations, mf, rows)
            if shapes is None:
                raise PylogmapError(f"--marker {marker!r} is a numeric column; marker shapes need categories "
                                    f"(a column of names such as family or kind).")
        n_params = table["n_params"][rows].astype(np.float64)
        texts = mf.texts()
        attrs = mf.map_attrs()
        text_bytes = mf.text_bytes()
    labels = [labels_all[r] for r in rows]
    trajectories, notes = _trajectories(table, rows, labels)
    return FigureData(
        path=str(path), labels=labels, xy=xy_all[rows], color_column=color, categories=categories, values=values,
        n_params=np.where(n_params > 0, n_params, np.nan), trajectories=trajectories, embedding=embedding,
        text_set=texts.name or texts.hash[:19], n_texts=len(texts),
        mean_bytes=float(np.mean(text_bytes)) if len(text_bytes) else float("nan"),
        tau=float(attrs["tau"]) if "tau" in attrs else None, n_rows=n_rows, notes=notes,
        marker_column=marker, shapes=shapes,
    )


def _color_values(color: str, table: dict, annotations: dict, mf, rows: np.ndarray):
    """(categories, values) of the colour column on the map's rows: one of them is None."""
    if color == FAMILY:
        if FAMILY in annotations and annotations[FAMILY].dtype.kind == "O":
            fam = np.asarray(annotations[FAMILY], dtype=object)[rows].astype(str)
            return np.where(fam == "", UNKNOWN, fam), None
        names = [str(n) for n in table["name"][rows]]
        archs = [str(a) for a in table["architecture"][rows]]
        return np.array(default_families(names, archs), dtype=str), None
    if color == "architecture":
        arch = table["architecture"][rows].astype(str)
        return np.where(arch == "", UNKNOWN, arch), None
    if color == "mean_loglik":
        got = mf.read_derived("mean_loglik")
        if got is None:
            raise MapFileError(f"{mf.path} has no mean log-likelihoods yet: run 'pylogmap map {mf.path}' first.")
        values = np.full(len(rows), np.nan)
        stored = np.asarray(got[0], dtype=np.float64)
        inside = rows < len(stored)
        values[inside] = stored[rows[inside]]
        return None, values
    col = np.asarray(annotations[color])
    if col.dtype.kind in "fiub":
        return None, col[rows].astype(np.float64)
    cats = col[rows].astype(str)
    return np.where(cats == "", UNKNOWN, cats), None


def _trajectories(table: dict, rows: np.ndarray, labels: list[str]) -> tuple[list[np.ndarray], list[str]]:
    """Ordered point indices of the checkpoint and layer trajectories among the rows on the map."""
    try:
        found = group_trajectories([str(n) for n in table["name"][rows]], [str(r) for r in table["revision"][rows]],
                                   [int(x) for x in table["layer"][rows]], [int(x) for x in table["step"][rows]], labels)
    except PylogmapError as err:  # checkpoints without step numbers: the map without arrows
        return [], [f"no trajectories drawn: {err}"]
    return [np.asarray(t.rows, dtype=np.int64) for t in found], []


# ------------------------------------------------------------------------------------------ drawing


def figure_path(out) -> Path:
    """`out` as a Path, or an error when its suffix is not a figure format."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise PylogmapError(f"-o {out}: the figure is written as PNG, PDF or SVG; end the file name in "
                            f"{', '.join(FORMATS)}.")
    return out


def _pyplot():
    """matplotlib's pyplot on the Agg backend (figures are files here, never windows)."""
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - matplotlib is a dependency of pylogmap
        raise PylogmapError("drawing the map needs matplotlib, which is missing: pip install matplotlib.") from err
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def point_style(n_points: int) -> tuple[float, float, float]:
    """(marker area in pt^2, opacity, edge width in pt) for a map of `n_points` models: large,
    opaque, outlined markers for tens of models; small, translucent, bare ones for thousands."""
    area = float(np.clip(4000.0 / max(n_points, 1), 9.0, 64.0))
    alpha = 0.92 if n_points <= 200 else (0.75 if n_points <= 2000 else 0.5)
    edge = 0.5 if n_points <= 500 else 0.0
    return area, alpha, edge


def param_areas(n_params: np.ndarray, area: float) -> np.ndarray:
    """Marker areas scaled by log10 of the parameter count, 0.4x..2.6x `area`; `area` where unknown."""
    out = np.full(n_params.shape, area)
    known = np.isfinite(n_params) & (n_params > 0)
    if known.any():
        logs = np.log10(n_params[known])
        lo, hi = float(logs.min()), float(logs.max())
        t = np.zeros_like(logs) if hi <= lo else (logs - lo) / (hi - lo)
        out[known] = area * (0.4 + 2.2 * t)
    return out


def count_text(v: float) -> str:
    """1.3e9 -> '1.3B', 135e6 -> '135M' (a parameter count for the size legend)."""
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.0f}"


def legend_categories(data: FigureData) -> tuple[np.ndarray, list[str]]:
    """The categories as the legend shows them (the rarest merged beyond the legend's capacity,
    as in the viewer) and their legend order; colours follow this order (`category_colors`)."""
    values = data.categories
    order = family_order(values) if data.color_column == FAMILY else order_by_count(values)
    if len(order) > MAX_LEGEND_CATEGORIES:
        keep = order[: MAX_LEGEND_CATEGORIES - 1]
        values = np.where(np.isin(values, keep), values, OTHER_CATEGORY)
        order = keep + [OTHER_CATEGORY]
    return values, order


def auto_labels(data: FigureData, per_category: int | None = None) -> list[int]:
    """A few representative points per category, in the order they should be tried: the one
    nearest its category's centre first, then, among the category's central three quarters (not
    its strays), the ones farthest from those already chosen; every category gets its first label
    before any gets a second."""
    cats = data.categories if data.categories is not None else np.full(len(data), "all")
    groups = [np.flatnonzero(cats == c) for c in dict.fromkeys(cats.tolist())]
    if per_category is None:
        per_category = int(np.clip(12 // max(len(groups), 1), 1, 3))
    chosen_rounds: list[list[int]] = []
    for members in groups:
        pts = data.xy[members]
        spread = ((pts - np.median(pts, axis=0)) ** 2).sum(axis=1)
        first = int(np.argmin(spread))
        picked = [first]
        dist = ((pts - pts[first]) ** 2).sum(axis=1)
        if len(members) > 4:  # strays are not what a category looks like
            dist[spread > np.quantile(spread, 0.75)] = 0.0
        while len(picked) < min(per_category, len(members)):
            nxt = int(np.argmax(dist))
            if dist[nxt] <= 0:
                break
            picked.append(nxt)
            dist = np.minimum(dist, ((pts - pts[nxt]) ** 2).sum(axis=1))
        chosen_rounds.append([int(members[p]) for p in picked])
    out: list[int] = []
    for i in range(max((len(c) for c in chosen_rounds), default=0)):
        out += [c[i] for c in chosen_rounds if i < len(c)]
    return out


def draw_map(
    data: FigureData,
    out,
    *,
    label_rows: list[int] | None = None,
    per_category: int | None = None,
    marker_order: list[str] | None = None,
    size_by_params: bool = False,
    title: str | None = None,
    caption: str | None = None,
    trajectories: bool = True,
    width: float = 7.0,
    height: float = 5.0,
    dpi: int = 200,
) -> MapFigure:
    """Draw `data` into the file `out` (.png, .pdf or .svg) and return what was written.

    `label_rows` (point indices) are always labelled; without them a few points per category are
    (`auto_labels`, `per_category` each), each only where it overlaps nothing; `per_category=0`
    draws no labels. `marker_order` lists the marker column's categories that get the first
    shapes (a circle first), in that order.
    """
    out = figure_path(out)
    plt = _pyplot()
    import matplotlib

    rc = {"svg.fonttype": "none", "pdf.fonttype": 42, "font.size": 8, "axes.titlesize": 9}
    with matplotlib.rc_context(rc):
        fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
        try:
            area, alpha, edge = point_style(len(data))
            areas = param_areas(data.n_params, area) if size_by_params else np.full(len(data), area)
            rasterize = len(data) > 5000 and out.suffix.lower() != ".png"  # vector files stay small
            handles = _draw_points(ax, data, areas, alpha, edge, rasterize, marker_order)
            n_arrows = _draw_trajectories(ax, data, areas) if trajectories else 0
            _dress(fig, ax, data, handles, size_by_params, area, title, caption, trajectories)
            fig.canvas.draw()  # settle the layout: labels are placed in the final display coordinates
            fig.set_layout_engine("none")
            if label_rows is not None:
                placed = _place_labels(fig, ax, data, areas, list(label_rows), force=True)
            elif per_category == 0:
                placed = {}
            else:
                placed = _place_labels(fig, ax, data, areas, auto_labels(data, per_category), force=False)
            out.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(out, dpi=dpi, metadata={"Title": title or _default_title(data), "Creator": "pylogmap plot"})
        finally:
            plt.close(fig)
    return MapFigure(out, [data.labels[i] for i in placed], len(data), n_arrows, list(placed.values()), list(data.notes))


def marker_shapes(shapes: np.ndarray | None, order: list[str] | None = None) -> tuple[np.ndarray, dict[str, str]]:
    """The marker of every point and the legend's {category: marker}: SHAPES in turn to the
    categories named in `order` first, then to the rest, most common first (beyond len(SHAPES)
    categories, the shapes repeat)."""
    if shapes is None:
        return np.full(0, "o"), {}
    present = order_by_count(shapes)
    ranked = [c for c in (order or []) if c in present] + [c for c in present if c not in (order or [])]
    table = {cat: SHAPES[i % len(SHAPES)] for i, cat in enumerate(ranked)}
    return np.array([table[c] for c in shapes.astype(str)]), table


def _draw_points(ax: Axes, data: FigureData, areas: np.ndarray, alpha: float, edge: float, rasterize: bool,
                 marker_order: list[str] | None) -> list:
    """The scatter (one layer per colour and shape, unknown colours underneath); legend handles."""
    from matplotlib.colors import Normalize

    common = dict(linewidths=edge, edgecolors="white", alpha=alpha, rasterized=rasterize, zorder=2)
    point_markers, shape_table = marker_shapes(data.shapes, marker_order)
    if not shape_table:
        point_markers = np.full(len(data), "o")
    size = math.sqrt(max(float(np.median(areas)), 16.0))
    handles: list = []
    if data.categories is None:
        values = data.values
        known = np.isfinite(values)
        norm = Normalize(*(np.nanmin(values), np.nanmax(values)) if known.any() else (0.0, 1.0))
        sc = None
        for shape in dict.fromkeys(point_markers.tolist()):
            here = point_markers == shape
            if (here & ~known).any():
                ax.scatter(*data.xy[here & ~known].T, s=areas[here & ~known], c="#a6a6a6", marker=shape, **common)
            if (here & known).any():
                sc = ax.scatter(*data.xy[here & known].T, s=areas[here & known], c=values[here & known],
                                cmap="viridis", norm=norm, marker=shape, **common)
        if sc is not None:
            ax.figure.colorbar(sc, ax=ax, label=data.color_column, shrink=0.8)
    else:
        values, order = legend_categories(data)
        colors = category_colors(order)
        drawn = sorted(order, key=lambda c: 0 if c in (UNKNOWN, OTHER_CATEGORY) else 1)  # grey underneath
        for cat in drawn:
            for shape in dict.fromkeys(point_markers[values == cat].tolist()):
                members = (values == cat) & (point_markers == shape)
                ax.scatter(*data.xy[members].T, s=areas[members], c=colors[cat], marker=shape, **common)
        if shape_table:
            handles.append(_legend_header(data.color_column))
        for cat in order:
            handles.append(_legend_marker(size, colors[cat], f"{cat} ({int((values == cat).sum()):,})"))
    if shape_table:
        handles.append(_legend_header(data.marker_column))
        counts = dict(zip(*np.unique(data.shapes.astype(str), return_counts=True)))
        for cat, shape in shape_table.items():
            handles.append(_legend_marker(size, "0.55", f"{cat} ({counts[cat]:,})", shape))
    return handles


def _legend_marker(size: float, color, label: str, shape: str = "o"):
    """A legend entry: one marker of `size` points, as on the map."""
    from matplotlib.lines import Line2D

    return Line2D([], [], ls="", marker=shape, markersize=size, markerfacecolor=color, markeredgecolor="white",
                  markeredgewidth=0.5, label=label)


def _legend_header(text: str):
    """A legend entry without a marker that heads a block of entries (set in bold by `_dress`)."""
    from matplotlib.lines import Line2D

    return Line2D([], [], ls="", marker="", label=text, gid="header")


def _draw_trajectories(ax: Axes, data: FigureData, areas: np.ndarray) -> int:
    """An arrow from each member of a trajectory to the next, in order, from rim to rim; returns
    the number of arrows."""
    from matplotlib.patches import FancyArrowPatch

    n = 0
    for path in data.trajectories:
        for a, b in zip(path, path[1:]):
            shrink_a = math.sqrt(areas[a]) / 2 + 0.5
            shrink_b = math.sqrt(areas[b]) / 2 + 0.5
            ax.add_patch(FancyArrowPatch(
                tuple(data.xy[a]), tuple(data.xy[b]), arrowstyle="-|>", mutation_scale=7, lw=0.7,
                color="0.3", alpha=0.85, shrinkA=shrink_a, shrinkB=shrink_b, zorder=1.5,
            ))
            n += 1
    return n


def _default_title(data: FigureData) -> str:
    return f"{len(data):,} language models by their log-likelihood vectors"


def default_caption(data: FigureData, trajectories: bool = True) -> str:
    """The caption line: what the coordinates are and the text set they come from."""
    parts = [f"{EMBEDDING_TITLES[data.embedding]} of the double-centred log-likelihoods",
             f"text set: {data.text_set}", f"N = {data.n_texts:,} texts"]
    if math.isfinite(data.mean_bytes):
        parts[-1] += f" (mean {data.mean_bytes:.0f} bytes)"
    if data.tau is not None:
        parts.append(f"clipped at tau = {data.tau:.1f} nats")
    if trajectories and data.trajectories:
        parts.append("arrows: checkpoints and layers in order")
    return "; ".join(parts)


def _dress(fig: Figure, ax: Axes, data: FigureData, handles: list, size_by_params: bool, area: float,
           title: str | None, caption: str | None, trajectories: bool) -> None:
    """Axes, legend, title and caption."""
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    name = EMBEDDING_TITLES[data.embedding]
    ax.set_xlabel(f"{name} 1", fontsize=7, color="0.35")
    ax.set_ylabel(f"{name} 2", fontsize=7, color="0.35")
    for spine in ax.spines.values():
        spine.set_color("0.7")
    ax.margins(0.06)
    if size_by_params and np.isfinite(data.n_params).any():
        known = data.n_params[np.isfinite(data.n_params)]
        areas = param_areas(data.n_params, area)[np.isfinite(data.n_params)]
        handles.append(_legend_header("parameters"))
        for q in sorted({float(known.min()), float(np.median(known)), float(known.max())}):
            i = int(np.argmin(np.abs(known - q)))
            handles.append(_legend_marker(math.sqrt(areas[i]), "0.6", count_text(known[i])))
    if handles:
        headed = any(h.get_gid() == "header" for h in handles)
        legend = ax.legend(handles=handles, title=None if headed or data.categories is None else data.color_column,
                           loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=7, title_fontsize=8,
                           ncols=2 if len(handles) > 16 else 1, borderaxespad=0.0, handletextpad=0.3)
        for handle, text in zip(handles, legend.get_texts()):
            if handle.get_gid() == "header":
                text.set_fontweight("bold")
    fig.suptitle(title or _default_title(data), fontsize=10)
    line = caption if caption is not None else default_caption(data, trajectories)
    # wrapped to about 85 % of the figure's width (a character of this font is about 0.55 em wide)
    fig.supxlabel(textwrap.fill(line, width=int(0.85 * fig.get_figwidth() * 72 / (0.55 * 6.5))), fontsize=6.5,
                  color="0.3")


def _place_labels(fig: Figure, ax: Axes, data: FigureData, areas: np.ndarray, rows: list[int], *,
                  force: bool) -> dict[int, tuple[float, float, float, float]]:
    """Label `rows` one by one, trying eight spots around each point: a label never overlaps one
    placed before and stays inside the axes, and of the spots that allow it the one covering the
    fewest other points wins. `force` places a label that fits nowhere at its least bad spot;
    otherwise it is left out. Returns the rows labelled, in order, with their boxes (display pixels)."""
    renderer = fig.canvas.get_renderer()
    pts = ax.transData.transform(data.xy)
    px_per_pt = fig.dpi / 72.0
    radius = np.sqrt(areas) / 2 * px_per_pt
    frame = ax.get_window_extent(renderer)
    placed: dict[int, tuple[float, float, float, float]] = {}
    directions = [(1, 0, "left", "center"), (-1, 0, "right", "center"), (0, 1, "center", "bottom"),
                  (0, -1, "center", "top"), (1, 1, "left", "bottom"), (-1, 1, "right", "bottom"),
                  (1, -1, "left", "top"), (-1, -1, "right", "top")]
    for row in dict.fromkeys(rows):
        gap = radius[row] / px_per_pt + 1.5
        best, best_cost = None, math.inf
        for dx, dy, ha, va in directions:
            norm = math.hypot(dx, dy)
            text = ax.annotate(data.labels[row], data.xy[row], xytext=(dx * gap / norm, dy * gap / norm),
                               textcoords="offset points", ha=ha, va=va, fontsize=6.5, zorder=4,
                               bbox=LABEL_BOX)
            bb = text.get_window_extent(renderer)
            box = (bb.x0 - 1, bb.y0 - 1, bb.x1 + 1, bb.y1 + 1)
            clashes, covered = _overlaps(box, list(placed.values()), pts, radius, row)
            inside = frame.x0 <= box[0] and box[2] <= frame.x1 and frame.y0 <= box[1] and box[3] <= frame.y1
            cost = covered + 1000 * (clashes + (not inside))
            if cost < best_cost:
                if best is not None:
                    best[0].remove()
                best, best_cost = (text, box), cost
            else:
                text.remove()
            if cost == 0:
                break
        if best is None:
            continue
        if best_cost >= 1000 and not force:
            best[0].remove()
            continue
        placed[row] = best[1]
    return placed


def _overlaps(box, boxes, pts: np.ndarray, radius: np.ndarray, own: int) -> tuple[int, int]:
    """How many placed labels, and how many other points, the text box `box` (display pixels) touches."""
    x0, y0, x1, y1 = box
    clashes = sum(1 for b in boxes if x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1)
    near_x = np.clip(pts[:, 0], x0, x1)
    near_y = np.clip(pts[:, 1], y0, y1)
    touching = (pts[:, 0] - near_x) ** 2 + (pts[:, 1] - near_y) ** 2 < radius**2
    touching[own] = False
    return clashes, int(touching.sum())


def resolve_labels(path, names: list[str], data: FigureData) -> list[int]:
    """Point indices of the models named by the user (labels or names, as `pylogmap neighbors`
    takes them); a model that is not on the map is an error that says so."""
    index = {label: i for i, label in enumerate(data.labels)}
    out = []
    with open_map(path) as mf:
        labels = mf.labels()
        for name in names:
            label = labels[mf.find_row(name)]
            if label not in index:
                raise PylogmapError(f"--label {name}: {label} is not on the {EMBEDDING_TITLES[data.embedding]} map of "
                                    f"{path} (not fully scored, or scored after the map); run 'pylogmap map {path}'.")
            out.append(index[label])
    return out


def plot_map(
    path,
    out,
    *,
    embedding: str = "tsne",
    color: str = FAMILY,
    marker: str | None = None,
    marker_order: list[str] | None = None,
    labels: list[str] | None = None,
    per_category: int | None = None,
    size_by_params: bool = False,
    title: str | None = None,
    caption: str | None = None,
    trajectories: bool = True,
    width: float = 7.0,
    height: float = 5.0,
    dpi: int = 200,
) -> MapFigure:
    """Read the map file at `path` and draw its figure into `out` (see `draw_map`)."""
    figure_path(out)  # a wrong file type is refused before the map is read
    data = read_figure_data(path, embedding=embedding, color=color, marker=marker)
    rows = resolve_labels(path, labels, data) if labels else None
    return draw_map(data, out, label_rows=rows, per_category=per_category, marker_order=marker_order,
                    size_by_params=size_by_params,
                    title=title, caption=caption, trajectories=trajectories, width=width, height=height, dpi=dpi)
