"""`pylogmap doctor`: one screen for a bug report, correct where it can be checked, never a crash."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

from pylogmap.commands import doctor
from pylogmap.viewer import qtlibs


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pylogmap", "doctor", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_json_report_matches_what_is_installed():
    proc = _run("--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert {"pylogmap", "python", "platform", "packages", "native", "torch", "faiss", "ray", "display",
            "hugging_face"} <= set(rep)
    for dist, version in rep["packages"].items():
        try:
            assert version == importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            assert version is None
    from pylogmap.kernels import native_status

    st = native_status()
    assert rep["native"]["cpu_module"] == ("loaded" if st["core_loaded"] else f"not loaded: {st['core_error']}")
    assert rep["native"]["cpu_variant"] == st.get("cpu_variant")
    assert rep["native"]["map_module"] == "loaded"  # pylogmap.mapping._pairs, always built
    assert "tiles" in rep["native"]["map_tiles"] or "PYLOGMAP_GEMM" in rep["native"]["map_tiles"]
    import torch

    assert rep["torch"]["version"] == torch.__version__
    assert rep["torch"]["cuda_available"] == torch.cuda.is_available()
    assert len(rep["torch"]["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


def test_text_report_names_every_section():
    proc = _run()
    assert proc.returncode == 0, proc.stderr
    for word in ("pylogmap", "packages", "torch", "native", "cpu_variant", "faiss", "display", "qt_platform",
                 "hugging_face", "HF_HUB_OFFLINE"):
        assert word in proc.stdout


def test_a_broken_library_is_reported_not_raised(monkeypatch):
    def broken():
        raise ImportError("libtorch_cpu.so: cannot open shared object file")

    monkeypatch.setattr(doctor, "_torch", broken)
    rep = doctor.report()
    assert rep["torch"] == {"error": "ImportError: libtorch_cpu.so: cannot open shared object file"}


def test_hf_settings_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    proc = subprocess.run([sys.executable, "-m", "pylogmap", "doctor", "--json"], capture_output=True,
                          text=True, timeout=120, check=False)
    hf = json.loads(proc.stdout)["hugging_face"]
    assert hf["offline"] is True and hf["HF_HOME"] == str(tmp_path)
    assert hf["hub_cache"].startswith(str(tmp_path)) and hf["token"] == "not set"


@pytest.mark.parametrize(("soname", "package"), [
    ("libxcb-icccm.so.4", "libxcb-icccm4"),
    ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    ("libxcb-cursor.so.0", "libxcb-cursor0"),
    ("libxcb-render-util.so.0", "libxcb-render-util0"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libEGL.so.1", "libegl1"),
    ("libglib-2.0.so.0", "libglib2.0-0"),
    ("libdbus-1.so.3", "libdbus-1-3"),
])
def test_debian_package_of_a_library(soname, package):
    assert qtlibs.debian_package(soname) == package


def test_missing_qt_libraries_are_named_with_the_install_line(monkeypatch):
    if qtlibs._qt_dir() is None or not sys.platform.startswith("linux"):
        pytest.skip("needs PySide6 on Linux")
    ldd_out = ("\tlibxcb1.so.1 => /lib/libxcb1.so.1 (0x1)\n\tlibxcb-icccm.so.4 => not found\n"
               "\tlibxcb-keysyms.so.1 => not found\n\tlibxcb-icccm.so.4 => not found\n")

    def fake_run(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 0, stdout=ldd_out, stderr="")

    monkeypatch.setattr(qtlibs.subprocess, "run", fake_run)
    check = qtlibs.check_qt_platform("xcb")
    assert check.missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    assert check.install_hint() == "sudo apt-get install libxcb-icccm4 libxcb-keysyms1"
    assert "libxcb-icccm.so.4" in check.message() and "--screenshot" in check.message()


def test_session_platform():
    assert qtlibs.session_platform({"QT_QPA_PLATFORM": "offscreen"}) == "offscreen"
    if sys.platform.startswith("linux"):
        assert qtlibs.session_platform({"DISPLAY": ":0"}) == "xcb"
        assert qtlibs.session_platform({"WAYLAND_DISPLAY": "wayland-0"}) == "wayland"
