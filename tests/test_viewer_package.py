"""How the viewer is packaged and imported, without Qt widgets.

The repository's top-level `viewer/` folder is installed as `pylogmap.viewer` by the build's
package mapping (pyproject [tool.scikit-build.wheel.packages]) for wheels and editable installs
alike; nothing grafts folders onto the package at run time, so a checkout never makes
`pylogmap.tests` importable. `import pylogmap.viewer` imports no Qt, and `require_qt()` names
what is missing and how to install it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pylogmap.errors import PylogmapError
from pylogmap.viewer import require_qt

REPO = Path(__file__).resolve().parents[1]
VIEWER_MODULES = sorted(p.stem for p in (REPO / "viewer").glob("*.py") if p.stem != "__init__")
NOT_PACKAGES = ("tests", "benchmarks", "scripts", "docs", "csrc", "viewer.tests")

PROBE = """
import importlib.util, json, sys
import pylogmap.viewer
print(json.dumps({
    "file": pylogmap.viewer.__file__,
    "modules": [m for m in %(modules)r if importlib.util.find_spec("pylogmap.viewer." + m) is None],
    "grafted": [m for m in %(others)r if importlib.util.find_spec("pylogmap." + m) is not None],
    "path": sys.path,
    "qt": [m for m in ("PySide6", "pyqtgraph", "superqt", "torch") if m in sys.modules],
}))
""" % {"modules": VIEWER_MODULES, "others": NOT_PACKAGES}

# scikit-build-core's editable redirect (1.1) registers the parent of every mapped package folder
# as a folder of its parent package and puts it on sys.path: for "pylogmap/viewer" = "viewer" that
# adds the repository root to pylogmap.__path__ (so pylogmap.tests resolves) and the repository and
# its parent folder to sys.path. Wheels are not affected (test below).
EDITABLE = Path(importlib.util.find_spec("pylogmap.viewer").origin).parent == REPO / "viewer"
EDITABLE_GRAFTS = pytest.mark.xfail(EDITABLE, strict=True, reason="scikit-build-core's editable install adds the "
                                    "repository root to pylogmap.__path__ and sys.path")


def _probe(cwd: Path, *args: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, *args, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("where", ["checkout", "elsewhere"])
def test_the_installed_package_has_the_viewer(where, tmp_path):
    """Started in the repository root and elsewhere. The tests' Pythons run with PYTHONSAFEPATH
    (conftest), as a console script such as `pylogmap` does: the folder they start in is not put
    on sys.path, where the clone's source folder would shadow the installed package."""
    got = _probe(REPO if where == "checkout" else tmp_path)
    folder = Path(got["file"]).parent
    assert folder == REPO / "viewer" or folder.parts[-2:] == ("pylogmap", "viewer"), got["file"]
    assert got["modules"] == [], f"not importable as pylogmap.viewer.*: {got['modules']}"
    assert got["qt"] == [], f"import pylogmap.viewer imported {got['qt']}"


@EDITABLE_GRAFTS
def test_no_repository_folder_is_importable_inside_pylogmap(tmp_path):
    got = _probe(tmp_path)
    assert got["grafted"] == [], f"repository folders importable inside pylogmap: {got['grafted']}"
    assert not {str(REPO), str(REPO.parent)} & set(got["path"]), "the checkout is on sys.path"


def test_a_wheel_installs_the_viewer_as_pylogmap_viewer(tmp_path):
    """The package mapping of a wheel (built without CMake: only the Python files are at stake)."""
    pytest.importorskip("scikit_build_core", reason="building a wheel needs scikit-build-core")
    build = subprocess.run(
        [sys.executable, "-c", "import sys; from scikit_build_core.build import build_wheel; "
         "print(build_wheel(sys.argv[1], {'wheel.cmake': 'false', 'build-dir': sys.argv[2]}))",
         str(tmp_path / "dist"), str(tmp_path / "build")],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = tmp_path / "dist" / build.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path / "site")
    assert {f"pylogmap/viewer/{m}.py" for m in ["__init__", *VIEWER_MODULES]} <= set(names)
    assert not [n for n in names if n.split("/")[0] in ("viewer", "tests") or n.startswith("pylogmap/tests/")]

    # import from the unpacked wheel only: -S skips the site .pth files (an editable install's
    # finder), the dependencies come from the site-packages folders themselves
    path = [str(tmp_path / "site"), *site.getsitepackages()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    got = _probe(tmp_path, "-S", env=env)
    assert Path(got["file"]) == tmp_path / "site" / "pylogmap" / "viewer" / "__init__.py"
    assert got["modules"] == [] and got["grafted"] == [] and got["qt"] == []
    assert not {str(REPO), str(REPO.parent)} & set(got["path"])


def test_missing_qt_names_the_packages_to_install(monkeypatch):
    real = importlib.util.find_spec

    def without(*gone):
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in gone else real(name, *a))

    without("PySide6")
    with pytest.raises(PylogmapError, match=r"needs PySide6, which is not installed.*pip install PySide6-Essentials$"):
        require_qt()
    without("pyqtgraph", "superqt")
    with pytest.raises(PylogmapError, match=r"needs pyqtgraph, superqt, which are not.*pip install pyqtgraph superqt$"):
        require_qt()
    monkeypatch.setattr(importlib.util, "find_spec", real)
    require_qt()  # all there: no error
