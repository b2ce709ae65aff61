"""Synthetic map files for the viewer tests and the screenshot script.

A synthetic population (pylogmap.synthetic) written through the store, with its map computed by
the real map code (mapping.compute_map) and stored under /map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_map(path: str | Path, n_models: int = 300, n_texts: int = 200, *, n_families: int = 12,
             seed: int = 0, embeddings=("pca",), trajectories: bool = False) -> Path:
    """Write a synthetic map file with the given embeddings stored under /map; returns its path.

    With `trajectories=True` five extra rows are checkpoints of one run (steps 1000..5000) and
    four are logit-lens layers of one model, so the viewer has paths to draw.
    """
    from pylogmap.mapping import compute_map
    from pylogmap.testing import write_synthetic_map

    path = Path(path)
    mf, pop = write_synthetic_map(path, n_models, n_texts, n_families=n_families, seed=seed, overwrite=True)
    if trajectories:
        rng = np.random.default_rng(seed + 7)
        base = pop.L[0].astype(np.float64)
        steps = [1000, 2000, 3000, 4000, 5000]
        ck = np.stack([base * (1.0 + 0.3 / (1 + i)) + rng.normal(0, 2.0, n_texts) for i in range(len(steps))])
        keys = [(pop.names[0] + "-run", f"step{s}", -1) for s in steps]
        mf.append_rows(keys, ck.astype(np.float32), meta={"step": np.array(steps, dtype=np.int64)})
        lens = np.stack([base * (1.0 + 0.5 / (1 + i)) + rng.normal(0, 2.0, n_texts) for i in range(3)] + [base])
        keys = [(pop.names[1] + "-lens", "", layer) for layer in (0, 1, 2, -1)]
        mf.append_rows(keys, lens.astype(np.float32))
    mf.close()
    if embeddings:
        compute_map(path, embeddings=tuple(embeddings), k=0, progress=False)
    return path
