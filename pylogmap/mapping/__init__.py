"""The map: clip, double-centre, KL estimates, exact neighbours, 2-D embeddings, in memory or out of core.

May import: numpy, scipy, scikit-learn, faiss and openTSNE (lazily), `pylogmap.store`, `pylogmap.texts`, `pylogmap.errors`; never torch.
"""

from pylogmap.mapping.compute import (
    DEFAULT_EMBEDDINGS,
    MapResult,
    compute_map,
    is_fresh,
    kl_between,
    load_geometry,
    neighbors_for,
)
from pylogmap.mapping.families import (
    EXTRA_COLORS,
    FAMILIES,
    FAMILY_COLORS,
    MAX_LEGEND_CATEGORIES,
    OTHER_CATEGORY,
    category_colors,
    default_families,
    family_order,
    order_by_count,
)

__all__ = [
    "DEFAULT_EMBEDDINGS", "EXTRA_COLORS", "FAMILIES", "FAMILY_COLORS", "MAX_LEGEND_CATEGORIES", "MapResult", "OTHER_CATEGORY", "category_colors", "compute_map",
    "default_families", "family_order", "is_fresh", "kl_between", "load_geometry", "neighbors_for", "order_by_count",
]
