"""Shared pytest set-up: Qt runs offscreen, GPU tests skip cleanly where there is no GPU, and the
slow tests (marked ``slow``) run only when asked: ``pytest --run-slow`` (CI runs them after the
default suite, see .ci/run), so that the default ``pytest`` stays a few minutes on 2 cores."""

from __future__ import annotations

import os
import tempfile

import pytest

# The viewer tests create real Qt widgets; offscreen needs no display server.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Settings the viewer remembers (window geometry) go to a folder of the test run, never the user's.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="pylogmap-tests-config-")
# The Pythons the tests start (`python -m pylogmap`, `python -c ...`) must import the installed
# pylogmap, as a user's would. Without this, Python puts the current folder (here: the clone) first
# on sys.path, and its source folder `pylogmap/` (no compiled kernels, no `pylogmap.viewer`: the
# viewer is mapped in only by the install) shadows the package that `pip install .` installed.
os.environ["PYTHONSAFEPATH"] = "1"


def _gpu_unavailable_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine"
    from pylogmap.kernels import native_status

    status = native_status()
    if not status.get("cuda_loaded"):
        return f"the CUDA module is not available: {status.get('cuda_error')}"
    return None


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (minutes: the two-node Ray cluster, the real "
                          "SmolLM2 model, the fallback-corpus demo, kill-and-resume runs); CI runs them")


def _wants_slow(config) -> bool:
    """``--run-slow``, or a ``-m`` expression that selects the slow tests (``-m slow``)."""
    markexpr = config.getoption("markexpr") or ""
    return config.getoption("--run-slow") or ("slow" in markexpr and "not slow" not in markexpr)


def pytest_collection_modifyitems(config, items):
    if not _wants_slow(config):
        skip_slow = pytest.mark.skip(reason="slow: run with --run-slow (CI does)")
        for item in items:
            if item.get_closest_marker("slow") is not None:
                item.add_marker(skip_slow)
    # the marker itself, not `"gpu" in item.keywords`: keywords also hold the names of the folders
    # above the test (a checkout in a folder named gpu would skip every test)
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    reason = _gpu_unavailable_reason()
    if reason:
        skip = pytest.mark.skip(reason=reason)
        for item in gpu_items:
            item.add_marker(skip)
