"""pylogmap: map language models by their log-likelihood vectors.

Importing the package is cheap and never imports torch: the public names below are
resolved lazily, so the map side (store, geometry, neighbours, viewer) works on a
machine without torch or a GPU.
"""

import importlib

__version__ = "0.1.0"

# Public Python API: name -> "module:attribute", imported on first use.
_LAZY = {
    # texts (method.md section 1)
    "TextSet": "pylogmap.texts:TextSet",
    "load_texts": "pylogmap.texts:load_texts",
    "make_texts": "pylogmap.texts:make_texts",
    # scoring (section 2)
    "score_models": "pylogmap.scoring:score_models",
    "token_logprobs": "pylogmap.kernels:token_logprobs",
    "head_logprobs": "pylogmap.kernels:head_logprobs",
    "native_status": "pylogmap.kernels:native_status",
    # the HDF5 map file
    "MapFile": "pylogmap.store:MapFile",
    "open_map": "pylogmap.store:open_map",
    # geometry and neighbours (sections 3-4)
    "clip": "pylogmap.mapping.geometry:clip",
    "double_center": "pylogmap.mapping.geometry:double_center",
    "kl_estimate": "pylogmap.mapping.geometry:kl_estimate",
    "nearest_neighbors": "pylogmap.mapping.neighbors:nearest_neighbors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'pylogmap' has no attribute {name!r}")
    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

