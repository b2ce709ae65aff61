"""The viewer on a real X display (Xvfb), as a Linux desktop user runs it: the platform plugin's
system libraries are checked before Qt can abort, and the window fits the screen and remembers
its geometry. Skipped where Xvfb is not installed (CI installs it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from pylogmap.errors import PylogmapError  # noqa: E402
from pylogmap.testing import write_synthetic_map  # noqa: E402
from pylogmap.viewer import qtlibs  # noqa: E402

pytestmark = [pytest.mark.viewer, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux desktop")]


def _desktop_env(display: str, config: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env.update(DISPLAY=display, XDG_CONFIG_HOME=str(config))
    return env


@contextmanager
def xvfb(width: int = 1280, height: int = 1024):
    """An Xvfb server of our own on a free display number, stopped whatever happens."""
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    for number in range(140, 200):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            break
    proc = subprocess.Popen([exe, f":{number}", "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = f"/tmp/.X11-unix/X{number}"
        for _ in range(100):
            if os.path.exists(sock):
                with socket.socket(socket.AF_UNIX) as s:
                    if s.connect_ex(sock) == 0:
                        break
            time.sleep(0.05)
        else:
            pytest.skip("Xvfb did not start")
        yield f":{number}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def map_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("desktop") / "map.h5"
    mf, _ = write_synthetic_map(path, 40, 64, seed=3)
    mf.close()
    from pylogmap.mapping import compute_map

    compute_map(path, embeddings=("pca",), progress=False)
    return path


_GEOMETRY = """
import sys
from pylogmap.viewer.app import application, build_window, dispose
app = application()
win = build_window(screenshot=False)
win.show(); app.processEvents()
g = win.frameGeometry(); s = win.screen().availableGeometry()
print(g.width(), g.height(), s.width(), s.height(), win.width(), win.height())
if len(sys.argv) > 1:
    win.resize(int(sys.argv[1]), int(sys.argv[2])); app.processEvents()
win.close(); dispose(win)
"""


def test_real_window_fits_the_screen_and_remembers_its_size(tmp_path, map_file):
    check = qtlibs.check_qt_platform("xcb")
    if not check.ok:
        pytest.skip(f"Qt's xcb plugin cannot load here: {check.install_hint()}")
    with xvfb(1280, 1024) as display:
        env = _desktop_env(display, tmp_path / "config")
        run = [sys.executable, "-c", _GEOMETRY]
        first = subprocess.run([*run, "1000", "700"], env=env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        fw, fh, sw, sh, _, _ = map(int, first.stdout.split()[:6])
        assert fw <= sw and fh <= sh, (fw, fh, sw, sh)  # the fixed 1500x920 window no longer spills over
        again = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        w, h = map(int, again.stdout.split()[4:6])
        assert (w, h) == (1000, 700)  # the size the window had when it was closed

        shot = tmp_path / "window.png"
        proc = subprocess.run([sys.executable, "-m", "pylogmap", "view", str(map_file), "--screenshot", str(shot)],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_system_libraries_are_named_before_qt_can_abort(monkeypatch, map_file):
    from pylogmap.viewer import app

    fake = qtlibs.QtPlatformCheck(platform="xcb", plugin="libqxcb.so", missing=["libxcb-icccm.so.4"])
    monkeypatch.setattr(qtlibs, "check_qt_platform", lambda platform=None: fake)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    with pytest.raises(PylogmapError, match=r"libxcb-icccm\.so\.4.*sudo apt-get install libxcb-icccm4"):
        app.main(map_file)


def test_on_a_desktop_without_the_libraries_view_says_so_in_one_line(tmp_path, map_file):
    check = qtlibs.check_qt_platform("xcb")
    if check.ok:
        pytest.skip("every library of Qt's xcb plugin is installed here (the case above covers the message)")
    # a display name is enough: the check runs before Qt connects to it
    env = _desktop_env(":139", tmp_path / "config")
    proc = subprocess.run([sys.executable, "-m", "pylogmap", "view", str(map_file)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and check.install_hint() in lines[0], proc.stderr
