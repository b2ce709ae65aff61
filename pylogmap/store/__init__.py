"""The HDF5 map file: one text set, the scored models' log-likelihood matrix, derived results.

May import: h5py, numpy, `pylogmap.texts`, `pylogmap.files`, `pylogmap.errors`; never torch.
"""

from pylogmap.store.steps import split_step, step_of
from pylogmap.store.mapfile import (
    FORMAT,
    FORMAT_VERSION,
    MODEL_COLUMNS,
    MapFile,
    RowKey,
    ScoreWriter,
    as_key,
    open_map,
    tokens_dir,
    tokens_path,
)

__all__ = [
    "FORMAT", "FORMAT_VERSION", "MODEL_COLUMNS", "MapFile", "RowKey", "ScoreWriter", "as_key", "open_map",
    "split_step", "step_of", "tokens_dir", "tokens_path",
]
