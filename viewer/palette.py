"""Numeric colours and marker sizes of the viewer's scatter.

Numeric columns are binned into a 256-entry colour map, and marker sizes into a few levels, so
that pyqtgraph draws 100,000 points from a handful of cached sprites. The category colours (the
12 published families and the palette for any other column) are the map's own, shared with the
figure: `pylogmap.mapping.families`.
"""

from __future__ import annotations

import numpy as np

NUMERIC_COLORMAP = "viridis"
N_COLOR_BINS = 256


def value_bins(values: np.ndarray, n_bins: int = N_COLOR_BINS) -> tuple[np.ndarray, float, float]:
    """Bin a numeric column into 0..n_bins-1 over its finite range; -1 where it is not finite.

    Returns (bins, lo, hi). The range is the 1st..99th percentile so that one outlier does not
    wash out the whole map; values outside are clamped to the end bins.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    bins = np.full(values.shape, -1, dtype=np.int64)
    if not finite.any():
        return bins, 0.0, 1.0
    lo, hi = np.percentile(values[finite], [1, 99])
    if not hi > lo:
        lo, hi = float(values[finite].min()), float(values[finite].max())
    if not hi > lo:
        hi = lo + 1.0
    scaled = (values[finite] - lo) / (hi - lo)
    bins[finite] = np.clip((scaled * n_bins).astype(np.int64), 0, n_bins - 1)
    return bins, float(lo), float(hi)


def default_marker_size(n_points: int) -> float:
    """Marker diameter in pixels: big for a few hundred models, small for 100,000."""
    if n_points <= 2_000:
        return 9.0
    if n_points <= 20_000:
        return 6.0
    return 4.0


def size_levels(values: np.ndarray, base: float, n_levels: int = 8) -> np.ndarray:
    """Marker sizes from a numeric column: log-scaled when it spans decades (parameter counts),
    quantised into n_levels between 0.6x and 2.2x the base size; base where unknown."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, base, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return out
    v = values[finite]
    if (v > 0).all() and v.max() / max(v.min(), 1e-300) > 100:
        v = np.log10(v)
    lo, hi = float(v.min()), float(v.max())
    t = np.zeros_like(v) if hi <= lo else (v - lo) / (hi - lo)
    level = np.round(t * (n_levels - 1)) / (n_levels - 1)
    out[finite] = base * (0.6 + 1.6 * level)
    return out
