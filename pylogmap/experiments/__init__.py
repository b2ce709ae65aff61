"""The studies' experiments that need the models themselves: weight interpolation, weight-space
distances along checkpoints, adding new models to a map by scoring them on its selected texts.

May import: torch (lazily), `pylogmap.scoring`, `pylogmap.analysis`, `pylogmap.mapping`, `pylogmap.store`.
"""

from pylogmap.experiments.adding import add_models
from pylogmap.experiments.interpolation import (
    check_compatible,
    inner_products,
    interpolate_models,
    merge_state_dicts,
)
from pylogmap.experiments.weights import (
    checkpoint_folder,
    checkpoint_weight_distances,
    load_state_dict,
    squared_weight_distance,
    weight_window_distances,
)

__all__ = [
    "add_models", "check_compatible", "checkpoint_folder", "checkpoint_weight_distances", "inner_products",
    "interpolate_models", "load_state_dict", "merge_state_dicts", "squared_weight_distance",
    "weight_window_distances",
]
