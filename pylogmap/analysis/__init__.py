"""The studies' analyses over a map (method.md sections 5-8): prediction, resampling, trajectories, leakage.
May import: numpy, scipy/scikit-learn/tqdm/matplotlib (lazily), `pylogmap.mapping`, `store`, `files`, `numbers`, `errors`; never torch.

- `prediction`: benchmark scores from the map by cross-validated ridge regression;
- `resampling`: likelihood-variance resampling of texts, error curves, reduced text sets;
- `trajectories`: KL along checkpoints and layers, diffusion exponents;
- `leakage`: texts and sources a model finds anomalously easy relative to its neighbours;
- `interpolation`: the weight and log-likelihood grids of three interpolated models compared;
- `mapfigure`: the map as a publication figure (matplotlib; `pylogmap plot`).

Each module has plain functions over numpy arrays and a thin function over a map file; the
`pylogmap predict / resample / trajectory / leakage` commands wrap those. What needs the models
themselves (scoring added or merged models, reading checkpoint weights) is in
`pylogmap.experiments`. Importing this package never imports torch; names are resolved on first use.
scipy and scikit-learn are imported inside the functions that use them: they take seconds to
import, and `pylogmap predict --help` should not wait for them.
"""

from __future__ import annotations

import importlib

_LAZY = {
    # prediction (section 5)
    "predict_benchmarks": "prediction",
    "ridge_cv_predict": "prediction",
    "outer_folds": "prediction",
    "loglik_correlations": "prediction",
    "predict_map": "prediction",
    "feature_scale": "prediction",
    "read_scores_csv": "prediction",
    # resampling (section 6)
    "sampling_probabilities": "resampling",
    "draw": "resampling",
    "resampled_matrix": "resampling",
    "squared_distances": "resampling",
    "tau_errors": "resampling",
    "error_curve": "resampling",
    "select_texts": "resampling",
    "larger_sizes": "resampling",
    "resample_map": "resampling",
    "selection_path": "resampling",
    "SELECTED_TEXTS": "resampling",
    "SELECTED_WEIGHTS": "resampling",
    "place_models": "resampling",
    "place_in_2d": "resampling",
    # trajectories (section 7)
    "group_trajectories": "trajectories",
    "consecutive_kl": "trajectories",
    "jumpy_texts": "trajectories",
    "diffusion_exponents": "trajectories",
    "loglik_window_kl": "trajectories",
    "trajectories_map": "trajectories",
    # data-leakage hints (section 8)
    "leakage_map": "leakage",
    "neighbour_residuals": "leakage",
    # interpolation (section 8)
    "grid_weights": "interpolation",
    "weight_plane_coordinates": "interpolation",
    "compare_grids": "interpolation",
    # the map as a figure (section 4)
    "plot_map": "mapfigure",
    "read_figure_data": "mapfigure",
    "draw_map": "mapfigure",
    "FigureData": "mapfigure",
    "MapFigure": "mapfigure",
    # the map data every analysis reads
    "read_map": "_mapdata",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pylogmap.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pylogmap.analysis.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
