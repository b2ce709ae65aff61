"""The map: clip, double-centre, KL estimates, neighbours, 2-D embeddings, computed into a map file.

May import: numpy, scipy, scikit-learn, faiss (lazily), `pylogmap.store`, `pylogmap.texts`, `pylogmap.errors`; never torch.
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
