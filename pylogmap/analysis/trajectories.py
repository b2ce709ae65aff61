"""Trajectories along checkpoints and layers, and diffusion exponents (method.md section 7).

Rows of a map that belong together form ordered trajectories:
- *checkpoints*: the same model at several training steps -- the same `name` with several
  `revision`s (hub checkpoints such as Pythia's `step1000`), or local checkpoint folders named
  `.../checkpoint-<step>` / `.../step<step>` -- ordered by step;
- *layers* (logit lens): the same `(name, revision)` scored at several `layer`s, ordered by layer.

Along a trajectory we report the KL estimate between consecutive members with its standard
error (nats per text and bits per byte, via `pylogmap.geometry`), optionally after dropping the
3 % of texts whose log-likelihood jumps most between consecutive checkpoints, and the diffusion
exponent: from each start t0, with the next `window` (10) checkpoints t, fit
`log D(t0, t) = c log(t - t0) + b` by least squares, where D is the KL estimate (log-likelihood
space) or `||theta_t - theta_t0||^2` (weight space, accumulated in float64). c < 1 is
subdiffusion, c = 1 a random walk.

Plain functions over arrays; `trajectories_map` works on a map file. Weight distances need the
checkpoints' weights, so they are computed outside the map side (`pylogmap.experiments`) and
handed in as a function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pylogmap.analysis._mapdata import clipped_and_centred, require_used
from pylogmap.errors import PylogmapError
from pylogmap.mapping import geometry
from pylogmap.store import split_step, step_of



@dataclass
class Trajectory:
    """One ordered trajectory: `rows` (indices into the map's rows) sorted by `positions`.

    `kind` is "checkpoints" (positions = training steps) or "layers" (positions = layer index).
    """

    name: str
    kind: str
    rows: np.ndarray
    positions: np.ndarray
    labels: list[str] = field(default_factory=list)
    revision: str = ""
    skipped: list[str] = field(default_factory=list)


def _checkpoint_step(name: str, revision: str, step: int) -> tuple[str, int | None]:
    """(trajectory key, step or None) of a checkpoint row."""
    base, name_step = split_step(name) if not revision else (name, -1)
    key = base or name
    if step is not None and step >= 0:
        return key, int(step)
    found = step_of(revision) if revision else name_step
    return key, (found if found >= 0 else None)


def group_trajectories(
    names: Sequence[str],
    revisions: Sequence[str],
    layers: Sequence[int],
    steps: Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    *,
    model: str | None = None,
) -> list[Trajectory]:
    """Group map rows into ordered trajectories (see the module docstring).

    `steps` is the stored training step per row (-1 = unknown); when unknown, it is read from a
    revision such as `step1000` / `1000` / `checkpoint-1000` or a folder name ending in
    `checkpoint-1000`. A checkpoint group in which some member has no step is an error (the
    order would be a guess) when none or only one of them has a step; when at least two do, the
    members without one (e.g. the final model scored at the default revision) are left out and
    listed in `Trajectory.skipped`. `model` keeps only trajectories whose name equals it (or
    whose label starts with it).
    """
    n = len(names)
    steps = [-1] * n if steps is None else [int(s) for s in steps]
    labels = list(labels) if labels is not None else [str(x) for x in names]
    out: list[Trajectory] = []

    # Layers: (name, revision) with several layer rows (layer >= 0).
    by_layer: dict[tuple[str, str], list[int]] = {}
    for i in range(n):
        if int(layers[i]) >= 0:
            by_layer.setdefault((names[i], revisions[i]), []).append(i)
    for (name, rev), rows in by_layer.items():
        if len(rows) < 2:
            continue
        rows = sorted(rows, key=lambda i: int(layers[i]))
        pos = np.array([int(layers[i]) for i in rows])
        if len(set(pos.tolist())) != len(pos):
            raise PylogmapError(f"{name}: the same layer is stored twice; remove the duplicate rows.")
        out.append(Trajectory(name, "layers", np.array(rows), pos, [labels[i] for i in rows], rev))

    # Checkpoints: rows of the model's own output (layer -1) grouped by name.
    by_name: dict[str, list[tuple[int, int | None]]] = {}
    for i in range(n):
        if int(layers[i]) >= 0:
            continue
        key, st = _checkpoint_step(names[i], revisions[i], steps[i])
        by_name.setdefault(key, []).append((i, st))
    for key, members in by_name.items():
        if len(members) < 2:
            continue
        missing = [labels[i] for i, st in members if st is None]
        if missing and len(members) - len(missing) >= 2:
            members = [m for m in members if m[1] is not None]
        elif missing:
            raise PylogmapError(
                f"checkpoints of {key} have no step number: {', '.join(missing[:5])}"
                f"{' ...' if len(missing) > 5 else ''}; name the revisions stepN (or folders "
                f"checkpoint-N) so they can be ordered, or rescore with the step recorded."
            )
        members.sort(key=lambda m: m[1])
        pos = np.array([m[1] for m in members])
        if len(set(pos.tolist())) != len(pos):
            dup = sorted({int(p) for p in pos if (pos == p).sum() > 1})
            raise PylogmapError(
                f"checkpoints of {key} repeat step(s) {dup[:5]}; remove the duplicate rows."
            )
        rows = np.array([m[0] for m in members])
        out.append(Trajectory(key, "checkpoints", rows, pos, [labels[i] for i in rows], skipped=missing))

    if model is not None:
        out = [t for t in out if t.name == model or any(lb.startswith(model) for lb in t.labels)]
    return out


def jumpy_texts(L_traj: Sequence[np.ndarray], frac: float = 0.03) -> np.ndarray:
    """Mask of texts to keep after dropping the `frac` most jumpy ones.

    `L_traj` is a list of `[T_j, N]` matrices (ordered trajectories). A text's score is its
    largest |change| between consecutive rows over all trajectories; the `round(N * frac)`
    highest-scoring texts are dropped (as in the trajectory paper's preprocessing).
    """
    mats = [np.asarray(m, dtype=np.float64) for m in L_traj if len(m) >= 2]
    if not mats:
        raise PylogmapError("dropping jumpy texts needs a trajectory with at least 2 members.")
    N = mats[0].shape[1]
    score = np.full(N, -np.inf)
    for m in mats:
        score = np.maximum(score, np.abs(np.diff(m, axis=0)).max(axis=0))
    k = int(round(N * frac))
    keep = np.ones(N, dtype=bool)
    if k > 0:
        keep[np.argsort(-score, kind="stable")[:k]] = False
    return keep


def consecutive_kl(L: np.ndarray, mean_bytes: float | None = None) -> dict[str, np.ndarray]:
    """KL estimates between consecutive rows of an ordered `[T, N]` matrix.

    Returns `kl_nats`, `se_nats` (`[T-1]`, per text, from `geometry.kl_estimate`) and, when
    `mean_bytes` is given, `kl_bpb`, `se_bpb` (bits per byte).
    """
    L = np.asarray(L, dtype=np.float64)
    kl = np.empty(len(L) - 1)
    se = np.empty(len(L) - 1)
    for t in range(len(L) - 1):
        kl[t], se[t] = geometry.kl_estimate(L[t], L[t + 1])
    out = {"kl_nats": kl, "se_nats": se}
    if mean_bytes is not None:
        out["kl_bpb"] = np.asarray(geometry.to_bits_per_byte(kl, mean_bytes), dtype=np.float64)
        out["se_bpb"] = np.asarray(geometry.to_bits_per_byte(se, mean_bytes), dtype=np.float64)
    return out


def window_distances(
    n: int, distance: Callable[[int, int], float], window: int = 10
) -> np.ndarray:
    """`D[t0, t] = distance(t0, t)` for `t0 < t <= t0 + window`, NaN elsewhere (`[n, n]`)."""
    D = np.full((n, n), np.nan)
    for t0 in range(n):
        for t in range(t0 + 1, min(n, t0 + window + 1)):
            D[t0, t] = distance(t0, t)
    return D


def loglik_window_kl(L: np.ndarray, window: int = 10) -> np.ndarray:
    """`D[t0, t]` = KL estimate (nats per text) between rows t0 and t of `L`, within `window`."""
    L = np.asarray(L, dtype=np.float64)
    return window_distances(len(L), lambda a, b: float(geometry.kl_estimate(L[a], L[b])[0]), window)


def diffusion_exponents(positions: Sequence[float], D: np.ndarray, window: int = 10) -> dict:
    """Fit `log D(t0, t) = c log(t - t0) + b` from each start t0 over the next `window` members.

    `positions` are the steps (or layers) of the ordered members; `D[t0, t]` the distance from
    member t0 to member t (NaN where not computed). Starts with fewer than 2 usable points
    (finite, D > 0) are skipped. Returns `t0` (positions), `c`, `b`, `n_points` arrays and a
    `summary` (mean, median, std of c, number of starts).
    """
    pos = np.asarray(positions, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    T = len(pos)
    if D.shape != (T, T):
        raise ValueError(f"D must be [{T}, {T}], got {D.shape}")
    if np.any(np.diff(pos) <= 0):
        raise PylogmapError("trajectory positions must increase strictly; sort the members by step.")
    t0s, cs, bs, ns = [], [], [], []
    for a in range(T):
        idx = np.arange(a + 1, min(T, a + window + 1))
        d = D[a, idx]
        ok = np.isfinite(d) & (d > 0)
        if ok.sum() < 2:
            continue
        x = np.log(pos[idx][ok] - pos[a])
        y = np.log(d[ok])
        c, b = np.polyfit(x, y, 1)
        t0s.append(pos[a])
        cs.append(c)
        bs.append(b)
        ns.append(int(ok.sum()))
    cs_arr = np.array(cs)
    summary = {
        "n_starts": len(cs),
        "mean": float(cs_arr.mean()) if len(cs) else float("nan"),
        "median": float(np.median(cs_arr)) if len(cs) else float("nan"),
        "std": float(cs_arr.std()) if len(cs) else float("nan"),
    }
    return {"t0": np.array(t0s), "c": cs_arr, "b": np.array(bs), "n_points": np.array(ns), "summary": summary}


# --------------------------------------------------------------------------- map level


def trajectories_map(
    data,
    *,
    model: str | None = None,
    drop_jumpy: float = 0.0,
    window: int = 10,
    weight_distances: Callable[[Sequence[tuple[str, str]], int], np.ndarray] | None = None,
) -> dict:
    """All trajectories of a map (`_mapdata.MapData`) with consecutive KLs and exponents.

    L of the fully scored rows is clipped at the 2 % quantile (via geometry). With
    `drop_jumpy` (e.g. 0.03), that fraction of texts with the largest change between
    consecutive checkpoints is left out first. Checkpoint trajectories also get diffusion
    exponents in log-likelihood space and, given `weight_distances`, in weight space:
    `weight_distances(checkpoints, window)` returns `D[t0, t] = ||theta_t - theta_t0||^2` for the
    trajectory's (name, revision) checkpoints in order (e.g.
    `pylogmap.experiments.checkpoint_weight_distances`, which reads the weights). Layer
    trajectories get consecutive KLs only (an exponent over layers has no diffusion meaning).
    """
    used = require_used(data, 2, "trajectories")
    trajs = group_trajectories(
        [data.names[i] for i in used], [data.revisions[i] for i in used], data.layers[used],
        data.steps[used], [data.labels[i] for i in used], model=model,
    )
    if not trajs:
        what = f" for {model!r}" if model else ""
        raise PylogmapError(
            f"no trajectory{what} in the map: a trajectory needs the same model at several checkpoints "
            f"(revisions with step numbers) or several layers ('pylogmap score --revisions ...' or "
            f"'--layers all')."
        )
    Lc, _, tau = clipped_and_centred(data.L[used], data.tau)
    keep = np.ones(Lc.shape[1], dtype=bool)
    if drop_jumpy > 0:
        ck = [Lc[t.rows] for t in trajs if t.kind == "checkpoints"] or [Lc[t.rows] for t in trajs]
        keep = jumpy_texts(ck, drop_jumpy)
        if keep.sum() < 2:
            raise PylogmapError(
                f"dropping {drop_jumpy:g} of the {len(keep)} texts as jumpy leaves {int(keep.sum())}; a KL "
                "estimate needs at least 2: use a smaller --drop-jumpy (e.g. 0.03)."
            )
    mean_bytes = float(np.mean(data.text_bytes[keep]))
    results = []
    for t in trajs:
        Lt = Lc[t.rows][:, keep]
        res = {
            "name": t.name,
            "kind": t.kind,
            "revision": t.revision,
            "labels": t.labels,
            "skipped": t.skipped,
            "positions": t.positions,
            "consecutive": consecutive_kl(Lt, mean_bytes),
            "diffusion": {},
        }
        if t.kind == "checkpoints" and len(t.rows) >= 3:
            res["diffusion"]["loglik"] = diffusion_exponents(t.positions, loglik_window_kl(Lt, window), window)
            if weight_distances is not None:
                paths = data.paths or [""] * data.n_models  # local checkpoints: the folders read
                checkpoints = [(paths[i] or data.names[i], data.revisions[i]) for i in used[t.rows]]
                D = weight_distances(checkpoints, window)
                res["diffusion"]["weights"] = diffusion_exponents(t.positions, D, window)
        results.append(res)
    return {
        "trajectories": results,
        "clip_tau": tau,
        "n_texts_used": int(keep.sum()),
        "n_texts_dropped": int((~keep).sum()),
        "mean_bytes": mean_bytes,
        "window": window,
    }
