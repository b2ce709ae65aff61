"""The command-line front door: help, version, unknown commands, user errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pylogmap import __version__
from pylogmap.cli import COMMANDS, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pylogmap", *args], capture_output=True, text=True)


def test_top_level_help_lists_every_command_and_imports_nothing_heavy():
    code = (
        "import sys\nfrom pylogmap.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('torch', 'transformers', 'faiss', 'h5py', 'PySide6') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert f"  {name} " in out
    assert "HEAVY []" in out


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_unknown_command_suggests_the_closest():
    result = run_cli("neighbours")
    assert result.returncode == 2
    assert "neighbors" in result.stderr


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: pylogmap {name}")
    assert len(out.splitlines()) > 3, "a command's --help should explain its options"


def test_an_os_error_no_command_checked_is_one_line(monkeypatch, capsys):
    """cli.main's last resort: an OSError from anywhere becomes one line naming the path, exit 2."""
    import pylogmap.commands.info as info

    def denied(args):
        raise PermissionError(13, "Permission denied", "/data/map.h5")

    monkeypatch.setattr(info, "run", denied)
    assert main(["info", "x.h5"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "pylogmap info: error: cannot access '/data/map.h5': permission denied; check its permissions or use another path."
    ]
