"""The native part was built as promised: `_core` always, `_cuda` whenever nvcc was available.

These tests look at the pylogmap that Python imports. After `pip install .` run pytest so that
the installed package is imported (e.g. `pytest` from the repository root, which puts tests/ and
not the root on sys.path; `python -m pytest` would put the root first and import the unbuilt
source tree unless it was built in place, see docs/kernel.md). A source tree without the compiled
modules fails `test_core_extension_is_loaded` on purpose: otherwise every kernel test would
silently test only the torch fallback.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pylogmap
from pylogmap import kernels

REPO = Path(__file__).resolve().parent.parent


def _nvcc_available() -> str | None:
    cudacxx = os.environ.get("CUDACXX")
    if cudacxx and Path(cudacxx).is_file():
        return cudacxx
    return shutil.which("nvcc")


def test_core_extension_is_loaded():
    st = kernels.native_status()
    assert st["core_loaded"], (
        f"the compiled CPU kernel is missing from {Path(pylogmap.__file__).parent}: {st['core_error']}"
    )
    info = st["build"]
    assert info["cpu_variant"] in info["cpu_variants_supported"]
    assert "generic" in info["cpu_variants"]


def test_cuda_module_built_when_nvcc_is_available():
    """With nvcc on PATH (or CUDACXX) at build time, the default build (PYLOGMAP_CUDA=AUTO) must
    produce pylogmap.kernels._cuda. The test assumes the build ran in this environment (as CI does:
    `pip install .` then pytest, same PATH)."""
    st = kernels.native_status()
    if not st["core_loaded"]:
        pytest.skip("no compiled package to inspect (test_core_extension_is_loaded fails)")
    info = st["build"]
    if info["cuda_mode"] == "OFF":
        pytest.skip("built with PYLOGMAP_CUDA=OFF on purpose")
    nvcc = _nvcc_available()
    if nvcc is None:
        pytest.skip("no nvcc here: a CPU-only build is correct")
    assert info["cuda_built"], (
        f"nvcc is available ({nvcc}) but the package was built without CUDA: "
        f"{info['cuda_not_built_reason']!r}"
    )
    spec = importlib.util.find_spec("pylogmap.kernels._cuda")  # wheel and editable installs alike
    assert spec is not None and spec.origin, "build info says CUDA was built but there is no pylogmap.kernels._cuda"
    assert st["cuda_loaded"], f"pylogmap.kernels._cuda was built but does not import: {st['cuda_error']}"
    archs = info["cuda_architectures"].split(",")
    assert {"80-real", "90-real", "90-virtual"} <= set(archs), archs


def test_cuda_module_works_without_a_gpu():
    """Importing _cuda needs no driver; asking it about the runtime or calling it on a machine
    without a usable GPU gives a reason / a RuntimeError, never a crash."""
    st = kernels.native_status()
    if not st["cuda_loaded"]:
        pytest.skip(f"no CUDA module: {st['cuda_error']}")
    rt = st["cuda_runtime"]
    assert {"driver_version", "runtime_version", "device_count", "error"} <= set(rt)
    if rt["device_count"] > 0:
        pytest.skip("a CUDA device is present: the gpu tests cover it")
    assert rt["error"], "no device but no reason given"
    from pylogmap.kernels import _native

    # pointers are never touched: the device check comes first
    with pytest.raises(RuntimeError, match="CUDA is not usable on this machine"):
        _native.cuda().token_logprobs(16, 2, 10, 10, 0, 16, 1, 16, 0, False, 1.0, False, 0.0, 0, 0)


def test_cuda_module_not_linked_to_shared_cudart():
    """Static CUDA runtime: the module must not need libcudart.so at run time."""
    st = kernels.native_status()
    if not st["cuda_loaded"] or shutil.which("ldd") is None:
        pytest.skip("no CUDA module (or no ldd)")
    so = importlib.util.find_spec("pylogmap.kernels._cuda").origin
    out = subprocess.run(["ldd", str(so)], capture_output=True, text=True, check=False).stdout
    assert "libcudart" not in out, out


# ------------------------------------------------------------------------------------------------
# The PYLOGMAP_CUDA switch, checked by configuring the CMake project (no compilation).
# ------------------------------------------------------------------------------------------------
def _configure(tmp_path: Path, mode: str, *, hide_nvcc: bool):
    if not (REPO / "CMakeLists.txt").is_file() or shutil.which("cmake") is None:
        pytest.skip("needs the source tree and cmake")
    pytest.importorskip("pybind11")
    env = dict(os.environ)
    if hide_nvcc:
        env.pop("CUDACXX", None)
        nvcc = shutil.which("nvcc")
        if nvcc:
            hidden = {str(Path(nvcc).parent), str(Path(nvcc).resolve().parent)}
            env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p not in hidden)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
        if shutil.which("nvcc", path=env["PATH"]) or Path("/usr/local/cuda/bin/nvcc").exists():
            # CMake also looks in the default toolkit location; hide it by naming a missing compiler
            env["CUDACXX"] = str(tmp_path / "no-nvcc-here")
    cmd = [
        "cmake", "-S", str(REPO), "-B", str(tmp_path / "build"), f"-DPYLOGMAP_CUDA={mode}",
        f"-DPython_EXECUTABLE={sys.executable}",
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_switch_on_without_nvcc_is_an_error(tmp_path):
    res = _configure(tmp_path, "ON", hide_nvcc=True)
    assert res.returncode != 0
    assert "PYLOGMAP_CUDA=ON but CMake found no CUDA compiler" in res.stdout + res.stderr


def test_switch_auto_without_nvcc_builds_cpu_only(tmp_path):
    """AUTO (the default) without nvcc configures a CPU-only package instead of failing.
    (AUTO with nvcc is checked on the installed package by the test above; OFF needs no test
    beyond the `cuda_mode == "OFF"` build info.)"""
    res = _configure(tmp_path, "AUTO", hide_nvcc=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "pylogmap: CUDA module: OFF" in res.stdout, res.stdout


def test_native_status_needs_no_torch():
    """`native_status()` only reports on the compiled modules, so it answers where torch cannot be
    imported at all (a broken torch install), while the torch names still fail clearly there."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any import of torch now raises ImportError\n"
        "from pylogmap.kernels import native_status\n"
        "st = native_status()\n"
        "print(st['core_loaded'], st['cuda_built'])\n"
        "try:\n"
        "    from pylogmap.kernels import token_logprobs\n"
        "except ImportError:\n"
        "    print('no torch')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    st = kernels.native_status()
    assert out == [str(st["core_loaded"]), str(st["cuda_built"]), "no", "torch"]
