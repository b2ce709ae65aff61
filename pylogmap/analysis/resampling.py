"""Resampling texts by likelihood variance (method.md section 6; the resampling paper).

A map of K models on N texts costs K*N scored texts. Most of the geometry is carried by texts
whose log-likelihood varies a lot across models, so a small weighted sample of texts drawn with
probabilities proportional to that variance reproduces the pairwise squared distances
`G_ij = ||q_i - q_j||^2` (= 2N KL estimates) with far fewer texts than a uniform sample.

Conventions (those of the paper's code, `shimo-lab/modelmap`, `resampling-texts/src/matrix.py`):
- probabilities from the double-centred matrix Q: uniform, LS `p_k ~ sum_i Q_ik^2`,
  KL `p_k ~ sqrt(sum_{i,j} (Q_ik - Q_jk)^4)`;
- n draws with replacement; a draw of text k weighs `1/sqrt(n p_k)`; duplicates are merged
  into one column of weight `sqrt(count) * weight`;
- the resampled matrix is the clipped L on the unique texts, each row centred with the
  normalised weights `w^2`, then each column multiplied by `w`; its squared distances
  estimate the full-set G (the column centring across models does not change distances);
- errors `tau1 = ||G~ - G||_F / ||G||_F` and `tau2 = sqrt(mean_{i!=j} (|G~_ij - G_ij| /
  max(G_ij, 1e-3))^2)` (off-diagonal pairs; the diagonal is 0 in both), RMS over seeds.

Plain functions over arrays; `resample_map` works on a map file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pylogmap.analysis._mapdata import clipped_and_centred, require_used
from pylogmap.errors import PylogmapError

METHODS = ("uniform", "ls", "kl")
#: Largest number of draws per text asked of an error curve (the sizes `larger_sizes` tries end here).
MAX_DRAWS_PER_TEXT = 50


def sampling_probabilities(Q: np.ndarray, method: str) -> np.ndarray:
    """Probability of each text (column of Q) under `method` ("uniform", "ls" or "kl").

    The KL score `sum_{i,j} (a_i - a_j)^4` of a column a is expanded into moments,
    `2K S4 - 8 S1 S3 + 6 S2^2` with `Sp = sum_i a_i^p`, so no K x K x N tensor is built.
    """
    Q = np.asarray(Q, dtype=np.float64)
    K, N = Q.shape
    if method == "uniform":
        return np.full(N, 1.0 / N)
    if method == "ls":
        score = np.einsum("ik,ik->k", Q, Q)
    elif method == "kl":
        Q2 = Q * Q
        s1 = Q.sum(axis=0)
        s2 = Q2.sum(axis=0)
        s3 = (Q2 * Q).sum(axis=0)
        s4 = (Q2 * Q2).sum(axis=0)
        score = np.sqrt(np.maximum(2.0 * K * s4 - 8.0 * s1 * s3 + 6.0 * s2 * s2, 0.0))
    else:
        raise PylogmapError(f"unknown resampling method {method!r}; use one of {', '.join(METHODS)}.")
    total = score.sum()
    if not np.isfinite(total) or total <= 0:
        raise PylogmapError(
            f"the {method} probabilities are undefined: no text's log-likelihood varies across "
            f"models (all models identical?); use --method uniform or add different models."
        )
    return score / total


def draw(p: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw `n` texts with replacement from `p`; return (unique indices, merged weights).

    Each draw of text k weighs `1/sqrt(n p_k)`; a text drawn c times becomes one column of
    weight `sqrt(c) / sqrt(n p_k)` (its squared weight, which is what distances use, adds up).
    """
    if n < 1:
        raise PylogmapError(f"the number of draws must be at least 1, got {n}.")
    idx = rng.choice(len(p), size=n, replace=True, p=p)
    unique, counts = np.unique(idx, return_counts=True)
    weights = np.sqrt(counts) / np.sqrt(n * p[unique])
    return unique, weights


def resampled_matrix(L: np.ndarray, idx: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted, row-centred matrix on the selected texts (rows: models).

    `L` is the clipped log-likelihood matrix `[K, N]`; `idx` the selected columns. Rows are centred with the normalised weights `w^2`, then each
    column is multiplied by `w`. Squared distances between its rows estimate those of Q.
    """
    L = np.asarray(L, dtype=np.float64)
    idx = np.asarray(idx)
    w = np.asarray(weights, dtype=np.float64)
    sub = L[:, idx]
    w2 = w * w
    centred = sub - (sub @ (w2 / w2.sum()))[:, None]
    return centred * w



def squared_distances(X: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances between rows (float64, symmetric, zero diagonal)."""
    X = np.asarray(X, dtype=np.float64)
    sq = np.einsum("ij,ij->i", X, X)
    G = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
    np.maximum(G, 0.0, out=G)
    G = 0.5 * (G + G.T)
    np.fill_diagonal(G, 0.0)
    return G


def tau_errors(G_tilde: np.ndarray, G: np.ndarray, eps: float = 1e-3) -> tuple[float, float]:
    """(tau1, tau2) of an estimate `G_tilde` of the squared-distance matrix `G`."""
    G_tilde = np.asarray(G_tilde, dtype=np.float64)
    G = np.asarray(G, dtype=np.float64)
    tau1 = float(np.linalg.norm(G_tilde - G) / np.linalg.norm(G))
    off = ~np.eye(G.shape[0], dtype=bool)
    rel = np.abs(G_tilde[off] - G[off]) / np.maximum(G[off], eps)
    tau2 = float(np.sqrt(np.mean(rel * rel)))
    return tau1, tau2


def default_grid(n_texts: int) -> list[int]:
    """Numbers of draws for an error curve: 10, 20, 50, 100, 200, 500, ... (a 1-2-5 series) up to
    and including N. (The paper's figures use every 10 up to 100, then every 100: pass
    `grid=` / `--sizes` for that; it costs ten times more on a 10,000-text map.)"""
    grid = []
    base = 10
    while base <= n_texts:
        grid += [m * base for m in (1, 2, 5) if m * base <= n_texts]
        base *= 10
    if not grid or grid[-1] != n_texts:
        grid.append(n_texts)
    return sorted(set(grid))


@dataclass
class ErrorCurve:
    """Error of resampled maps against the full one, per number of draws.

    `rows`: one dict per (method, n_draws) with `unique_mean` (mean number of unique texts
    over seeds), `tau1`, `tau2` (RMS over seeds), `n_seeds`. `draws[(method, n)]` keeps each
    seed's `(idx, weights, tau1, tau2, seed)` so a selection can reuse them.
    """

    rows: list[dict] = field(default_factory=list)
    draws: dict[tuple[str, int], list[tuple[np.ndarray, np.ndarray, float, float, int]]] = field(
        default_factory=dict
    )


def error_curve(
    L: np.ndarray,
    Q: np.ndarray,
    *,
    methods=METHODS,
    grid=None,
    seeds=range(100),
    keep_draws=METHODS,
    progress: bool = False,
) -> ErrorCurve:
    """tau1/tau2 of resampled maps vs the number of draws, for each method.

    `L` is the clipped log-likelihood matrix `[K, N]`, `Q` its double centring (the reference
    G is computed from Q). Seed s uses `numpy.random.default_rng(s)`. The draws themselves
    are kept (for `select_texts`) only for the methods in `keep_draws`.
    """
    L = np.asarray(L, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    if L.shape != Q.shape:
        raise ValueError(f"L {L.shape} and Q {Q.shape} must have the same shape")
    K, N = L.shape
    if K < 2:
        raise PylogmapError(f"resampling needs at least 2 models with scores, the map has {K}.")
    grid = default_grid(N) if grid is None else sorted(set(int(n) for n in grid))
    seeds = list(seeds)
    G = squared_distances(Q)
    if not np.any(G > 0):
        raise PylogmapError("all models have identical log-likelihood vectors; there is no map to resample.")
    curve = ErrorCurve()
    jobs = [(m, n) for m in methods for n in grid]
    iterator = jobs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(jobs, desc="resampling", unit="size")
    probs = {m: sampling_probabilities(Q, m) for m in methods}
    for method, n in iterator:
        draws = []
        for seed in seeds:
            idx, w = draw(probs[method], n, np.random.default_rng(seed))
            Gt = squared_distances(resampled_matrix(L, idx, w))
            t1, t2 = tau_errors(Gt, G)
            draws.append((idx, w, t1, t2, seed))
        t1s = np.array([d[2] for d in draws])
        t2s = np.array([d[3] for d in draws])
        curve.rows.append(
            {
                "method": method,
                "n_draws": n,
                "unique_mean": float(np.mean([len(d[0]) for d in draws])),
                "tau1": float(np.sqrt(np.mean(t1s**2))),
                "tau2": float(np.sqrt(np.mean(t2s**2))),
                "n_seeds": len(seeds),
            }
        )
        if method in keep_draws:
            curve.draws[(method, n)] = draws
    return curve


@dataclass
class Selection:
    """A reduced text set: `indices` into the full set, their `weights`, and its errors.

    `rms_tau1`/`rms_tau2` are the RMS errors over all the draws of this size (`n_seeds` of them):
    the error a draw of this size has, which is what `target_error` is met by and what to expect
    for models added later. `tau1`/`tau2` are this one draw's own errors on the map's models
    (chosen among the draws, so they are often lower than the RMS: not a promise for new models).
    """

    method: str
    n_draws: int
    indices: np.ndarray
    weights: np.ndarray
    tau1: float
    tau2: float
    target_error: float
    seed: int
    rms_tau1: float = float("nan")
    rms_tau2: float = float("nan")
    n_seeds: int = 0


def select_texts(curve: ErrorCurve, method: str, target_error: float, *, error: str = "tau1",
                 sizes_given: bool = True) -> Selection:
    """The smallest draw count whose RMS error (`tau1` or `tau2`) is <= `target_error`.

    Among that count's seeds, the draw with the fewest unique texts whose own error is at most
    the target is kept (ties: lowest error); if none is, the draw with the lowest error. The
    target is always judged by the RMS over the seeds, never by one lucky draw, so "no size
    reaches it" and the error of a stored selection never contradict each other.
    `sizes_given`: whether the caller chose the sizes (the error message then says that larger
    sizes reach lower errors).
    """
    if error not in ("tau1", "tau2"):
        raise ValueError("error must be 'tau1' or 'tau2'")
    rows = sorted((r for r in curve.rows if r["method"] == method), key=lambda r: r["n_draws"])
    if not rows:
        raise PylogmapError(f"no error curve for method {method!r}.")
    ok = [r for r in rows if r[error] <= target_error]
    if not ok:
        best = min(rows, key=lambda r: r[error])
        hint = ("ask for larger sizes (--sizes) or a larger target error (--target-error)" if sizes_given
                else "ask for a larger target error (--target-error), or keep all texts")
        raise PylogmapError(
            f"no sample size reaches an RMS {error} <= {target_error:g} with method {method}: the best is "
            f"{best[error]:.4g} with {best['n_draws']} draws ({best['unique_mean']:.0f} unique texts on average); "
            f"{hint}."
        )
    row = ok[0]
    n = row["n_draws"]
    if (method, n) not in curve.draws:
        raise ValueError(f"the error curve did not keep the draws of {method!r}; pass keep_draws")
    draws = curve.draws[(method, n)]
    col = 2 if error == "tau1" else 3
    good = [i for i, d in enumerate(draws) if d[col] <= target_error]
    if good:
        pick = min(good, key=lambda i: (len(draws[i][0]), draws[i][col]))
    else:
        pick = min(range(len(draws)), key=lambda i: draws[i][col])
    idx, w, t1, t2, seed = draws[pick]
    return Selection(method, n, idx, w, t1, t2, float(target_error), seed,
                     rms_tau1=float(row["tau1"]), rms_tau2=float(row["tau2"]), n_seeds=int(row["n_seeds"]))


def larger_sizes(n_texts: int, after: int) -> list[int]:
    """Draw counts beyond `after` for a target the default sizes miss: 2, 5, 10, 20 and 50 times
    the number of texts (more draws than texts: more of them are drawn, with weights nearer 1,
    so the error keeps falling towards the full set's 0)."""
    return [m * n_texts for m in (2, 5, 10, 20, MAX_DRAWS_PER_TEXT) if m * n_texts > after]


# --------------------------------------------------------------------------- map level

#: Names of the derived datasets (under /map) that hold a selection.
SELECTED_TEXTS = "selected_texts"
SELECTED_WEIGHTS = "selected_weights"


def resample_map(
    data,
    *,
    methods=METHODS,
    grid=None,
    seeds=range(100),
    target_error: float | None = None,
    select_method: str = "ls",
    error: str = "tau1",
    progress: bool = False,
) -> dict:
    """Error curves (and optionally a selection) on a map (`_mapdata.MapData`).

    Uses the fully scored rows; L is clipped at the 2 % quantile (the map's tau) and
    double-centred by `pylogmap.geometry`. Returns `rows` (the curve), `tau` (clip threshold),
    `n_models`, `n_texts` and, with `target_error`, `selection` (a `Selection`). When the
    default sizes (`grid` None) miss the target, larger ones (`larger_sizes`) are tried for
    `select_method` until one meets it or nearly every text is drawn.
    """
    used = require_used(data, 2, "resampling")
    Lc, Q, tau = clipped_and_centred(data.L[used], data.tau)
    methods = tuple(methods)
    if target_error is not None and select_method not in methods:
        methods = methods + (select_method,)
    keep = (select_method,) if target_error is not None else ()
    seeds = list(seeds)
    curve = error_curve(Lc, Q, methods=methods, grid=grid, seeds=seeds, keep_draws=keep, progress=progress)
    out = {"rows": curve.rows, "tau": tau, "n_models": int(len(used)), "n_texts": int(Lc.shape[1])}
    if target_error is not None:
        if grid is None:
            _extend_until(curve, Lc, Q, select_method, target_error, error, seeds, progress)
        out["selection"] = select_texts(curve, select_method, target_error, error=error,
                                        sizes_given=grid is not None)
    return out


def _extend_until(curve: ErrorCurve, L, Q, method: str, target_error: float, error: str, seeds, progress) -> None:
    """Add larger sizes of `method` to `curve` until one meets the target (by RMS) or the draws
    cover nearly every text."""
    N = L.shape[1]

    def rows():
        return sorted((r for r in curve.rows if r["method"] == method), key=lambda r: r["n_draws"])

    for n in larger_sizes(N, rows()[-1]["n_draws"]):
        last = rows()[-1]
        if last[error] <= target_error or last["unique_mean"] >= 0.99 * N:
            return
        more = error_curve(L, Q, methods=(method,), grid=[n], seeds=seeds, keep_draws=(method,), progress=progress)
        curve.rows.extend(more.rows)
        curve.draws.update(more.draws)


def selection_items(sel: Selection, tau: float, n_texts: int, n_models: int) -> dict:
    """The derived datasets that store a selection: `{name: (array, attrs)}`."""
    attrs = {
        "method": sel.method,
        "n_draws": int(sel.n_draws),
        "tau1": float(sel.tau1),
        "tau2": float(sel.tau2),
        "rms_tau1": float(sel.rms_tau1),
        "rms_tau2": float(sel.rms_tau2),
        "n_seeds": int(sel.n_seeds),
        "target_error": float(sel.target_error),
        "seed": int(sel.seed),
        "clip_tau": float(tau),
        "n_texts_full": int(n_texts),
        "n_models": int(n_models),
    }
    return {
        SELECTED_TEXTS: (np.asarray(sel.indices, dtype=np.int64), attrs),
        SELECTED_WEIGHTS: (np.asarray(sel.weights, dtype=np.float64), attrs),
    }


def place_models(
    L_ref: np.ndarray,
    L_new: np.ndarray,
    weights: np.ndarray,
    tau: float,
    n_texts: int,
) -> np.ndarray:
    """KL estimates (nats per text) from each new model to each existing one, `[m, K]`.

    `L_ref` `[K, n]` and `L_new` `[m, n]` are the log-likelihoods on the selected texts (in the
    selection's order); both are clipped at the map's `tau`, resampled with the selection's
    weights (row centring is per row, so the new models do not move the existing ones), and
    the squared distances, which estimate the full-set `||q_i - q_j||^2`, are divided by
    `2 N` with N the full number of texts.
    """
    L_ref = np.maximum(np.asarray(L_ref, dtype=np.float64), tau)
    L_new = np.maximum(np.asarray(L_new, dtype=np.float64), tau)
    cols = np.arange(L_ref.shape[1])
    A = resampled_matrix(L_ref, cols, weights)
    B = resampled_matrix(L_new, cols, weights)
    G = (np.einsum("ij,ij->i", B, B)[:, None] + np.einsum("ij,ij->i", A, A)[None, :] - 2.0 * B @ A.T)
    return np.maximum(G, 0.0) / (2.0 * n_texts)


def place_in_2d(kl: np.ndarray, xy_ref: np.ndarray, k: int = 5) -> np.ndarray:
    """2-D positions of new models: the mean of their k nearest existing models' coordinates,
    weighted by 1/KL (an interpolation, not a re-run of t-SNE; the existing map is unchanged)."""
    kl = np.asarray(kl, dtype=np.float64)
    xy_ref = np.asarray(xy_ref, dtype=np.float64)
    ok = np.all(np.isfinite(xy_ref), axis=1)
    out = np.full((kl.shape[0], 2), np.nan)
    if not ok.any():
        return out
    cand = np.nonzero(ok)[0]
    k = min(k, len(cand))
    for i in range(kl.shape[0]):
        near = cand[np.argsort(kl[i, cand], kind="stable")[:k]]
        w = 1.0 / np.maximum(kl[i, near], 1e-12)
        out[i] = (w[:, None] * xy_ref[near]).sum(0) / w.sum()
    return out


def selection_path(map_path) -> Path:
    """The side map file that holds new models scored on the selected texts only:
    `map.h5` -> `map.selection.h5` (a normal map file of the selected texts, resumable)."""
    p = Path(map_path)
    stem = p.name[:-3] if p.name.endswith(".h5") else p.name
    return p.with_name(stem + ".selection.h5")
