#!/usr/bin/env python
"""Regenerate docs/screenshot.png: the viewer window on a meaningful map, rendered by the real code.

    python scripts/make_screenshot.py                        # synthetic showcase map (about 1-2 min)
    python scripts/make_screenshot.py --map demo-out/map.h5  # any map file, e.g. the demo's
    python scripts/make_screenshot.py --out docs/screenshot.png --select MODEL

Without --map the script writes a synthetic population to a temporary map file through the store:
12 families named after the published colour classes, each with base models of several sizes and
fine-tunes around them, a pretraining run whose checkpoints converge onto one base model (drawn as
a trajectory), and a few unrelated models. It computes the map with the real map code (clipping,
double centring, t-SNE) and runs `pylogmap view FILE --screenshot OUT` -- under `xvfb-run` when it
is installed (a real X11 window), else with Qt's offscreen platform.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's pylogmap, also in the viewer's process (PYTHONPATH below)

from pylogmap.mapping import compute_map  # noqa: E402
from pylogmap.store import MapFile  # noqa: E402
from pylogmap.testing import FAMILY_NAMES, synthetic_texts  # noqa: E402

SIZES = {"135M": 1.35e8, "410M": 4.1e8, "1.4B": 1.4e9, "7B": 7e9, "70B": 7e10}


def showcase_population(seed: int = 0, n_texts: int = 400):
    """Keys, log-likelihood rows [M, N] (float32), per-row metadata and families of the showcase."""
    rng = np.random.default_rng(seed)
    n_bytes = np.where(rng.random(n_texts) < 0.8, rng.integers(1000, 1025, n_texts),
                       rng.integers(257, 1000, n_texts)).astype(np.int64)
    difficulty = rng.lognormal(np.log(0.75), 0.35, n_texts)
    base = -(n_bytes * difficulty)  # nats per text of an average model
    scale = n_bytes / 1000.0
    shared = rng.standard_normal(n_texts)  # what larger models get better at, in every family
    keys, rows, steps, params, families = [], [], [], [], []

    def add(name, row, family, n_params=0, revision="", step=-1):
        keys.append((name, revision, -1))
        rows.append(np.minimum(row, -1e-2))
        steps.append(step)
        params.append(n_params)
        families.append(family)

    published = [f for f in FAMILY_NAMES if f != "others"]
    for f_i, fam in enumerate(published):
        direction = rng.standard_normal(n_texts)
        fam_quality = rng.normal(0, 0.05)
        sizes = list(SIZES.items())[rng.integers(0, 2): rng.integers(3, 6)]
        for size_name, n_params in sizes:
            gain = np.log10(n_params / 1e8)  # 0.1 .. 2.8
            size_dir = direction * 20 + shared * 6 * gain + rng.standard_normal(n_texts) * 6
            quality = np.exp(fam_quality - 0.06 * gain)
            base_row = base * quality + size_dir * scale
            org = fam.replace("_", "-")
            add(f"{org}/{fam}-{size_name}", base_row, fam, n_params)
            for ft in range(int(rng.integers(3, 9))):
                tweak = rng.standard_normal(n_texts) * rng.uniform(8, 22) + direction * rng.normal(0, 4)
                add(f"finetunes/{fam}-{size_name}-ft{ft}", base_row + tweak * scale, fam, n_params)
    for i in range(14):
        add(f"misc/unrelated-model-{i}", base * np.exp(rng.normal(0, 0.05)) + rng.standard_normal(n_texts) * 42 * scale,
            "others", float(rng.choice(list(SIZES.values()))))
    # a pretraining run converging onto gpt_neox 410M: checkpoints every 1000 steps
    target = rows[keys.index(("gpt-neox/gpt_neox-410M", "", -1))] if ("gpt-neox/gpt_neox-410M", "", -1) in keys else rows[0]
    start = base * 1.9 + rng.standard_normal(n_texts) * 30 * scale
    swirl = rng.standard_normal(n_texts)
    for t, step in enumerate(range(1000, 13000, 1000)):
        a = np.exp(-t / 3.0)
        row = target + (start - target) * a + swirl * 25 * np.sin(t / 2.0) * a * scale
        add("runs/pythia-like-410m", row + rng.standard_normal(n_texts) * 2 * scale, "gpt_neox", 4.1e8,
            revision=f"step{step}", step=step)
    L = np.stack(rows).astype(np.float32)
    # a heavy lower tail like real data: a few collapsed (model, text) entries, which the 2 %
    # clipping of the map removes
    hit = rng.random(L.shape) < 0.004
    L[hit] -= (rng.pareto(2.5, int(hit.sum())) * 80 + 40).astype(np.float32)
    meta = {"n_params": np.array(params, dtype=np.int64), "step": np.array(steps, dtype=np.int64)}
    return keys, L, n_bytes, meta, np.array(families, dtype=object)


def write_showcase(path: Path, seed: int = 0) -> Path:
    """Write the showcase map and compute its t-SNE with the map code."""
    keys, L, n_bytes, meta, families = showcase_population(seed)
    texts = synthetic_texts(n_bytes, seed=seed)
    mf = MapFile.create_with_rows(path, texts, keys, L, None, meta, annotations={"family": families}, overwrite=True)
    mf.close()
    compute_map(path, embeddings=("tsne", "pca"), k=10)  # what 'pylogmap map FILE' does
    return path


def screenshot(map_path: Path, out: Path, select: str | None) -> None:
    cmd = [sys.executable, "-m", "pylogmap", "view", str(map_path), "--screenshot", str(out)]
    if select:
        cmd += ["--select", select]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if shutil.which("xvfb-run") and not os.environ.get("DISPLAY"):
        env.pop("QT_QPA_PLATFORM", None)
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1920x1200x24"] + cmd
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--map", type=Path, help="an existing map file (default: write the synthetic showcase)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--select", default=None, help="model to select (default: a fine-tune in the showcase)")
    parser.add_argument("--keep", type=Path, help="also keep the showcase map file here")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.map is not None:
        screenshot(args.map, args.out, args.select)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_showcase(args.keep or Path(tmp) / "showcase.h5")
            screenshot(path, args.out, args.select or "mistral/mistral-1.4B")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
