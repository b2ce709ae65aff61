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

__all__ = ["DEFAULT_EMBEDDINGS", "MapResult", "compute_map", "is_fresh", "kl_between", "load_geometry", "neighbors_for"]
