"""The studies' experiments that need the models: weight interpolation, checkpoint weight distances, adding models.

May import: torch (lazily), `pylogmap.scoring`, `pylogmap.analysis`, `pylogmap.mapping`, `pylogmap.store`, `pylogmap.texts`, `pylogmap.errors`.
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
