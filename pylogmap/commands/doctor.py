"""Describe this installation on one screen, for a bug report: versions, native modules, GPUs,
FAISS, Ray, the display and Qt's platform plugin, and the Hugging Face cache settings.

Every probe is guarded: a library that is missing or broken is reported as such, never a crash,
so the output is most useful exactly when something is wrong. Paste it into an issue.

Example:  pylogmap doctor          (or --json for a machine-readable report)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

from pylogmap import __version__
from pylogmap.kernels import native_status
from pylogmap.mapping import gram_bf16, pair_moments
from pylogmap.viewer import qtlibs

#: distributions whose versions are reported (pip name -> what it is for)
PACKAGES = {
    "torch": "scoring",
    "transformers": "scoring",
    "tokenizers": "scoring",
    "accelerate": "GGUF and device placement",
    "gguf": "GGUF checkpoints",
    "huggingface-hub": "hub ids and the cache",
    "numpy": "map side",
    "h5py": "map file",
    "scipy": "map side",
    "scikit-learn": "t-SNE, PCA, ridge",
    "openTSNE": "t-SNE for large maps",
    "faiss-cpu": "neighbours",
    "faiss-gpu": "neighbours on a GPU",
    "PySide6-Essentials": "viewer",
    "pyqtgraph": "viewer",
    "superqt": "viewer",
    "matplotlib": "plots",
    "ray": "multi-node scoring",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _guard(probe: Callable[[], Any]) -> Any:
    """Run one probe; any failure becomes {'error': ...} in the report instead of a traceback."""
    try:
        return probe()
    except Exception as err:  # noqa: BLE001 - the point of a doctor is to survive broken installs
        return {"error": f"{type(err).__name__}: {err}"}


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in PACKAGES:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _native() -> dict[str, Any]:
    st = native_status()
    build = st.get("build") or {}
    rt = st.get("cuda_runtime") or {}
    return {
        "cpu_module": "loaded" if st["core_loaded"] else f"not loaded: {st['core_error']}",
        "cpu_variant": st.get("cpu_variant"),
        "cpu_variants_built": build.get("cpu_variants"),
        "openmp": build.get("openmp"),
        "cuda_module": "loaded" if st["cuda_loaded"] else f"not loaded: {st['cuda_error']}",
        "cuda_architectures": build.get("cuda_architectures") or None,
        "cuda_compiler": build.get("cuda_compiler_version") or None,
        "cuda_runtime_version": rt.get("runtime_version"),
        "cuda_driver_version": rt.get("driver_version"),
        "cuda_devices": rt.get("device_count"),
        "cuda_error": rt.get("error") or None,
        "map_module": "loaded" if pair_moments.native() is not None
        else f"not loaded: {pair_moments.native_error() or 'switched off (PYLOGMAP_NATIVE_PAIRS=0)'}",
        "map_tiles": gram_bf16.describe(),
    }


def _torch() -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "threads": torch.get_num_threads(),
        "gpus": [],
    }
    if out["cuda_available"]:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            out["gpus"].append(f"{i}: {p.name}, {p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}")
    return out


def _faiss() -> dict[str, Any]:
    import faiss

    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    return {"version": getattr(faiss, "__version__", "?"), "gpu_support": hasattr(faiss, "StandardGpuResources"),
            "gpus": gpus}


def _display() -> dict[str, Any]:
    check = qtlibs.check_qt_platform()
    return {
        "DISPLAY": os.environ.get("DISPLAY"),
        "WAYLAND_DISPLAY": os.environ.get("WAYLAND_DISPLAY"),
        "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM"),
        "qt_platform": check.platform or None,
        "qt_plugin": check.plugin or None,
        "qt_missing_libraries": check.missing,
        "qt_install": check.install_hint() or None,
        "qt_note": check.note or None,
    }


def _hugging_face() -> dict[str, Any]:
    from huggingface_hub import constants

    return {
        "HF_HOME": os.environ.get("HF_HOME"),
        "hub_cache": str(constants.HF_HUB_CACHE),
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE"),
        "offline": bool(constants.HF_HUB_OFFLINE),
        "token": "set" if (os.environ.get("HF_TOKEN") or os.path.exists(constants.HF_TOKEN_PATH)) else "not set",
    }


def report() -> dict[str, Any]:
    """The whole report as a dict (what --json prints)."""
    return {
        "pylogmap": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "packages": _versions(),
        "native": _guard(_native),
        "torch": _guard(_torch),
        "faiss": _guard(_faiss),
        "ray": {"RAY_ADDRESS": os.environ.get("RAY_ADDRESS")},
        "display": _guard(_display),
        "hugging_face": _guard(_hugging_face),
    }


def _lines(section: str, value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [f"{section:<22} {value}"]
    out = [section]
    for key, item in value.items():
        if isinstance(item, list):
            item = ", ".join(map(str, item)) or "none"
        out.append(f"  {key:<20} {'-' if item is None else item}")
    return out


def run(args: argparse.Namespace) -> int:
    rep = report()
    if args.json:
        print(json.dumps(rep, indent=2, default=str))
        return 0
    packages = {k: (v or "not installed") + f"   ({PACKAGES[k]})" for k, v in rep.pop("packages").items()}
    lines: list[str] = []
    for section, value in rep.items():
        lines += _lines(section, value)
        if section == "platform":
            lines += _lines("packages", packages)
    print("\n".join(lines))
    return 0
