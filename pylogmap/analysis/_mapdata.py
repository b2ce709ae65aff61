"""What the analyses read from a map file, in one place (the only code here that knows the
`store.MapFile` read API)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from pylogmap.errors import PylogmapError
from pylogmap.mapping import geometry
from pylogmap.store import open_map


@dataclass
class MapData:
    """Rows of a map and their scores, as plain arrays.

    `used` marks rows whose scores are complete (finite on every text, status ok; as
    `geometry.select_rows`); analyses work on those. `L` is float64 `[M, N]` (NaN where not
    scored). `tau` is the clip threshold stored by `pylogmap map` (None before the first map):
    analyses reuse it, as the map does when models are added (method.md section 3).
    """

    path: str
    labels: list[str]
    names: list[str]
    revisions: list[str]
    layers: np.ndarray
    steps: np.ndarray
    status: list[str]
    L: np.ndarray
    text_bytes: np.ndarray
    annotations: dict
    used: np.ndarray
    tau: float | None = None
    paths: list[str] | None = None  # where a local model was read from (meta.path), else ""

    @property
    def n_models(self) -> int:
        return len(self.labels)

    @property
    def n_texts(self) -> int:
        return self.L.shape[1]


def _strs(a) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in np.asarray(a).tolist()]


def read_map(m, path: str = "") -> MapData:
    """Read a `store.MapFile` into a `MapData`."""
    table = m.models_table()
    M = m.n_models
    names = _strs(table.get("name", m.model_names()))
    revisions = _strs(table["revision"]) if "revision" in table else [""] * M
    layers = np.asarray(table["layer"], dtype=np.int64) if "layer" in table else np.full(M, -1, np.int64)
    steps = np.asarray(table["step"], dtype=np.int64) if "step" in table else np.full(M, -1, np.int64)
    status = _strs(table["status"]) if "status" in table else ["ok"] * M
    L = np.asarray(m.loglik(), dtype=np.float64) if M else np.zeros((0, m.n_texts))
    used = geometry.select_rows(L, status=np.array(status, dtype=object)).used if M else np.zeros(0, bool)
    tau = (m.map_attrs() if hasattr(m, "map_attrs") else {}).get("tau")
    metas = _strs(table["meta"]) if "meta" in table else ["{}"] * M
    paths = [str(json.loads(x or "{}").get("path", "")) for x in metas]
    return MapData(
        path=str(path),
        labels=list(m.labels()),
        names=names,
        revisions=revisions,
        layers=layers,
        steps=steps,
        status=status,
        L=L,
        text_bytes=np.asarray(m.text_bytes(), dtype=np.float64),
        annotations=dict(m.annotations()),
        used=np.asarray(used, dtype=bool),
        tau=None if tau is None else float(tau),
        paths=paths,
    )


def load(path) -> MapData:
    """Open the map file at `path` read-only and read it."""
    with open_map(path, mode="r") as m:
        return read_map(m, str(path))


def require_used(data: MapData, at_least: int, what: str) -> np.ndarray:
    """Indices of the used rows; a clear error when fewer than `at_least`."""
    rows = np.nonzero(data.used)[0]
    if len(rows) < at_least:
        raise PylogmapError(
            f"{what} needs at least {at_least} fully scored models; {data.path or 'the map'} has "
            f"{len(rows)} (of {data.n_models} rows). Score more models first ('pylogmap score')."
        )
    return rows


def clipped_and_centred(L_used: np.ndarray, tau: float | None = None):
    """(clipped L, Q, tau) of the used rows via `pylogmap.geometry`; `tau` None: the 2 %
    quantile of these rows (pass `MapData.tau` to reuse the map's)."""
    Lc, tau = geometry.clip(L_used, tau=tau)
    Lc = np.asarray(Lc, dtype=np.float64)
    return Lc, np.asarray(geometry.double_center(Lc), dtype=np.float64), float(tau)


def write_annotations(path, columns: dict) -> None:
    """Attach per-row columns (length M) to the map file, in one atomic commit of the store."""
    with open_map(path, mode="a") as m:
        m.set_annotations(columns)


def write_derived(path, items: dict) -> None:
    """Write derived results `{name: (array, attrs)}` under /map, in one atomic commit."""
    with open_map(path, mode="a") as m:
        m.update_map(items)


def read_derived(path, name: str):
    """`(array, attrs)` of a derived result under /map, or None."""
    with open_map(path, mode="r") as m:
        return m.read_derived(name)
