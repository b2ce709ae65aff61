"""The studies' analyses over a map (method.md sections 5-8).

- `prediction`: benchmark scores from the map by cross-validated ridge regression;
- `resampling`: likelihood-variance resampling of texts, error curves, reduced text sets;
- `trajectories`: KL along checkpoints and layers, diffusion exponents;
- `leakage`: texts and sources a model finds anomalously easy relative to its neighbours;
- `interpolation`: weight interpolation of three models scored on a grid (needs torch, imported
  only when called).

Each module has plain functions over numpy arrays and a thin function over a map file; the
`pylogmap predict / resample / add / trajectory / interpolate` commands wrap those. Importing
this package never imports torch; names are resolved on first use.
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
    "read_scores_csv": "prediction",
    # resampling (section 6)
    "sampling_probabilities": "resampling",
    "draw": "resampling",
    "resampled_matrix": "resampling",
    "squared_distances": "resampling",
    "tau_errors": "resampling",
    "error_curve": "resampling",
    "select_texts": "resampling",
    "resample_map": "resampling",
    "place_models": "resampling",
    # trajectories (section 7)
    "group_trajectories": "trajectories",
    "consecutive_kl": "trajectories",
    "jumpy_texts": "trajectories",
    "diffusion_exponents": "trajectories",
    "loglik_window_kl": "trajectories",
    "weight_window_distances": "trajectories",
    "squared_weight_distance": "trajectories",
    "trajectories_map": "trajectories",
    # interpolation (section 8)
    "interpolate_models": "interpolation",
    # data-leakage hints (section 8)
    "leakage_map": "leakage",
    "neighbour_residuals": "leakage",
    "add_models": "resampling",
    "grid_weights": "interpolation",
    "compare_grids": "interpolation",
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
