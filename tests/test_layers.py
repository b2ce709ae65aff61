"""The layer rules of docs/architecture.md: the import contract, and torch-free imports checked in a clean interpreter.

The map side must work on a machine without torch, and `pylogmap --help` must stay instant, so
neither may import torch (or transformers), even indirectly.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

MAP_SIDE = [
    "pylogmap",
    "pylogmap.cli",
    "pylogmap.errors",
    "pylogmap.texts",
    "pylogmap.store",
    "pylogmap.testing",
    "pylogmap.mapping",
    "pylogmap.mapping.geometry",
    "pylogmap.mapping.neighbors",
    "pylogmap.mapping.embedding",
    "pylogmap.mapping.families",
    "pylogmap.io",
    "pylogmap.io.annotations",
    "pylogmap.io.exchange",
    "pylogmap.analysis",
    "pylogmap.analysis.prediction",
    "pylogmap.analysis.resampling",
    "pylogmap.analysis.trajectories",
    "pylogmap.viewer",
]


def _heavy_modules_after_import(module: str) -> list[str]:
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(' '.join(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize("module", MAP_SIDE)
def test_map_side_never_imports_torch(module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not part of this build")
    assert _heavy_modules_after_import(module) == []


def test_every_command_module_imports_without_torch():
    from pylogmap.cli import COMMANDS

    for name, (module, _) in COMMANDS.items():
        full = f"pylogmap.commands.{module}"
        assert importlib.util.find_spec(full) is not None, f"command {name!r} has no module {full}"
        assert _heavy_modules_after_import(full) == [], f"{full} imports torch at import time"


def test_import_contract_holds(tmp_path):
    """pyproject.toml [tool.importlinter]: the layers, the torch-free map side, no cycles. grimp reads
    every import statement, including the lazy ones inside functions, so a lazy import cannot hide
    a violation. Run outside the clone, so that it reads the installed package (viewer included)
    rather than the clone's source folder, which import-linter would find first from there."""
    from pathlib import Path

    lint = Path(sys.executable).with_name("lint-imports")
    root = Path(__file__).resolve().parents[1]
    if not lint.exists() or not (root / "pyproject.toml").is_file():
        pytest.skip("import-linter (the test extra) or the source tree is missing")
    proc = subprocess.run([str(lint), "--no-cache", "--config", str(root / "pyproject.toml")], cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
