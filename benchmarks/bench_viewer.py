#!/usr/bin/env python
"""How the viewer's map widget scales: ours vs pyqtgraph's built-in paths, at 1k-100k points.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_viewer.py [--sizes 1000 10000 100000]

Rows of the table (milliseconds, median of repeats):
- draw:   building the scatter (one ScatterPlotItem, cached brushes per family)
- hover:  finding the point under the mouse: our KD-tree lookup vs pyqtgraph's `pointsAt`
          (its per-point hit test, what `hoverable=True` uses)
- filter: hiding one family: our visibility update (keeps the sprite atlas) vs pyqtgraph's
          `setPointsVisible` (re-resolves every sprite) vs rebuilding the scatter
- repaint: one full repaint of the view after a zoom
The data are in memory (no file), so only the widget is measured.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6 import QtCore  # noqa: E402

from pylogmap.mapping import FAMILIES  # noqa: E402
from pylogmap.viewer.app import application  # noqa: E402
from pylogmap.viewer.data import MEAN_LOGLIK, MapData  # noqa: E402
from pylogmap.viewer.scatter import MapView  # noqa: E402
from pylogmap.viewer.state import ViewerState  # noqa: E402


def population(n: int, seed: int = 0) -> MapData:
    rng = np.random.default_rng(seed)
    fam = rng.integers(0, 12, n)
    centres = rng.normal(0, 40, (12, 2))
    xy = centres[fam] + rng.normal(0, 6, (n, 2))
    labels = [f"bench/{FAMILIES[f]}-{i}" for i, f in enumerate(fam)]
    return MapData(labels, np.array(FAMILIES, dtype=object)[fam],
                   numeric={MEAN_LOGLIK: rng.normal(-700, 30, n)}, embeddings={"tsne": xy})


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def bench(n: int, app) -> dict[str, float]:
    data = population(n)
    state = ViewerState()
    view = MapView(state)
    view.resize(1200, 900)
    view.show()
    app.processEvents()
    out = {"draw": timed(lambda: (state.set_map(data), app.processEvents()), 3)}
    rng = np.random.default_rng(1)
    rows = rng.integers(0, n, 200)
    xy = state.coords()
    queries = [QtCore.QPointF(float(xy[r, 0]), float(xy[r, 1])) for r in rows]
    t0 = time.perf_counter()
    for q in queries:
        view.row_at_view(q.x(), q.y())
    out["hover ours"] = (time.perf_counter() - t0) / len(queries) * 1e3
    few = queries[:20]
    t0 = time.perf_counter()
    for q in few:
        view.points.pointsAt(q)
    out["hover pyqtgraph"] = (time.perf_counter() - t0) / len(few) * 1e3

    def ours():
        state.set_category_visible("opt", False)
        state.set_category_visible("opt", True)

    out["filter ours"] = timed(ours, 3) / 2

    def pg_visible():
        mask = state.visible_mask()[view._draw_rows]
        view.points.setPointsVisible(mask)

    state.set_category_visible("opt", False)
    out["filter pyqtgraph"] = timed(pg_visible, 3)
    state.show_all()
    out["filter rebuild"] = timed(lambda: view.redraw(), 3)
    view.plot.vb.scaleBy((0.7, 0.7))
    out["repaint"] = timed(lambda: (view.viewport().repaint(), app.processEvents()), 5)
    view.close()
    view.deleteLater()
    app.processEvents()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    args = parser.parse_args()
    app = application()
    results = {n: bench(n, app) for n in args.sizes}
    keys = list(next(iter(results.values())))
    print(f"{'ms':<18}" + "".join(f"{n:>12,}" for n in args.sizes))
    for key in keys:
        print(f"{key:<18}" + "".join(f"{results[n][key]:>12.2f}" for n in args.sizes))
    print(f"{'hover speed-up':<18}" + "".join(f"{results[n]['hover pyqtgraph'] / results[n]['hover ours']:>11.0f}x"
                                          for n in args.sizes))
    print(f"{'filter speed-up':<18}" + "".join(f"{results[n]['filter pyqtgraph'] / results[n]['filter ours']:>11.1f}x"
                                           for n in args.sizes))
    gc.collect()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
