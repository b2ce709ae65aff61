"""The HDF5 map file: one text set, the scored models' log-likelihood matrix, derived results.

May import: h5py, numpy, filelock, `pylogmap.texts`, `pylogmap.files`, `pylogmap.errors`; never torch.
"""

from pylogmap.store.keys import RowKey, as_key
from pylogmap.store.lookup import RowLookup
from pylogmap.store.mapfile import MapFile, open_map
from pylogmap.store.merge import MergeResult, merge_maps
from pylogmap.store.schema import FORMAT, FORMAT_VERSION, MODEL_COLUMNS
from pylogmap.store.steps import split_step, step_of
from pylogmap.store.tokens import tokens_dir, tokens_path
from pylogmap.store.writer import ScoreWriter

__all__ = [
    "FORMAT", "FORMAT_VERSION", "MODEL_COLUMNS", "MapFile", "MergeResult", "RowKey", "RowLookup", "ScoreWriter",
    "as_key", "merge_maps", "open_map", "split_step", "step_of", "tokens_dir", "tokens_path",
]
