#!/usr/bin/env python
"""Regenerate the README's two pictures from the demo's own map: docs/map.png and docs/screenshot.png.

    python scripts/make_screenshot.py                       # runs the demo in demo-out/ (reused when there)
    python scripts/make_screenshot.py --demo-out DIR        # another demo folder
    python scripts/make_screenshot.py --select MODEL        # the model selected in the viewer

The script runs `pylogmap demo -o DIR --no-view` (a rerun reuses the trained models and scored
rows), copies the figure the demo draws, `DIR/map.png` (`pylogmap plot`: the map coloured by
lineage, one marker shape per kind of model), to docs/map.png, and renders the viewer window on
the same map with `pylogmap view DIR/map.h5 --screenshot docs/screenshot.png` -- under `xvfb-run`
when it is installed (a real X11 window), else with Qt's offscreen platform.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))  # this checkout's pylogmap


def pylogmap(*args: str, display: bool = False) -> None:
    """Run `python -m pylogmap ARGS` from the repository root; `display`: under xvfb-run if there is no display."""
    cmd = [sys.executable, "-m", "pylogmap", *args]
    env = dict(ENV)
    if display and shutil.which("xvfb-run") and not os.environ.get("DISPLAY"):
        env.pop("QT_QPA_PLATFORM", None)
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1920x1200x24"] + cmd
    elif display:
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-out", type=Path, default=ROOT / "demo-out", help="the demo's folder (default: demo-out)")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="where the pictures go (default: docs)")
    parser.add_argument("--select", default="llama-s0-ft1", help="the model selected in the viewer")
    args = parser.parse_args()
    args.docs.mkdir(parents=True, exist_ok=True)
    pylogmap("demo", "-o", str(args.demo_out), "--no-view", "-q")
    shutil.copyfile(args.demo_out / "map.png", args.docs / "map.png")
    print(f"wrote {args.docs / 'map.png'}")
    pylogmap("view", str(args.demo_out / "map.h5"), "--screenshot", str(args.docs / "screenshot.png"),
             "--select", args.select, display=True)
    print(f"wrote {args.docs / 'screenshot.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
