"""Colours and marker sizes of the map.

The 12 colour classes of the published figure (method.md section 4) get fixed, distinct colours
so that maps of different files read the same; any other category gets the next colour of a
qualitative palette. Numeric columns are binned into a 256-entry colour map, and marker sizes
into a few levels, so that pyqtgraph draws 100,000 points from a handful of cached sprites.
"""

from __future__ import annotations

import numpy as np

PUBLISHED_FAMILIES = (
    "llama-1", "llama-2", "llama-3", "mistral", "gpt_neox", "gptj",
    "gemma", "opt", "bloom", "falcon", "deepseek", "others",
)

FAMILY_COLORS = {
    "llama-1": "#1f77b4",  # blue
    "llama-2": "#ff7f0e",  # orange
    "llama-3": "#2ca02c",  # green
    "mistral": "#d62728",  # red
    "gpt_neox": "#9467bd",  # purple
    "gptj": "#8c564b",  # brown
    "gemma": "#e377c2",  # pink
    "opt": "#bcbd22",  # olive
    "bloom": "#17becf",  # cyan
    "falcon": "#1a237e",  # navy
    "deepseek": "#f2b701",  # gold
    "others": "#a6a6a6",  # grey
}

# For categories outside the published classes (user annotations): Tableau 20 minus the above.
EXTRA_COLORS = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
    "#9c755f", "#86bcb6", "#d37295", "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#499894",
    "#fabfd2", "#d4a6c8", "#79706e", "#f1ce63",
)

NUMERIC_COLORMAP = "viridis"
N_COLOR_BINS = 256


def category_colors(categories: list[str]) -> dict[str, str]:
    """A hex colour per category: fixed for the published families, a qualitative palette otherwise."""
    out: dict[str, str] = {}
    extra = 0
    for cat in categories:
        if cat in FAMILY_COLORS:
            out[cat] = FAMILY_COLORS[cat]
        elif cat in ("", "unknown", "other", "none"):
            out[cat] = FAMILY_COLORS["others"]
        else:
            out[cat] = EXTRA_COLORS[extra % len(EXTRA_COLORS)]
            extra += 1
    return out


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
