"""Benchmark prediction from the map (method.md section 5).

Ridge regression from each model's double-centred log-likelihood vector (Q) -- and, for
comparison, from the clipped raw vector (L) -- to benchmark scores. The penalty is chosen by an
inner 5-fold CV; the quality is measured by an outer 5-fold CV, grouped by model type (no family
is seen in training when it is predicted) and plainly shuffled, repeated over seeds 0-4. Pearson
r and Spearman rho of the out-of-fold predictions are reported as mean ± std over seeds, as in
the paper (`shimo-lab/modelmap`, `1000models/code_for_Section_5_and_Appendix_L`).

The penalty grid is scale-free: `ALPHAS` are multiples of the features' scale (the mean squared
norm of the centred training rows), so the same grid fits a 120-text synthetic map and the
paper's 10,000-text one. (The paper's fixed grid 1e1..1e9 is 1e-6..1e2 times the scale of its
map; on a map of short or few texts the fixed grid's lower edge can be a large penalty.) A
penalty chosen at an edge of the grid is reported. With fewer model groups than folds, the
grouped split uses one fold per group and says so; when every seed then gives the same split,
the table says so instead of printing a spread of 0.

Everything here is plain functions over numpy arrays; `predict_map` is the thin layer over a
map file, and `pylogmap predict` wraps that.

Exactness note: ridge predictions depend on the features only through inner products of rows,
so the features are first replaced by `U S` from the thin SVD `X = U S V^T` (an orthogonal change
of basis onto the span of the rows). This gives the same predictions as the full matrix for every
train/test split and penalty, and makes 10,000-text features as cheap as ~1,000.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from pylogmap.analysis._mapdata import clipped_and_centred, require_used
from pylogmap.errors import PylogmapError
from pylogmap.files import parse_number, read_table
from pylogmap.store import RowLookup

#: Ridge penalties relative to the features' scale (see the module docstring), for every target.
ALPHAS: tuple[float, ...] = tuple(10.0**k for k in range(-6, 4))
#: Name of the mean log-likelihood target added by `predict_map`.
MEAN_LOGLIK = "mean_loglik"
SPLITS = ("group", "kfold")


def compress_features(X: np.ndarray) -> np.ndarray:
    """Return `U S` of the thin SVD of `X` (float64): same ridge predictions, fewer columns.

    Ridge with an intercept is invariant under orthogonal transformations of feature space,
    and its solution lies in the span of the (centred) training rows, which is inside the span
    of all rows; so projecting every row onto that span loses nothing.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"features must be a 2-D array, got shape {X.shape}")
    if X.shape[1] <= X.shape[0]:
        return X.copy()
    U, S, _ = np.linalg.svd(X, full_matrices=False)
    return U * S


def outer_folds(n: int, *, groups=None, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """Fold id (0..n_splits-1) of each of `n` rows for one seed of the outer CV.

    With `groups`, whole groups are kept together (sklearn `GroupKFold` with shuffling, so
    each seed gives a different assignment); without, a shuffled `KFold`.
    """
    from sklearn.model_selection import GroupKFold, KFold

    folds = np.full(n, -1, dtype=np.int64)
    if groups is None:
        if n < n_splits:
            raise PylogmapError(
                f"{n} models are too few for {n_splits}-fold cross-validation; "
                f"score more models or use fewer folds (--folds)."
            )
        splitter = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
        parts = splitter.split(np.zeros(n))
    else:
        groups = np.asarray(groups)
        n_groups = len(np.unique(groups))
        if n_groups < n_splits:
            raise PylogmapError(
                f"only {n_groups} model groups for a {n_splits}-fold grouped cross-validation; "
                f"it needs at least {n_splits} groups: use another grouping column (--group-by), "
                f"fewer folds (--folds) or the plain split only (--split kfold)."
            )
        splitter = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        parts = splitter.split(np.zeros(n), groups=groups)
    for fold, (_, test) in enumerate(parts):
        folds[test] = fold
    return folds


def _ridge_paths(Xtr: np.ndarray, Ytr: np.ndarray, Xev: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Ridge (unpenalised intercept) predictions on `Xev` for every alpha and target at once.

    One thin SVD of the centred training matrix serves all penalties and targets:
    `w(alpha) = V diag(s / (s^2 + alpha)) U^T (y - ybar)`. Returns `[n_ev, n_targets, n_alphas]`.
    """
    xm = Xtr.mean(axis=0)
    ym = Ytr.mean(axis=0)
    U, s, Vt = np.linalg.svd(Xtr - xm, full_matrices=False)
    keep = s > s[0] * 1e-12 if len(s) else s > 0
    U, s, Vt = U[:, keep], s[keep], Vt[keep]
    P = (Xev - xm) @ Vt.T  # [n_ev, r]
    UtY = U.T @ (Ytr - ym)  # [r, T]
    shrink = s[:, None] / (s[:, None] ** 2 + alphas[None, :])  # [r, A]
    coef = UtY[:, :, None] * shrink[:, None, :]  # [r, T, A]
    return np.einsum("nr,rta->nta", P, coef) + ym[None, :, None]


def _r2(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """R^2 of predictions `[n, T, A]` against `y` `[n, T]`, as sklearn's r2_score
    (force_finite: 1 for a perfect fit of a constant, 0 for an imperfect one)."""
    sse = ((pred - y[:, :, None]) ** 2).sum(axis=0)
    sst = ((y - y.mean(axis=0)) ** 2).sum(axis=0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - sse / sst
    return np.where(sst > 0, r2, np.where(sse == 0, 1.0, 0.0))


def feature_scale(X: np.ndarray) -> float:
    """The scale penalties are relative to: the mean squared norm of the centred rows of `X`
    (the mean eigenvalue of `Xc Xc^T`, in the units of a ridge penalty); 1 for constant rows."""
    Xc = X - X.mean(axis=0)
    scale = float(np.einsum("ij,ij->", Xc, Xc) / max(len(X), 1))
    return scale if scale > 0 else 1.0


def ridge_cv_predict(
    X: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    *,
    alphas=ALPHAS,
    inner_splits: int = 5,
    clip: tuple[float, float] | None = (0.0, 100.0),
    relative: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold ridge predictions of `y` from `X` for the given outer folds.

    Same model and selection rule as sklearn `RidgeCV(alphas, cv=inner_splits)` (the paper's
    code): in each outer fold the penalty maximises the mean R^2 over an unshuffled
    `inner_splits`-fold split of the training rows (first best on ties), then ridge with an
    intercept is refit on all training rows. Computed by one SVD per (inner) training set for
    all penalties and targets instead of one fit per penalty (`tests/test_prediction.py` checks
    it against RidgeCV). `y` may be `[n]` or `[n, T]` (`alphas` then one grid for all, or a list
    of T grids of equal length). Returns `(predictions, chosen alphas [n_folds] or [n_folds, T])`;
    predictions are clipped to `clip` (None: no clipping, used for mean log-likelihood).
    `relative`: the grid holds multiples of each training set's `feature_scale`; the chosen
    alphas are returned as grid values.
    """
    from sklearn.model_selection import KFold

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    single = y.ndim == 1
    Y = y[:, None] if single else y
    T = Y.shape[1]
    grid = np.asarray(alphas, dtype=np.float64)
    grids = np.broadcast_to(grid, (T, grid.shape[-1])) if grid.ndim == 1 else grid
    if grids.shape[0] != T:
        raise ValueError("give one alpha grid, or one per target")
    all_alphas = np.unique(grids)
    col = np.searchsorted(all_alphas, grids)  # [T, A]: position of each target's alphas
    fold_ids = np.unique(folds)
    pred = np.full(Y.shape, np.nan)
    chosen = np.full((len(fold_ids), T), np.nan)
    for f_i, fold in enumerate(fold_ids):
        test = folds == fold
        Xtr, Ytr = X[~test], Y[~test]
        n = len(Ytr)
        if n < inner_splits:
            raise PylogmapError(
                f"a training fold has only {n} models, fewer than the {inner_splits} inner folds "
                f"that choose the ridge penalty; score more models, or for a grouped split group by a "
                f"column of smaller groups (--group-by) or use the plain split only (--split kfold)."
            )
        used_alphas = all_alphas * feature_scale(Xtr) if relative else all_alphas
        score = np.zeros((T, len(all_alphas)))
        for tr, va in KFold(n_splits=inner_splits).split(Xtr):
            score += _r2(Ytr[va], _ridge_paths(Xtr[tr], Ytr[tr], Xtr[va], used_alphas))
        score /= inner_splits
        best = np.array([col[t][int(np.argmax(score[t, col[t]]))] for t in range(T)])
        full = _ridge_paths(Xtr, Ytr, X[test], used_alphas)  # [n_test, T, A_all]
        pred[test] = full[:, np.arange(T), best]
        chosen[f_i] = all_alphas[best]
    if clip is not None:
        pred = np.clip(pred, clip[0], clip[1])
    if single:
        return pred[:, 0], chosen[:, 0]
    return pred, chosen


def correlations(y_true, y_pred) -> tuple[float, float]:
    """(Pearson r, Spearman rho); NaN where undefined (a constant vector)."""
    from scipy.stats import pearsonr, spearmanr

    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if len(y_true) < 3 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(pearsonr(y_true, y_pred)[0]), float(spearmanr(y_true, y_pred)[0])


@dataclass
class PredictionResult:
    """Results of `predict_benchmarks`.

    `rows`: one dict per (target, features, split) with `pearson_mean`, `pearson_std`,
    `spearman_mean`, `spearman_std` (std over seeds, numpy's population std as in the paper),
    `n_models`, `n_folds`, `distinct_splits` (how many different fold assignments the seeds
    gave: 1 means the std over seeds is 0 by construction, not a measured precision), `alphas`
    (the penalties chosen, one per seed and fold, as values of the relative grid),
    `alpha_at_lowest` and `alpha_at_highest` (how many of them are an end of the grid).
    `predictions[(target, features, split)]`: out-of-fold predictions averaged over seeds,
    float64 `[n]`, NaN where the target is missing.
    `per_seed[(target, features, split)]`: `[n_seeds, n]` out-of-fold predictions.
    `notes`: what was adapted or is worth knowing (folds fitted to the groups, penalties at an
    edge of the grid), one sentence each.
    """

    rows: list[dict] = field(default_factory=list)
    predictions: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)
    per_seed: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _partition(folds: np.ndarray) -> bytes:
    """A fold assignment up to the numbering of its folds (for comparing seeds)."""
    first_seen = {f: k for k, f in enumerate(dict.fromkeys(folds.tolist()))}
    return np.array([first_seen[f] for f in folds.tolist()], dtype=np.int64).tobytes()


def predict_benchmarks(
    features: dict[str, np.ndarray],
    targets: dict[str, np.ndarray],
    *,
    groups=None,
    splits=SPLITS,
    seeds=range(5),
    n_splits: int = 5,
    inner_splits: int = 5,
    loglik_targets=(MEAN_LOGLIK,),
    clip: tuple[float, float] | None = (0.0, 100.0),
    alphas=ALPHAS,
    fit_folds: bool = False,
    progress: bool = False,
) -> PredictionResult:
    """Cross-validated ridge prediction of every target from every feature set.

    features: name -> `[n, d]` (e.g. `{"Q": Q, "L": L}`), rows aligned with the targets.
    targets: name -> `[n]` float (NaN = unknown for that model; those rows are left out
    of that target's CV). Targets named in `loglik_targets` are not clipped; the others are
    clipped to `clip`. `alphas`: the relative penalty grid (`ALPHAS`, see `feature_scale`).
    groups: `[n]` labels for the grouped split (required when "group" is in `splits`).
    fit_folds: with fewer groups than `n_splits` (at least 2), the grouped split uses one fold
    per group instead of failing, and says so in `notes`.
    """
    splits = tuple(splits)
    for s in splits:
        if s not in SPLITS:
            raise PylogmapError(f"unknown split {s!r}; use one of {', '.join(SPLITS)}.")
    if "group" in splits and groups is None:
        raise PylogmapError(
            "the grouped split needs a group label per model (e.g. the family column); "
            "pass --group-by COLUMN or use --split kfold."
        )
    seeds = list(seeds)
    if not seeds:
        raise PylogmapError("at least one seed is needed.")
    n = None
    compressed: dict[str, np.ndarray] = {}
    for name, X in features.items():
        X = np.asarray(X, dtype=np.float64)
        if not np.all(np.isfinite(X)):
            raise PylogmapError(f"feature set {name!r} has non-finite values; score or drop those models.")
        n = X.shape[0] if n is None else n
        if X.shape[0] != n:
            raise ValueError("all feature sets must have the same number of rows")
        compressed[name] = X
    if n is None:
        raise ValueError("no feature sets given")
    groups_arr = None if groups is None else np.asarray(groups)
    grid = np.asarray(alphas, dtype=np.float64)
    notes: list[str] = []

    # Targets known for the same models share folds, SVDs and fits.
    ys = {}
    for t, y in targets.items():
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (n,):
            raise ValueError(f"target {t!r} has shape {y.shape}, expected ({n},)")
        ys[t] = y
    by_mask: dict[bytes, list[str]] = {}
    for t, y in ys.items():
        by_mask.setdefault(np.isfinite(y).tobytes(), []).append(t)

    # One fold assignment per (split, targets known, seed), shared by the feature sets.
    fold_sets: dict[tuple[str, bytes], list[np.ndarray]] = {}
    for split in splits:
        for key, names in by_mask.items():
            have = np.frombuffer(key, dtype=bool)
            if not have.any():
                raise PylogmapError(f"target(s) {', '.join(names)} have no known value for any model.")
            g = groups_arr[have] if split == "group" else None
            k = n_splits
            if g is not None and fit_folds:
                n_groups = len(np.unique(g))
                if 2 <= n_groups < n_splits:
                    k = n_groups
                    notes.append(
                        f"{', '.join(names)}: only {n_groups} model groups, so the grouped split uses "
                        f"{n_groups} folds (one group each) instead of {n_splits}"
                    )
            fold_sets[(split, key)] = [outer_folds(int(have.sum()), groups=g, n_splits=k, seed=seed) for seed in seeds]

    jobs = [(fname, split, key) for fname in features for split in splits for key in by_mask]
    iterator = jobs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(jobs, desc="ridge CV", unit="job")
    per_seed: dict[tuple[str, str, str], np.ndarray] = {}
    stats: dict[tuple[str, str, str], dict] = {}
    for fname, split, key in iterator:
        names = by_mask[key]
        have = np.frombuffer(key, dtype=bool)
        X = compress_features(compressed[fname][have])
        Y = np.stack([ys[t][have] for t in names], axis=1)
        folds_by_seed = fold_sets[(split, key)]
        for t in names:
            per_seed[(t, fname, split)] = np.full((len(seeds), n), np.nan)
            stats[(t, fname, split)] = {
                "pearson": [], "spearman": [], "alphas": [], "n_folds": int(len(np.unique(folds_by_seed[0]))),
                "distinct_splits": len({_partition(f) for f in folds_by_seed}),
            }
        for s_i, folds in enumerate(folds_by_seed):
            pred, alpha = ridge_cv_predict(X, Y, folds, alphas=grid, inner_splits=inner_splits, clip=None,
                                           relative=True)
            for j, t in enumerate(names):
                p = pred[:, j]
                if t not in loglik_targets and clip is not None:
                    p = np.clip(p, clip[0], clip[1])
                per_seed[(t, fname, split)][s_i, have] = p
                r, rho = correlations(Y[:, j], p)
                st = stats[(t, fname, split)]
                st["pearson"].append(r)
                st["spearman"].append(rho)
                st["alphas"].extend(alpha[:, j].tolist())

    result = PredictionResult(notes=notes)
    edges: dict[str, list[str]] = {"lowest": [], "highest": []}
    for t in targets:
        for fname in features:
            for split in splits:
                key = (t, fname, split)
                st = stats[key]
                chosen = np.asarray(st["alphas"])
                low, high = int((chosen == grid.min()).sum()), int((chosen == grid.max()).sum())
                result.rows.append(
                    {
                        "target": t,
                        "features": fname,
                        "split": split,
                        "n_models": int(np.isfinite(ys[t]).sum()),
                        "n_folds": st["n_folds"],
                        "distinct_splits": st["distinct_splits"],
                        "pearson_mean": float(np.mean(st["pearson"])),
                        "pearson_std": float(np.std(st["pearson"])),
                        "spearman_mean": float(np.mean(st["spearman"])),
                        "spearman_std": float(np.std(st["spearman"])),
                        "alphas": st["alphas"],
                        "alpha_at_lowest": low,
                        "alpha_at_highest": high,
                    }
                )
                for edge, count in (("lowest", low), ("highest", high)):
                    if count:
                        edges[edge].append(f"{t}/{fname}/{split} {count} of {len(chosen)}")
                result.per_seed[key] = per_seed[key]
                result.predictions[key] = per_seed[key].mean(axis=0)
    meaning = {"lowest": "almost no penalty", "highest": "the fit is about the mean: little signal"}
    for edge, where in edges.items():
        if where:
            value = grid.min() if edge == "lowest" else grid.max()
            notes.append(f"the ridge penalty was the {edge} of its grid ({value:g} x the features' scale; "
                         f"{meaning[edge]}) in {', '.join(where)} fits")
    return result


def loglik_correlations(mean_loglik: np.ndarray, targets: dict[str, np.ndarray]) -> list[dict]:
    """Pearson r and Spearman rho between mean log-likelihood and each target (finite rows)."""
    out = []
    m = np.asarray(mean_loglik, dtype=np.float64)
    for name, y in targets.items():
        y = np.asarray(y, dtype=np.float64)
        ok = np.isfinite(y) & np.isfinite(m)
        r, rho = correlations(y[ok], m[ok])
        out.append({"target": name, "n_models": int(ok.sum()), "pearson": r, "spearman": rho})
    return out


# --------------------------------------------------------------------------- scores table

_ID_COLUMNS = ("model", "name", "label", "model_name", "model_id")


def read_scores_csv(path, *, categorical=(), targets=None) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read a benchmark table: one row per model, an id column, score columns.

    The table is read by `pylogmap.files.read_table` (CSV, or TSV). The id column is the first of
    `model`, `name`, `label`, `model_name`, `model_id` present (case-insensitive), else the first
    column. Missing values are those of `pylogmap.files.MISSING_VALUES` (empty, NaN, NA, ...).
    A column whose values are all numbers (or missing) is float64; any other column (a
    leaderboard's type, precision, license...) and those named in `categorical` (a grouping
    column) are object arrays of the stripped strings, which `predict_map` does not predict.
    `targets`: columns that must be numeric; a value that is not a number there is an error
    naming the column, the line and the value.
    """
    table = read_table(path, what="scores table")
    header = table.header
    lower = [h.lower() for h in header]
    id_col = header[next((lower.index(c) for c in _ID_COLUMNS if c in lower), 0)]
    cat = {c.lower() for c in categorical}
    wanted = set(targets or ())
    ids = [cell.strip() for cell in table.columns[id_col]]
    out: dict[str, np.ndarray] = {}
    bad: list[tuple[int, int, str]] = []  # (row, column position, column) of a target's first non-number
    for j, h in enumerate(header):
        if h == id_col:
            continue
        cells = table.columns[h]
        parsed = [parse_number(cell) for cell in cells]
        first = next((i for i, p in enumerate(parsed) if p is None), None)
        if h.lower() in cat or first is not None:
            if first is not None and h in wanted:
                bad.append((first, j, h))
            out[h] = np.array([cell.strip() for cell in cells], dtype=object)
            continue
        out[h] = np.array(parsed, dtype=np.float64)
    if bad:
        row, _, h = min(bad)
        raise PylogmapError(
            f"{path}, line {table.lines[row]}: column {h!r} has the non-numeric value "
            f"{table.columns[h][row].strip()!r}; benchmark columns must be numbers (empty = unknown). "
            f"Fix the value, or leave the column out of --targets."
        )
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise PylogmapError(f"scores table {path} lists model(s) twice: {', '.join(dup[:5])}; keep one row each.")
    return ids, out


def match_rows(ids: list[str], rows: RowLookup, *, skip_unknown: bool = False) -> np.ndarray:
    """Map row index of each id, with the store's row-lookup rule in its one-row form
    (`pylogmap.store.lookup`: a label, or a name that names one row); -1 if skipped. Unknown ids
    are an error listing them (with close labels), unless `skip_unknown`; an id that names
    several rows (revisions, layers) is an error listing them."""
    out = np.full(len(ids), -1, dtype=np.int64)
    unknown: list[str] = []
    ambiguous: list[tuple[str, list[int]]] = []
    for k, ident in enumerate(ids):
        found = rows.find(ident)
        if len(found) == 1:
            out[k] = found[0]
        elif found:
            ambiguous.append((ident, found))
        else:
            unknown.append(ident)
    if ambiguous:
        ident, found = ambiguous[0]
        raise PylogmapError(
            f"{len(ambiguous)} model name(s) in the scores table match several rows of the map; "
            f"e.g. {rows.ambiguity_message(ident, found)}"
        )
    if unknown and not skip_unknown:
        close = rows.close_labels(unknown[0], n=3)
        hint = f" (closest to {unknown[0]!r}: {', '.join(close)})" if close else ""
        raise PylogmapError(
            f"{len(unknown)} model(s) in the scores table are not in the map: "
            f"{', '.join(repr(u) for u in unknown[:5])}{' ...' if len(unknown) > 5 else ''}{hint}. "
            f"Check the names against 'pylogmap info', or pass --skip-unknown to ignore them."
        )
    if len(set(out[out >= 0].tolist())) != int((out >= 0).sum()):
        raise PylogmapError("two rows of the scores table name the same model of the map; keep one.")
    return out


def predict_map(
    data,
    ids: list[str],
    columns: dict[str, np.ndarray],
    *,
    group_by: str | None = "family",
    targets=None,
    splits=SPLITS,
    seeds=range(5),
    n_splits: int = 5,
    skip_unknown: bool = False,
    progress: bool = False,
) -> dict:
    """Benchmark prediction on a map (`_mapdata.MapData`) with a scores table.

    Features Q (double-centred over all the map's fully scored models, as in the paper) and
    the clipped L, restricted to the models that have scores; targets: the table's numeric
    columns plus `mean_loglik` (mean over texts of the unclipped log-likelihood). Groups for the
    grouped split come from `group_by` (a table column, else a map annotation); when
    `group_by` is "family" and neither has it, only the plain split runs. Returns a dict with
    the table `rows`, `loglik_correlations`, the out-of-fold predictions per map row
    (`columns`: name -> float64 [M], NaN elsewhere) and `notes`.
    """
    notes: list[str] = []
    used_rows = require_used(data, 2, "benchmark prediction")
    lookup = RowLookup(list(zip(data.names, data.revisions, np.asarray(data.layers).tolist())), data.labels)
    map_rows = match_rows(ids, lookup, skip_unknown=skip_unknown)
    keep = map_rows >= 0
    if not keep.all():
        notes.append(f"skipped {int((~keep).sum())} unknown model(s) of the scores table")
    in_used = np.isin(map_rows, used_rows)
    if (keep & ~in_used).any():
        notes.append(f"left out {int((keep & ~in_used).sum())} model(s) without complete scores")
    sel = keep & in_used
    rows = map_rows[sel]
    if len(rows) < n_splits:
        raise PylogmapError(
            f"only {len(rows)} models have both complete scores and benchmark values; "
            f"{n_splits}-fold cross-validation needs at least {n_splits} (more is better)."
        )

    Lc, Q, _ = clipped_and_centred(data.L[used_rows], data.tau)
    pos = {r: k for k, r in enumerate(used_rows.tolist())}
    idx = np.array([pos[r] for r in rows.tolist()])
    features = {"Q": Q[idx], "L": Lc[idx]}

    group_col = None
    if group_by:
        if group_by in columns:
            group_col = np.asarray(columns[group_by])[sel]
        elif group_by in data.annotations:
            group_col = np.asarray(data.annotations[group_by])[rows]
        elif group_by != "family":
            raise PylogmapError(
                f"no column {group_by!r} in the scores table or the map's annotations to group models "
                f"by; add it ('pylogmap annotate') or choose another with --group-by."
            )
    if group_col is None and "group" in splits:
        splits = tuple(s for s in splits if s != "group")
        notes.append("no model-type column (family): ran the plain shuffled split only")
        if not splits:
            raise PylogmapError("the grouped split needs a grouping column; pass --group-by COLUMN.")
    if group_col is not None:
        group_col = np.array([str(g) for g in group_col], dtype=object)

    if targets:
        names = list(targets)
    else:
        names = [c for c in columns if c != group_by and columns[c].dtype != object]
        text = [c for c in columns if c != group_by and columns[c].dtype == object]
        if text:
            notes.append(f"ignored {len(text)} column(s) that are not numbers: {', '.join(text)} "
                         "(name numeric ones with --targets to choose)")
    tcols = {}
    for t in names:
        if t not in columns:
            raise PylogmapError(f"no column {t!r} in the scores table; columns: {', '.join(columns)}.")
        if columns[t].dtype == object:
            raise PylogmapError(f"column {t!r} holds text, not numbers, and cannot be a target; leave it out of --targets.")
        tcols[t] = columns[t][sel]
    if not tcols:
        raise PylogmapError("the scores table has no numeric benchmark column to predict; "
                            "benchmark columns must hold numbers (empty = unknown).")
    mean_ll = data.L[rows].mean(axis=1)
    tcols[MEAN_LOGLIK] = mean_ll

    res = predict_benchmarks(
        features, tcols, groups=group_col, splits=splits, seeds=seeds, n_splits=n_splits,
        loglik_targets=(MEAN_LOGLIK,), fit_folds=True, progress=progress,
    )
    notes.extend(res.notes)
    primary = "group" if "group" in splits else splits[0]
    out_cols = {}
    for t in tcols:
        col = np.full(data.n_models, np.nan)
        col[rows] = res.predictions[(t, "Q", primary)]
        out_cols[f"pred_{t}"] = col
    corr = loglik_correlations(mean_ll, {t: v for t, v in tcols.items() if t != MEAN_LOGLIK})
    return {
        "n_models": int(len(rows)),
        "splits": list(splits),
        "primary_split": primary,
        "seeds": list(seeds),
        "rows": res.rows,
        "loglik_correlations": corr,
        "columns": out_cols,
        "notes": notes,
    }
