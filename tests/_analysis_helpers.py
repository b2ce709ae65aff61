"""Fixtures shared by the analysis tests: in-memory maps (no file needed) and map files."""

from __future__ import annotations

import numpy as np

from pylogmap.analysis._mapdata import MapData


def make_mapdata(L, *, names=None, revisions=None, layers=None, steps=None, annotations=None,
                 text_bytes=None, labels=None) -> MapData:
    L = np.asarray(L, dtype=np.float64)
    K, N = L.shape
    names = list(names) if names is not None else [f"model-{i}" for i in range(K)]
    revisions = list(revisions) if revisions is not None else [""] * K
    layers = np.asarray(layers if layers is not None else [-1] * K, dtype=np.int64)
    steps = np.asarray(steps if steps is not None else [-1] * K, dtype=np.int64)
    if labels is None:
        labels = [
            n + (f"@{r}" if r else "") + (f"#L{ly}" if ly >= 0 else "")
            for n, r, ly in zip(names, revisions, layers.tolist())
        ]
    return MapData(
        path="memory.h5",
        labels=list(labels),
        names=names,
        revisions=revisions,
        layers=layers,
        steps=steps,
        status=["ok"] * K,
        L=L,
        text_bytes=np.asarray(text_bytes if text_bytes is not None else np.full(N, 1000.0), dtype=np.float64),
        annotations=dict(annotations or {}),
        used=np.all(np.isfinite(L), axis=1),
    )


def family_population(K=40, N=200, n_families=8, seed=0):
    """Low-rank population: family centre + latent directions + noise. Returns (L, Z, families)."""
    rng = np.random.default_rng(seed)
    fam = np.arange(K) % n_families
    W = rng.normal(size=(3, N)) * 20
    Z = rng.normal(size=(n_families, 3))[fam] + rng.normal(size=(K, 3)) * 0.3
    L = -300 + Z @ W + rng.normal(size=(K, N))
    return L, Z, np.array([f"fam{f}" for f in fam], dtype=object)


def write_map(path, L, keys, *, meta=None, annotations=None, n_bytes=None):
    """A real map file (through the store) holding `L` with row keys `(name, revision, layer)`."""
    from pylogmap.store import MapFile
    from pylogmap.testing import synthetic_texts

    L = np.asarray(L, dtype=np.float32)
    nb = np.asarray(n_bytes if n_bytes is not None else np.full(L.shape[1], 300), dtype=np.int64)
    texts = synthetic_texts(nb, seed=0)
    mf = MapFile.create_with_rows(path, texts, keys, L, None, meta, annotations=annotations)
    mf.close()
    return path


def train_with_checkpoints(folder, *, steps=10, every=1, seed=0, arch="gpt2"):
    """Train a tiny model (the scoring tests' architecture and tokenizer) with Adam, saving a
    checkpoint folder `folder/checkpoint-<step>` (weights + tokenizer) every `every` steps,
    step 0 included. Returns the checkpoint folders in order. About a second on a CPU."""
    from pathlib import Path

    import torch
    from _score_helpers import ARCH_STYLE, make_config, shakespeare_texts, tokenizer
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(make_config(arch))
    tok = tokenizer(ARCH_STYLE[arch])
    ids = tok(list(shakespeare_texts(16, seed=99)), add_special_tokens=True)["input_ids"]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    out = []

    def save(step):
        p = folder / f"checkpoint-{step}"
        model.save_pretrained(p)
        tok.save_pretrained(p)
        out.append(str(p))

    save(0)
    model.train()
    for step in range(1, steps + 1):
        seq = torch.tensor([ids[step % len(ids)][:64]])
        loss = model(input_ids=seq, labels=seq).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0:
            model.eval()
            save(step)
            model.train()
    return out


def write_texts(path, n=12, seed=0):
    """A small jsonl text set of Shakespeare passages (the scoring tests' texts)."""
    import json

    from _score_helpers import shakespeare_texts

    with open(path, "w", encoding="utf-8") as f:
        for k, t in enumerate(shakespeare_texts(n, seed=seed)):
            f.write(json.dumps({"index": k, "text": t}) + "\n")
    return path


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def single_thread_blas():
    """The analysis tests use small matrices, for which BLAS threads only add overhead (40x on an
    oversubscribed 2-core machine); run them single-threaded. Import this name into a test module
    to apply it there."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
