"""Synthetic model populations and map files, for tests and benchmarks of the map side.

`synthetic_population` draws a log-likelihood matrix that looks like real data where it matters:
- every entry is negative; a text's log-likelihood scales with its length in bytes and its
  difficulty (nats per byte, log-normal across texts, like code vs. prose);
- models come in families; a family shares a direction in text space (the structure t-SNE and the
  neighbour search should recover), each model adds its own smaller deviation, and models differ
  in overall quality (a per-model scale on the difficulty);
- a heavy lower tail: about 1.5 % of texts are garbled (every model pays 3-15x more per byte),
  0.03 % of (model, text) entries are ones a model collapses on (Pareto-distributed extra loss), and
  about 1 % of models are broken (much lower everywhere),
  so that the 2 % clipping of method.md section 3 changes the result, as with the published matrix
  (minimum about 15x the 2 % quantile).

`write_synthetic_map` writes a valid map file (texts included) in one go through the store.
numpy only; deterministic for a given seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from pylogmap.store import MapFile
from pylogmap.texts import TextSet

__all__ = ["SyntheticPopulation", "synthetic_population", "synthetic_texts", "write_synthetic_map", "FAMILY_NAMES"]

#: Family names cycled through (the published colour classes of method.md section 4).
FAMILY_NAMES = ["llama-2", "mistral", "gpt_neox", "gemma", "opt", "bloom", "falcon", "deepseek",
                "llama-3", "gptj", "llama-1", "others"]


@dataclass
class SyntheticPopulation:
    """`L` float32 [M, N] (nats, all negative), `names` [M], `families` [M] (family name per model),
    `family_index` int [M], `n_bytes` int64 [N], `ntokens` int32 [M, N] (per-family tokenizer),
    `quality` float [M] (multiplies text difficulty: larger = worse model), `broken` bool [M]."""

    L: np.ndarray
    names: list[str]
    families: list[str]
    family_index: np.ndarray
    n_bytes: np.ndarray
    ntokens: np.ndarray
    quality: np.ndarray
    broken: np.ndarray


def synthetic_population(n_models: int, n_texts: int, *, n_families: int = 5, seed: int = 0) -> SyntheticPopulation:
    """Draw a synthetic population (see the module doc). Memory: a few float32 [M, N] arrays."""
    if n_models < 1 or n_texts < 1:
        raise ValueError(f"need at least one model and one text, got n_models={n_models}, n_texts={n_texts}")
    if n_families < 1:
        raise ValueError(f"n_families must be >= 1, got {n_families}")
    rng = np.random.default_rng(seed)
    M, N = n_models, n_texts
    # Like the published set: most chunks are full (1021-1024 bytes), the rest a document's tail.
    full = rng.random(N) < 0.8
    n_bytes = np.where(full, rng.integers(1021, 1025, size=N), rng.integers(257, 1025, size=N)).astype(np.int64)
    difficulty = rng.lognormal(mean=np.log(0.75), sigma=0.35, size=N)  # nats per byte
    # ~1.5 % garbled texts (base64, tables) cost every model many times more per byte
    garbled = rng.random(N) < 0.015
    difficulty[garbled] *= rng.uniform(3.0, 15.0, size=int(garbled.sum()))
    base = -(n_bytes * difficulty)  # [N], about -750 on average

    fam = rng.integers(0, n_families, size=M)
    fam[: min(M, n_families)] = np.arange(min(M, n_families))  # every family appears
    fam_quality = rng.normal(0.0, 0.06, size=n_families)
    quality = np.exp(fam_quality[fam] + rng.normal(0.0, 0.01, size=M))
    broken = rng.random(M) < 0.01
    quality[broken] *= rng.uniform(2.5, 6.0, size=int(broken.sum()))

    # Family directions in text space (unit RMS, scaled by text length) and model deviations.
    fam_dir = rng.standard_normal((n_families, N)).astype(np.float32)
    scale = (n_bytes / 1000.0).astype(np.float32)
    L = np.empty((M, N), dtype=np.float32)
    block = max(1, (1 << 22) // N)
    for a in range(0, M, block):
        b = min(M, a + block)
        q = quality[a:b, None].astype(np.float32)
        Lb = base[None, :].astype(np.float32) * q
        Lb += 25.0 * fam_dir[fam[a:b]] * scale
        Lb += 8.0 * rng.standard_normal((b - a, N), dtype=np.float32) * scale
        # rare entries a model collapses on (Pareto-distributed extra loss)
        hit = rng.random((b - a, N)) < 0.0003
        Lb[hit] -= np.minimum(rng.pareto(1.3, size=int(hit.sum())) * 600.0 + 300.0, 18000.0).astype(np.float32)
        np.minimum(Lb, -1e-2, out=Lb)
        L[a:b] = Lb

    families = [FAMILY_NAMES[f % len(FAMILY_NAMES)] + (f"-{f // len(FAMILY_NAMES)}" if f >= len(FAMILY_NAMES) else "")
                for f in range(n_families)]
    width = len(str(M - 1))
    names = [f"synthetic/{families[f]}-{i:0{width}d}" for i, f in enumerate(fam)]
    bytes_per_token = rng.uniform(3.4, 4.4, size=n_families)
    ntokens = np.maximum(1, np.rint((n_bytes[None, :] / bytes_per_token[fam][:, None]).astype(np.float32))).astype(np.int32)
    return SyntheticPopulation(
        L=L, names=names, families=[families[f] for f in fam], family_index=fam.astype(np.int64),
        n_bytes=n_bytes, ntokens=ntokens, quality=quality, broken=broken,
    )


def synthetic_texts(n_bytes: np.ndarray, *, seed: int = 0) -> TextSet:
    """A text set of pseudo-words with exactly the given UTF-8 lengths (ASCII only)."""
    rng = np.random.default_rng(seed + 1)
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", dtype=np.uint8)
    texts = []
    for k, nb in enumerate(np.asarray(n_bytes, dtype=np.int64)):
        chars = alphabet[rng.integers(0, len(alphabet), size=int(nb))]
        chars[0] = ord("t")
        texts.append(chars.tobytes().decode("ascii"))
    return TextSet.from_texts(texts, sources=["synthetic"] * len(texts), meta=[{"index": k} for k in range(len(texts))],
                              name="synthetic")


def write_synthetic_map(path: str | os.PathLike, n_models: int, n_texts: int, *, n_families: int = 5, seed: int = 0,
                        overwrite: bool = False):
    """Write a map file holding a synthetic population (texts, rows, `family` annotation) in one
    write, and return `(MapFile, SyntheticPopulation)`. 100,000 models x a few hundred texts takes
    seconds."""

    pop = synthetic_population(n_models, n_texts, n_families=n_families, seed=seed)
    texts = synthetic_texts(pop.n_bytes, seed=seed)
    meta = {
        "architecture": [f"Synthetic{f.title().replace('-', '').replace('_', '')}ForCausalLM" for f in pop.families],
        "n_params": (np.round(1e8 / pop.quality ** 4)).astype(np.int64),
        "dtype": ["float32"] * n_models,
    }
    mf = MapFile.create_with_rows(
        path, texts, pop.names, pop.L, pop.ntokens, meta,
        annotations={"family": np.array(pop.families, dtype=object), "quality": pop.quality},
        overwrite=overwrite,
    )
    return mf, pop
