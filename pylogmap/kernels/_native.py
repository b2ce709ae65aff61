"""Load the compiled extensions, and say why when they cannot be loaded.

`pylogmap.kernels._core` (the CPU kernel, always built by `pip install .`) and
`pylogmap.kernels._cuda` (the CUDA kernel, built when nvcc was found) are imported once, on first
use, never at package import time. A missing or broken module is not an error here:
`native_status()` records what happened and the dispatcher (`pylogmap.kernels.logprobs`) decides
(torch fallback with a warning on CPU, a clear error on CUDA).

This module imports no torch, so `native_status()` can be asked on any machine, also one where
torch is missing or broken.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any

_lock = threading.Lock()
_loaded = False
_core: ModuleType | None = None
_cuda: ModuleType | None = None
_core_error: str | None = None
_cuda_error: str | None = None


def _load() -> None:
    global _loaded, _core, _cuda, _core_error, _cuda_error
    with _lock:
        if _loaded:
            return
        try:
            _core = importlib.import_module("pylogmap.kernels._core")
        except ImportError as exc:  # not built (source checkout) or broken
            _core_error = (
                f"pylogmap.kernels._core could not be imported ({exc}). Build it with `pip install .`, "
                "or in a source checkout with the in-place build in docs/kernel.md."
            )
        try:
            _cuda = importlib.import_module("pylogmap.kernels._cuda")
        except ImportError as exc:
            _cuda_error = _cuda_not_loaded_reason(exc)
        _loaded = True


def _cuda_not_loaded_reason(exc: ImportError) -> str:
    info = _core.build_info() if _core is not None else None
    if info is not None and not info.get("cuda_built"):
        why = info.get("cuda_not_built_reason") or "it was not built"
        return (
            f"pylogmap was built without its CUDA module ({why}). Reinstall on a machine with the "
            "CUDA toolkit: `PYLOGMAP_CUDA=ON pip install .` (nvcc on PATH or CUDACXX set)."
        )
    return f"pylogmap.kernels._cuda could not be imported: {exc}"


def core() -> ModuleType | None:
    """The CPU extension module, or None when it cannot be imported."""
    _load()
    return _core


def cuda() -> ModuleType | None:
    """The CUDA extension module, or None when it was not built or cannot be imported."""
    _load()
    return _cuda


def native_status() -> dict[str, Any]:
    """What of the native part was built and loads here, and why not.

    Keys: `core_loaded` (bool), `core_error` (str or None), `cuda_built` (bool: the package was
    compiled with its CUDA module), `cuda_loaded` (bool: `pylogmap.kernels._cuda` imports),
    `cuda_error` (why not, or None), `build` (the CPU module's build information: CUDA mode,
    compiler and architectures, OpenMP, CPU variants), and when loaded `cpu_variant` (the SIMD
    variant in use) and `cuda_runtime` (driver/runtime versions and device count, or the reason
    CUDA cannot run).
    """
    _load()
    info: dict[str, Any] = dict(_core.build_info()) if _core is not None else {}
    out: dict[str, Any] = {
        "core_loaded": _core is not None,
        "core_error": _core_error,
        "cuda_built": bool(info.get("cuda_built")) if info else _cuda is not None,
        "cuda_loaded": _cuda is not None,
        "cuda_error": _cuda_error,
        "build": info,
    }
    if _core is not None:
        out["cpu_variant"] = info.get("cpu_variant")
    if _cuda is not None:
        # Asking the runtime never raises: without a driver or GPU it returns the reason.
        out["cuda_runtime"] = dict(_cuda.runtime_status())
    return out
