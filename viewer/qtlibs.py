"""Which system libraries Qt's window plugin needs on Linux, and which of them are missing.

PySide6's wheels bring Qt itself but not the X11/xcb libraries its `xcb` platform plugin links
against. When one is missing, Qt aborts the whole process with a message that names only
`libxcb-cursor0` ("xcb-cursor0 or libxcb-cursor0 is needed"), whichever library is really absent.
This module asks the dynamic linker (`ldd` on the plugin files) before Qt starts, so `pylogmap view`
and `pylogmap doctor` can name the missing libraries and the Debian/Ubuntu packages that carry them.

No Qt import: PySide6 is located with importlib, never loaded.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# sonames whose Debian package name does not follow the usual rule (libfoo.so.N -> libfooN)
_PACKAGE_OF = {
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.M)


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships a shared library (`libxcb-icccm.so.4` -> `libxcb-icccm4`)."""
    if soname in _PACKAGE_OF:
        return _PACKAGE_OF[soname]
    match = re.match(r"^(lib[\w.+-]+?)\.so\.(\d+)", soname)
    if not match:
        return soname
    stem, version = match.groups()
    stem = stem.lower()
    return f"{stem}-{version}" if stem[-1].isdigit() else f"{stem}{version}"


@dataclass
class QtPlatformCheck:
    """What the Qt platform plugin of a session needs: `missing` sonames and the packages to install."""

    platform: str  # "xcb", "wayland", "offscreen", ... or "" when Qt is not installed
    plugin: str = ""  # the plugin file that was checked
    missing: list[str] = field(default_factory=list)
    note: str = ""  # why nothing could be checked, when so

    @property
    def packages(self) -> list[str]:
        return sorted({debian_package(s) for s in self.missing})

    @property
    def ok(self) -> bool:
        return not self.missing

    def install_hint(self) -> str:
        return "sudo apt-get install " + " ".join(self.packages) if self.missing else ""

    def message(self) -> str:
        """One line for an error: what is missing and the install line."""
        return (
            f"the viewer's Qt '{self.platform}' platform plugin needs system libraries that are not "
            f"installed: {', '.join(self.missing)}. Install them ({self.install_hint()} on Debian/Ubuntu), "
            "or render a PNG without a window: pylogmap view FILE --screenshot OUT.png"
        )


def session_platform(environ=None) -> str:
    """The Qt platform plugin a window would use in this session: QT_QPA_PLATFORM, else the display."""
    env = os.environ if environ is None else environ
    chosen = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip()
    if chosen:
        return chosen
    if not sys.platform.startswith("linux"):
        return "native"
    if env.get("WAYLAND_DISPLAY") and not env.get("DISPLAY"):
        return "wayland"
    return "xcb"


def _qt_dir() -> Path | None:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "Qt"


def _plugin_files(qt: Path, platform: str) -> list[Path]:
    files = [qt / "plugins" / "platforms" / f"libq{platform}.so"]
    if platform == "xcb":  # the plugin is a thin shim over libQt6XcbQpa, which holds the xcb links
        files += sorted((qt / "lib").glob("libQt6XcbQpa.so*"))[:1]
    return [f for f in files if f.is_file()]


def check_qt_platform(platform: str | None = None) -> QtPlatformCheck:
    """Ask the dynamic linker which libraries the platform plugin cannot find (Linux only)."""
    platform = platform or session_platform()
    qt = _qt_dir()
    if qt is None:
        return QtPlatformCheck(platform="", note="PySide6 is not installed")
    if not sys.platform.startswith("linux"):
        return QtPlatformCheck(platform=platform, note="only checked on Linux")
    files = _plugin_files(qt, platform)
    if not files:
        return QtPlatformCheck(platform=platform, note=f"no Qt plugin file for platform {platform!r}")
    ldd = shutil.which("ldd")
    if ldd is None:
        return QtPlatformCheck(platform=platform, plugin=str(files[0]), note="ldd is not available")
    missing: list[str] = []
    for f in files:
        try:
            out = subprocess.run([ldd, str(f)], capture_output=True, text=True, timeout=20, check=False).stdout
        except (OSError, subprocess.SubprocessError) as err:
            return QtPlatformCheck(platform=platform, plugin=str(f), note=f"ldd failed: {err}")
        missing += _NOT_FOUND.findall(out)
    return QtPlatformCheck(platform=platform, plugin=str(files[0]), missing=list(dict.fromkeys(missing)))
