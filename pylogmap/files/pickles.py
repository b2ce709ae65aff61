"""Pickle files read as data only: containers, strings, numbers and numpy arrays, nothing that runs.

Python's `pickle.load` calls whatever the file names, so a crafted pickle runs code before any
check of ours could look at what it holds. `load_data_pickle` reads with an unpickler whose
`find_class` knows a fixed list of harmless names (how numpy pickles arrays, scalars and dtypes,
and `collections.OrderedDict`); a file that names anything else (`os.system`, `builtins.eval`,
a class of some library) is refused at that name, before the name is looked up, so nothing of
it is ever called. Dicts, lists, tuples, strings, bytes, numbers, booleans and None need no
names and are read as usual.
"""

from __future__ import annotations

import collections
import os
import pickle

import numpy as np

from pylogmap.errors import PylogmapError
from pylogmap.files.paths import require_file

# numpy's pickling helpers, taken from numpy itself so that both spellings of their module
# (numpy.core before numpy 2, numpy._core since) resolve to this numpy's functions.
_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_SCALAR = np.float64(0).__reduce__()[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5 (out-of-band buffers)

#: (module, name) -> object: every global a data pickle may name.
ALLOWED: dict[tuple[str, str], object] = {
    **{(module, "_reconstruct"): _RECONSTRUCT for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "scalar"): _SCALAR for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_frombuffer"): _FROMBUFFER for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): lambda text, encoding="utf-8": text.encode(encoding),  # bytes in protocol 2
}


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the names in `ALLOWED`."""

    def __init__(self, file, where: str):
        super().__init__(file)
        self.where = where

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise PylogmapError(
                f"{self.where} asks to run {module}.{name} while it is read, which a data file never needs; "
                "it was refused and nothing of it ran. Only pickles of dicts, lists, strings, numbers and "
                "numpy arrays are read: re-save the data in that form (or as .npy)."
            ) from None


def load_data_pickle(path: str | os.PathLike):
    """The object stored in a pickle file, read by the rule of the module docstring.

    Raises `PylogmapError` for a missing file, a file that names anything outside `ALLOWED`, and a
    file that is not a (complete) pickle.
    """
    path = require_file(path, "pickle")
    with open(path, "rb") as f:
        try:
            return _DataUnpickler(f, path.name).load()
        except PylogmapError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
                AttributeError, OverflowError, UnicodeDecodeError, MemoryError) as err:
            raise PylogmapError(
                f"{path.name} is not a readable pickle ({type(err).__name__}: {err}); check that the "
                "file is complete and is a pickle."
            ) from None
