"""From an HDF5 map file to a `MapData`: the thin layer between `pylogmap.store` and the UI.

Reads the rows, clips and double-centres them with `mapping.load_geometry` (the usable rows and
the stored tau of `/map`, exactly as `pylogmap neighbors` does, so the KL values match), takes the stored
2-D embeddings, the annotation columns and the model table, and groups trajectories with
`analysis.trajectories.group_trajectories`. A missing
embedding can be computed on request with `embedding.embed`. Every problem with the file comes out
as a `MapFileError` whose message says what to do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pylogmap.analysis import group_trajectories
from pylogmap.errors import MapFileError, PylogmapError
from pylogmap.mapping import embedding, geometry, load_geometry
from pylogmap.mapping.families import default_families
from pylogmap.store import open_map

from .data import FAMILY, MEAN_LOGLIK, SIZE, MapData, QGeometry

EMBEDDINGS = ("tsne", "pca", "umap")


def _families(table: dict, annotations: dict, rows: np.ndarray) -> np.ndarray:
    """The `family` annotation when the file has one, else the published classes from the name
    and architecture (`mapping.families.default_families`, as `pylogmap map` stores them)."""
    if FAMILY in annotations and annotations[FAMILY].dtype.kind == "O":
        fam = np.asarray(annotations[FAMILY], dtype=object)[rows]
        return np.where(fam == "", "others", fam).astype(object)
    return np.array(default_families(list(table["name"][rows]), list(table["architecture"][rows])), dtype=object)


_CHECKPOINT_WORDS = ("checkpoint", "ckpt", "step")


def _trajectories(names: list[str], revisions: list[str], layers: np.ndarray, steps: np.ndarray,
                  labels: list[str]) -> list:
    """`analysis.trajectories.group_trajectories` over the rows that can be on a path.

    A row can only join a trajectory when it is a logit-lens layer, has a training step or a
    revision, or its name looks like a checkpoint folder; the others (usually nearly all rows)
    are left out before grouping, which keeps opening a 100,000-model map fast. Row indices of
    the result are mapped back to all rows.
    """
    cand = [i for i in range(len(names))
            if layers[i] >= 0 or steps[i] >= 0 or revisions[i]
            or any(w in names[i].lower() for w in _CHECKPOINT_WORDS)]
    if len(cand) < 2:
        return []
    trajs = group_trajectories([names[i] for i in cand], [revisions[i] for i in cand],
                               [int(layers[i]) for i in cand], [int(steps[i]) for i in cand],
                               [labels[i] for i in cand])
    index = np.asarray(cand, dtype=np.int64)
    for t in trajs:
        t.rows = index[np.asarray(t.rows, dtype=np.int64)]
    return trajs


def build_mapdata(mf, source: str = "") -> MapData:
    """A MapData for the scored rows of an open `MapFile`."""
    # the same rows, tau and Q as `pylogmap map` / `pylogmap neighbors` (stored tau reused)
    geo, _tau_source = load_geometry(mf)
    table = mf.models_table()
    labels_all = mf.labels()
    rows = geo.rows
    mean_ll = geometry.mean_loglik(mf.loglik(rows))

    annotations = mf.annotations()
    families = _families(table, annotations, rows)
    numeric: dict[str, np.ndarray] = {MEAN_LOGLIK: np.asarray(mean_ll, dtype=np.float64)}
    n_params = table["n_params"][rows].astype(np.float64)
    if (n_params > 0).any():
        numeric[SIZE] = np.where(n_params > 0, n_params, np.nan)
    categorical: dict[str, np.ndarray] = {}
    for name, col in annotations.items():
        if name == FAMILY:
            continue
        col = np.asarray(col)
        if col.dtype.kind in "fiub":
            numeric[name] = col[rows].astype(np.float64)
        else:
            categorical[name] = col[rows].astype(object)
    arch = table["architecture"][rows].astype(object)
    if len(set(arch.tolist()) - {""}) > 1:
        categorical.setdefault("architecture", np.where(arch == "", "unknown", arch).astype(object))
    steps = table["step"][rows].astype(np.int64)
    layers = table["layer"][rows].astype(np.int64)
    if (steps >= 0).sum() >= 2:
        numeric.setdefault("checkpoint step", np.where(steps >= 0, steps, np.nan).astype(np.float64))
    if (layers >= 0).sum() >= 2:
        numeric.setdefault("layer", np.where(layers >= 0, layers, np.nan).astype(np.float64))

    embeddings: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for name in EMBEDDINGS:
        got = mf.read_derived(name)
        if got is None:
            continue
        arr = np.asarray(got[0], dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise MapFileError(f"{mf.path}: /map/{name} has shape {arr.shape}, expected (models, 2); "
                               f"recompute it with 'pylogmap map {mf.path}'.")
        xy = np.full((len(rows), 2), np.nan)
        inside = rows < len(arr)
        xy[inside] = arr[rows[inside]]
        embeddings[name] = xy
    if embeddings:
        first = next(iter(embeddings.values()))
        missing = int((~np.isfinite(first).all(axis=1)).sum())
        if missing:
            notes.append(f"{missing:,} models not on the map yet (run 'pylogmap map' to add them)")

    computable = ["tsne", "pca"] + (["umap"] if embedding.umap_available() else [])
    Q = geo.Q

    def compute(name: str) -> np.ndarray:
        return np.asarray(embedding.embed(Q, name)[0], dtype=np.float64)

    names = [str(n) for n in table["name"][rows]]
    revisions = [str(r) for r in table["revision"][rows]]
    labels = [labels_all[r] for r in rows]
    try:
        trajectories = _trajectories(names, revisions, layers, steps, labels)
    except PylogmapError as err:  # e.g. checkpoints without step numbers: show the map anyway
        trajectories = []
        notes.append(f"no trajectories drawn: {err}")
    return MapData(
        labels=labels,
        families=families,
        numeric=numeric,
        categorical=categorical,
        embeddings=embeddings,
        kl=QGeometry(Q, geo.mean_bytes),
        trajectories=trajectories,
        source=source or str(mf.path),
        compute_embedding=compute if len(rows) >= 3 else None,
        computable=tuple(computable) if len(rows) >= 3 else (),
        n_texts=int(mf.n_texts),
        notes=notes,
    )


class FileSource:
    """A map file as the window's data source: `load()` reads it, `changed()` polls for commits."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._mf = None

    def load(self) -> MapData:
        mf = open_map(self.path)
        try:
            data = build_mapdata(mf, str(self.path))
        except PylogmapError:
            mf.close()
            raise
        except (OSError, KeyError, ValueError, TypeError) as err:
            mf.close()
            raise MapFileError(f"{self.path} could not be read as a map ({type(err).__name__}: {err}); "
                               "the file may be damaged: check it with 'pylogmap info'.") from None
        if self._mf is not None:
            self._mf.close()
        self._mf = mf
        return data

    def changed(self) -> bool:
        """Whether a scorer committed a newer version of the file since `load()`."""
        return self._mf is not None and bool(self._mf.changed())

    def close(self) -> None:
        if self._mf is not None:
            self._mf.close()
            self._mf = None
