"""The viewer's in-memory model of a map: what is drawn, and how KL estimates are looked up.

`MapData` holds one row per model that can be shown (scored, status ok): its display label, its
family, numeric columns (mean log-likelihood, size, benchmark scores...), categorical columns,
2-D coordinates per embedding (NaN where a row is not on that embedding yet), ordered
trajectories (checkpoints of one run, layers of one model, grouped by
`analysis.trajectories.group_trajectories`) and a `KLProvider` that gives a
model's nearest neighbours and the KL estimate of a pair. The UI only talks to this class, so it
is built and tested on arrays; `loader.py` fills it from an HDF5 map file.

numpy only: no Qt, no torch. The KL numbers come from `pylogmap.mapping.geometry` and
`pylogmap.mapping.neighbors`, never from code of our own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from pylogmap.mapping import family_order, geometry, neighbors
from pylogmap.numbers import format_value

# Column names the UI shows; loader.py and tests use the same constants.
MEAN_LOGLIK = "mean log-likelihood"
SIZE = "size (parameters)"
FAMILY = "family"


@dataclass(frozen=True)
class PairKL:
    """KL estimate between two models, with its standard error, in nats/text and bits/byte."""

    kl_nats: float
    se_nats: float
    kl_bpb: float
    se_bpb: float


@dataclass(frozen=True)
class Neighbours:
    """The k nearest models of one model (row indices into `MapData`), nearest first."""

    rows: np.ndarray
    kl_nats: np.ndarray
    se_nats: np.ndarray
    kl_bpb: np.ndarray
    se_bpb: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


class KLProvider(Protocol):
    """What the viewer needs to show neighbours and pair KLs."""

    def neighbours(self, row: int, k: int) -> Neighbours: ...

    def pair(self, i: int, j: int) -> PairKL: ...


class QGeometry:
    """KL estimates from the double-centred matrix Q (rows = the rows of a `MapData`).

    Neighbours are `neighbors.neighbors_of` (exact, float64, KL and delta-method SE from the
    full rows); a pair is `geometry.kl_estimate`; bits/byte use `geometry.to_bits_per_byte`
    with the mean text length of the map. Nothing is re-derived here.
    """

    def __init__(self, Q: np.ndarray, mean_bytes: float):
        self.Q = Q
        self.mean_bytes = float(mean_bytes)

    def _bpb(self, nats):
        if not self.mean_bytes > 0:  # text lengths unknown: only nats are meaningful
            return np.full(np.shape(nats), np.nan) if np.ndim(nats) else float("nan")
        return geometry.to_bits_per_byte(nats, self.mean_bytes)

    def pair(self, i: int, j: int) -> PairKL:
        kl, se = geometry.kl_estimate(self.Q[i], self.Q[j])
        return PairKL(float(kl), float(se), float(self._bpb(kl)), float(self._bpb(se)))

    def neighbours(self, row: int, k: int) -> Neighbours:
        k = max(1, min(int(k), len(self.Q) - 1))
        table = neighbors.neighbors_of(self.Q, int(row), k, self.mean_bytes if self.mean_bytes > 0 else float("nan"))
        kl, se = table.kl_nats[0], table.se_nats[0]
        return Neighbours(table.idx[0].astype(np.int64), kl, se, np.asarray(self._bpb(kl)), np.asarray(self._bpb(se)))


@dataclass
class MapData:
    """Everything the viewer shows about one map (see the module docstring)."""

    labels: list[str]
    families: np.ndarray
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, np.ndarray] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    kl: KLProvider | None = None
    # ordered paths (objects with `.rows`, `.kind`, `.positions`, `.name`), as grouped by
    # pylogmap.analysis.trajectories.group_trajectories
    trajectories: list = field(default_factory=list)
    source: str = ""
    # how to compute a missing embedding ("tsne", "pca") for these rows; None = cannot
    compute_embedding: Callable[[str], np.ndarray] | None = None
    computable: tuple[str, ...] = ()
    n_texts: int = 0
    notes: list[str] = field(default_factory=list)  # shown in the status bar

    def __post_init__(self) -> None:
        n = len(self.labels)
        self.families = np.asarray(self.families, dtype=object)
        if self.families.shape != (n,):
            raise ValueError(f"families has shape {self.families.shape}, expected ({n},)")
        self.categorical.setdefault(FAMILY, self.families)
        for name, col in list(self.numeric.items()):
            col = np.asarray(col, dtype=np.float64)
            if col.shape != (n,):
                raise ValueError(f"numeric column {name!r} has shape {col.shape}, expected ({n},)")
            self.numeric[name] = col
        for name, xy in list(self.embeddings.items()):
            xy = np.asarray(xy, dtype=np.float64)
            if xy.shape != (n, 2):
                raise ValueError(f"embedding {name!r} has shape {xy.shape}, expected ({n}, 2)")
            self.embeddings[name] = xy
        self._index = {label: i for i, label in enumerate(self.labels)}

    def __len__(self) -> int:
        return len(self.labels)

    def row_of(self, label: str) -> int | None:
        """The row of a display label, or None."""
        return self._index.get(label)

    def find(self, text: str) -> int | None:
        """The row best matching a search text: exact label, then case-insensitive, then substring."""
        text = text.strip()
        if not text:
            return None
        if text in self._index:
            return self._index[text]
        low = text.lower()
        lowered = [label.lower() for label in self.labels]
        for i, label in enumerate(lowered):
            if label == low:
                return i
        hits = [i for i, label in enumerate(lowered) if low in label]
        return min(hits, key=lambda i: len(self.labels[i])) if hits else None

    def family_order(self) -> list[str]:
        """Families present: the published classes first (in their order), then by count."""
        return family_order(self.families)

    def value_text(self, row: int, name: str) -> str:
        """A numeric cell formatted for people (`pylogmap.numbers`: sizes as 1.3B, NaN as 'unknown')."""
        v = self.numeric[name][row]
        if not math.isfinite(v):
            return "unknown"
        if name == SIZE:
            return format_count(v)
        return format_value(v, 6, trim=True)

    def tooltip(self, row: int) -> str:
        """Hover text: name, family, size and mean log-likelihood."""
        lines = [self.labels[row], f"family: {self.families[row]}"]
        if SIZE in self.numeric:
            lines.append(f"size: {self.value_text(row, SIZE)}")
        if MEAN_LOGLIK in self.numeric:
            v = self.numeric[MEAN_LOGLIK][row]
            lines.append(f"mean log-likelihood: {format_value(v, 6)} nats/text" if math.isfinite(v)
                         else "mean log-likelihood: unknown")
        return "\n".join(lines)


def format_count(v: float) -> str:
    """1.3e9 -> '1.3B', 135e6 -> '135M'."""
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{format_value(v / div, 3, trim=True)}{unit}"
    return format_value(v, 3, trim=True)
