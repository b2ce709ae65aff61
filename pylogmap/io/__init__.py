"""Files in and out of a map: annotation tables, export (CSV, Parquet, npy, h5ad), import (matrix, published pickle).

May import: `pylogmap.mapping`, `pylogmap.store`, `pylogmap.texts`, `pylogmap.files`, `pylogmap.errors`; never torch.
"""
