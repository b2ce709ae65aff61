"""Benchmark prediction (method.md section 5) against independent computations."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from pylogmap.analysis import prediction as P
from pylogmap.errors import PylogmapError

from _analysis_helpers import single_thread_blas  # noqa: F401  (autouse fixture)


def _double_center(L):
    # Independent of pylogmap.geometry: the formula of method.md section 3.
    return L - L.mean(axis=1, keepdims=True) - L.mean(axis=0, keepdims=True) + L.mean()


def _synthetic(K=60, N=300, n_groups=10, seed=0):
    """Models = family centre + a few latent directions + noise, like a real map (low rank)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), K // n_groups)
    W = rng.normal(size=(4, N)) * 20
    Z = rng.normal(size=(n_groups, 4))[groups] + rng.normal(size=(K, 4)) * 0.5
    L = -300 + Z @ W + rng.normal(size=(K, N)) + rng.normal(size=(K, 1)) * 30
    return L, _double_center(L), groups, rng


def _in_row_space(Q, rng, scale):
    """A coefficient vector in the span of Q's rows: the target is learnable from K < N rows."""
    beta = Q.T @ rng.normal(size=Q.shape[0])
    return beta / np.std(Q @ beta) * scale


def _ridge_closed_form(Xtr, ytr, Xte, alpha):
    """Ridge with an unpenalised intercept, by the normal equations in float64."""
    xm, ym = Xtr.mean(axis=0), ytr.mean()
    A = Xtr - xm
    w = np.linalg.solve(A.T @ A + alpha * np.eye(A.shape[1]), A.T @ (ytr - ym))
    return (Xte - xm) @ w + ym


def test_compress_features_gives_identical_ridge_predictions():
    # Exactness claim of compress_features: ridge predictions depend on X only via row inner
    # products. Tolerance 1e-8 relative: both sides are float64 solves of size <= 40.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 500))
    y = rng.normal(size=40)
    Xc = P.compress_features(X)
    assert Xc.shape == (40, 40)
    tr, te = np.arange(30), np.arange(30, 40)
    for alpha in (1e-2, 1.0, 1e3):
        full = _ridge_closed_form(X[tr], y[tr], X[te], alpha)
        small = _ridge_closed_form(Xc[tr], y[tr], Xc[te], alpha)
        np.testing.assert_allclose(small, full, rtol=1e-8, atol=1e-10)


def test_ridge_cv_predict_matches_manual_inner_cv():
    # Reference: inner 5-fold CV (sklearn's unshuffled KFold order: consecutive blocks) over the
    # same alphas with closed-form ridge, choose the alpha of best mean R^2 over the inner folds
    # (RidgeCV's default score with cv=5, as in the paper's code), refit on the whole fold.
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 8))
    y = X @ rng.normal(size=8) + rng.normal(size=50) * 2 + 40
    folds = np.arange(50) % 5
    alphas = (1e-2, 1e-1, 1.0, 10.0, 100.0)
    pred, chosen = P.ridge_cv_predict(X, y, folds, alphas=alphas, clip=None)
    for f in range(5):
        tr, te = folds != f, folds == f
        Xtr, ytr = X[tr], y[tr]
        n = len(ytr)
        bounds = np.array_split(np.arange(n), 5)
        r2 = []
        for a in alphas:
            score = 0.0
            for b in bounds:
                inner_tr = np.setdiff1d(np.arange(n), b)
                resid = _ridge_closed_form(Xtr[inner_tr], ytr[inner_tr], Xtr[b], a) - ytr[b]
                score += 1 - np.sum(resid**2) / np.sum((ytr[b] - ytr[b].mean()) ** 2)
            r2.append(score / len(bounds))
        best = alphas[int(np.argmax(r2))]
        assert chosen[f] == best
        np.testing.assert_allclose(pred[te], _ridge_closed_form(Xtr, ytr, X[te], best), rtol=1e-7)


def test_ridge_cv_predict_equals_sklearn_ridgecv_on_wide_features():
    # The fast path (one SVD per training set for all penalties) against sklearn's RidgeCV with
    # the same inner 5-fold CV, on features wider than the number of models (as Q is), several
    # targets at once with their own grids. Predictions agree to 1e-6 relative (different
    # solvers: SVD vs Cholesky of the kernel matrix, both float64).
    from sklearn.linear_model import RidgeCV

    L, Q, groups, rng = _synthetic(K=45, N=120, n_groups=9, seed=4)
    Y = np.stack([50 + Q @ _in_row_space(Q, rng, 5.0) + rng.normal(size=45) * 3,
                  -20 + Q @ _in_row_space(Q, rng, 0.5) + rng.normal(size=45) * 0.3], axis=1)
    folds = P.outer_folds(45, groups=groups, seed=1)
    grids = [tuple(10.0**k for k in range(1, 10)), tuple(10.0**k for k in range(-4, 5))]  # the paper's two grids
    pred, chosen = P.ridge_cv_predict(Q, Y, folds, alphas=grids, clip=None)
    for j in range(2):
        for f in range(5):
            tr, te = folds != f, folds == f
            ref = RidgeCV(alphas=grids[j], cv=5).fit(Q[tr], Y[tr, j])
            assert chosen[f, j] == ref.alpha_
            np.testing.assert_allclose(pred[te, j], ref.predict(Q[te]), rtol=1e-6, atol=1e-6)


def test_exact_linear_target_of_q_is_recovered():
    L, Q, groups, rng = _synthetic()
    y = 50 + Q @ _in_row_space(Q, rng, 8.0)  # roughly within [20, 80], so the [0, 100] clip does not act
    assert 0 < y.min() and y.max() < 100
    res = P.predict_benchmarks({"Q": Q, "L": L}, {"ARC": y}, groups=groups, seeds=[0, 1])
    rows = {(r["features"], r["split"]): r for r in res.rows}
    # r ~ 1: the target is an exact linear function of Q and the smallest penalty (10) is tiny
    # against the features' scale; 0.98 leaves room for the penalty's shrinkage.
    assert rows[("Q", "kfold")]["pearson_mean"] > 0.98
    assert rows[("Q", "group")]["pearson_mean"] > 0.98
    assert rows[("Q", "kfold")]["spearman_mean"] > 0.95
    pred = res.predictions[("ARC", "Q", "kfold")]
    assert pred.shape == y.shape and np.all(np.isfinite(pred))
    assert set(res.per_seed) == set(res.predictions)
    assert len(rows[("Q", "group")]["alphas"]) == 2 * 5


def test_group_folds_keep_groups_together_and_depend_on_seed():
    groups = np.repeat(np.arange(12), 4)
    a = P.outer_folds(48, groups=groups, seed=0)
    b = P.outer_folds(48, groups=groups, seed=1)
    assert set(a.tolist()) == set(range(5))
    for g in range(12):
        assert len(set(a[groups == g].tolist())) == 1
    assert not np.array_equal(a, b)
    k = P.outer_folds(48, seed=3)
    assert sorted(np.bincount(k).tolist()) == [9, 9, 10, 10, 10]


def test_clipping_only_for_benchmarks_and_missing_targets_are_left_out():
    L, Q, groups, rng = _synthetic(K=40, N=100, n_groups=8)
    y = 95 + Q @ _in_row_space(Q, rng, 5.0)  # many true values above 100
    m = Q @ _in_row_space(Q, rng, 1.0) - 30.0
    y_missing = y.copy()
    y_missing[:5] = np.nan
    res = P.predict_benchmarks(
        {"Q": Q}, {"HellaSwag": y_missing, "mean_loglik": m}, splits=("kfold",), seeds=[0]
    )
    p = res.predictions[("HellaSwag", "Q", "kfold")]
    assert np.all(np.isnan(p[:5])) and np.all(np.isfinite(p[5:]))
    assert p[5:].max() <= 100.0
    assert res.rows[0]["n_models"] == 35
    pm = res.predictions[("mean_loglik", "Q", "kfold")]
    assert pm.max() < 0  # not clipped to [0, 100]
    assert np.all(np.isfinite(pm))
    assert res.rows[1]["pearson_mean"] > 0.95


def test_too_few_models_or_groups_is_a_clear_error():
    X = np.random.default_rng(0).normal(size=(4, 10))
    with pytest.raises(PylogmapError, match="too few"):
        P.predict_benchmarks({"Q": X}, {"ARC": np.arange(4.0)}, splits=("kfold",))
    X = np.random.default_rng(0).normal(size=(12, 10))
    with pytest.raises(PylogmapError, match="groups"):
        P.predict_benchmarks({"Q": X}, {"ARC": np.arange(12.0)}, groups=np.arange(12) % 3)
    with pytest.raises(PylogmapError, match="group label"):
        P.predict_benchmarks({"Q": X}, {"ARC": np.arange(12.0)}, groups=None)


def test_loglik_correlations():
    m = np.array([-3.0, -2.5, -2.0, -1.0, np.nan])
    out = P.loglik_correlations(m, {"ARC": np.array([10.0, 20.0, 30.0, 50.0, 60.0])})
    assert out[0]["n_models"] == 4
    assert out[0]["spearman"] == pytest.approx(1.0)
    assert out[0]["pearson"] == pytest.approx(np.corrcoef(m[:4], [10, 20, 30, 50])[0, 1])


# ------------------------------------------------------------------ map level and scores table

from _analysis_helpers import family_population, make_mapdata  # noqa: E402


def _write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


def test_read_scores_csv_parses_ids_missing_and_categorical(tmp_path):
    p = _write_csv(tmp_path / "s.csv", ["Model", "ARC", "family", "GSM8K"],
                   [["a", "50.5", "llama", ""], ["b", "NaN", "opt", "3"]])
    ids, cols = P.read_scores_csv(p, categorical=["family"])
    assert ids == ["a", "b"]
    assert np.isnan(cols["ARC"][1]) and cols["ARC"][0] == 50.5
    assert np.isnan(cols["GSM8K"][0]) and cols["GSM8K"][1] == 3.0
    assert cols["family"].tolist() == ["llama", "opt"]


def test_non_numeric_column_and_bad_tables_are_clear_errors(tmp_path):
    p = _write_csv(tmp_path / "s.csv", ["model", "ARC", "notes"], [["a", "50", "good"], ["b", "60", "bad"]])
    with pytest.raises(PylogmapError, match=r"line 2: column 'notes' has the non-numeric value 'good'"):
        P.read_scores_csv(p, targets=["ARC", "notes"])
    ids, cols = P.read_scores_csv(p)  # not a target: kept as text, for predict_map to set aside
    assert cols["notes"].tolist() == ["good", "bad"] and cols["ARC"].tolist() == [50.0, 60.0]
    with pytest.raises(PylogmapError, match="does not exist"):
        P.read_scores_csv(tmp_path / "missing.csv")
    q = _write_csv(tmp_path / "d.csv", ["model", "ARC"], [["a", "1"], ["a", "2"]])
    with pytest.raises(PylogmapError, match="twice"):
        P.read_scores_csv(q)
    r = _write_csv(tmp_path / "r.csv", ["model", "ARC"], [["a", "1", "9"]])
    with pytest.raises(PylogmapError, match="fields"):
        P.read_scores_csv(r)


def test_unknown_model_names_are_a_clear_error_unless_skipped():
    L, Z, fam = family_population()
    data = make_mapdata(L, annotations={"family": fam})
    ids = data.names[:30] + ["no/such-model"]
    cols = {"ARC": np.r_[50 + 5 * Z[:30, 0], 40.0]}
    with pytest.raises(PylogmapError, match=r"not in the map: 'no/such-model'.*--skip-unknown"):
        P.predict_map(data, ids, cols, seeds=[0])
    res = P.predict_map(data, ids, cols, seeds=[0], skip_unknown=True)
    assert res["n_models"] == 30
    assert any("unknown" in n for n in res["notes"])


def test_predict_map_recovers_target_and_writes_columns_per_row():
    L, Z, fam = family_population(K=40, N=200)
    data = make_mapdata(L, annotations={"family": fam})
    ids = data.labels[:36]  # the last 4 rows have no scores
    y = 50 + 5 * Z[:36, 0]
    res = P.predict_map(data, ids, {"ARC": y}, seeds=[0, 1])
    assert res["splits"] == ["group", "kfold"] and res["primary_split"] == "group"
    rows = {(r["target"], r["features"], r["split"]): r for r in res["rows"]}
    assert set(rows) == {(t, f, s) for t in ("ARC", "mean_loglik") for f in ("Q", "L") for s in ("group", "kfold")}
    assert rows[("ARC", "Q", "kfold")]["pearson_mean"] > 0.95
    col = res["columns"]["pred_ARC"]
    assert col.shape == (40,) and np.all(np.isfinite(col[:36])) and np.all(np.isnan(col[36:]))
    # mean log-likelihood is the row mean of the unclipped L
    ml = res["columns"]["pred_mean_loglik"]
    assert np.corrcoef(ml[:36], L[:36].mean(1))[0, 1] > 0.95
    assert [c["target"] for c in res["loglik_correlations"]] == ["ARC"]


def test_predict_map_without_family_runs_plain_split_and_needs_enough_models():
    L, Z, fam = family_population(K=40, N=100)
    data = make_mapdata(L)
    res = P.predict_map(data, data.labels, {"ARC": 50 + Z[:, 0]}, seeds=[0])
    assert res["splits"] == ["kfold"]
    assert any("plain shuffled split only" in n for n in res["notes"])
    with pytest.raises(PylogmapError, match="no column 'size'"):
        P.predict_map(data, data.labels, {"ARC": 50 + Z[:, 0]}, group_by="size", seeds=[0])
    with pytest.raises(PylogmapError, match="only 4 models"):
        P.predict_map(data, data.labels[:4], {"ARC": np.arange(4.0)}, seeds=[0])


# ------------------------------------------------------------------ command

def test_predict_command_tables_json_and_annotations(tmp_path, capsys):
    import json

    from _analysis_helpers import write_map

    from pylogmap.cli import main
    from pylogmap.store import open_map

    L, Z, fam = family_population(K=30, N=120, n_families=6)
    names = [f"org/model-{i}" for i in range(30)]
    path = write_map(tmp_path / "m.h5", L, [(n, "", -1) for n in names], annotations={"family": fam})
    csv = _write_csv(tmp_path / "scores.csv", ["model", "ARC", "MMLU"],
                     [[n, f"{50 + 5 * Z[i, 0]:.4f}", f"{40 + 3 * Z[i, 1]:.4f}" if i % 7 else ""] for i, n in enumerate(names)])
    assert main(["predict", str(path), str(csv), "--seeds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_models"] == 30 and out["splits"] == ["group", "kfold"]
    assert {r["target"] for r in out["rows"]} == {"ARC", "MMLU", "mean_loglik"}
    mmlu = [r for r in out["rows"] if r["target"] == "MMLU"][0]
    assert mmlu["n_models"] == 25
    assert out["written_columns"] == ["pred_ARC", "pred_MMLU", "pred_mean_loglik"]
    with open_map(path) as m:
        ann = m.annotations()
    assert ann["pred_ARC"].shape == (30,) and np.all(np.isfinite(ann["pred_ARC"]))
    assert np.isnan(ann["pred_MMLU"][0]) and np.isfinite(ann["pred_MMLU"][1])

    assert main(["predict", str(path), str(csv), "--seeds", "1", "--split", "kfold", "--no-write"]) == 0
    text = capsys.readouterr().out
    assert "pearson r" in text and "mean log-likelihood vs benchmark" in text

    bad = _write_csv(tmp_path / "bad.csv", ["model", "ARC"], [["org/model-0", "50"], ["nobody", "3"]])
    assert main(["predict", str(path), str(bad)]) == 2
    assert "not in the map: 'nobody'" in capsys.readouterr().err


# ------------------------------------------------------------------ issue 12: honest defaults

def test_penalty_grid_is_scale_free():
    """Penalties are relative to the features' scale: scaling Q changes no prediction (the fixed
    1e1..1e9 grid chose its lowest penalty on a small map, a large one relative to its scale)."""
    L, Q, groups, rng = _synthetic(K=40, N=100, n_groups=8)
    y = 50 + Q @ _in_row_space(Q, rng, 5.0) + rng.normal(size=40)
    a = P.predict_benchmarks({"Q": Q}, {"ARC": y}, splits=("kfold",), seeds=[0])
    b = P.predict_benchmarks({"Q": Q * 1e-3}, {"ARC": y}, splits=("kfold",), seeds=[0])
    np.testing.assert_allclose(a.predictions[("ARC", "Q", "kfold")], b.predictions[("ARC", "Q", "kfold")], rtol=1e-6)
    assert a.rows[0]["alphas"] == b.rows[0]["alphas"]
    assert P.feature_scale(Q * 1e-3) == pytest.approx(P.feature_scale(Q) * 1e-6)


def test_penalties_at_an_end_of_the_grid_are_reported():
    L, Q, groups, rng = _synthetic(K=40, N=100, n_groups=8)
    exact = 50 + Q @ _in_row_space(Q, rng, 5.0)  # no noise: the smallest penalty wins
    noise = 50 + rng.normal(size=40)  # nothing to learn: the largest penalty (about the mean) wins
    res = P.predict_benchmarks({"Q": Q}, {"exact": exact, "noise": noise}, splits=("kfold",), seeds=[0])
    rows = {r["target"]: r for r in res.rows}
    assert rows["exact"]["alpha_at_lowest"] > 0 and rows["noise"]["alpha_at_highest"] > 0
    assert any("lowest of its grid" in n and "exact/Q/kfold" in n for n in res.notes)
    assert any("highest of its grid" in n and "noise/Q/kfold" in n for n in res.notes)


def test_grouped_split_fits_few_groups_and_says_the_spread_is_not_measured():
    L, Q, groups, rng = _synthetic(K=30, N=100, n_groups=3)
    y = 50 + Q @ _in_row_space(Q, rng, 5.0) + rng.normal(size=30)
    with pytest.raises(PylogmapError, match="only 3 model groups"):
        P.predict_benchmarks({"Q": Q}, {"ARC": y}, groups=groups, splits=("group",))
    res = P.predict_benchmarks({"Q": Q}, {"ARC": y}, groups=groups, splits=("group", "kfold"), fit_folds=True)
    rows = {r["split"]: r for r in res.rows}
    assert rows["group"]["n_folds"] == 3 and rows["kfold"]["n_folds"] == 5
    assert rows["group"]["distinct_splits"] == 1 and rows["group"]["pearson_std"] == 0.0  # one group per fold, every seed
    assert rows["kfold"]["distinct_splits"] == 5
    assert any("only 3 model groups, so the grouped split uses 3 folds" in n for n in res.notes)


def test_a_leaderboard_with_text_columns_predicts_its_numeric_ones(tmp_path, capsys):
    from _analysis_helpers import write_map

    from pylogmap.cli import main

    L, Z, fam = family_population(K=24, N=120, n_families=3)
    names = [f"org/model-{i}" for i in range(24)]
    path = write_map(tmp_path / "m.h5", L, [(n, "", -1) for n in names], annotations={"family": fam})
    csv = _write_csv(tmp_path / "lb.csv", ["model", "type", "ARC", "precision", "MMLU", "license"],
                     [[n, "pretrained" if i % 2 else "chat", f"{50 + 5 * Z[i, 0]:.3f}", "bfloat16",
                       f"{40 + 3 * Z[i, 1]:.3f}", "apache-2.0"] for i, n in enumerate(names)])
    assert main(["predict", str(path), str(csv), "--seeds", "2", "--no-write"]) == 0
    captured = capsys.readouterr()
    assert "ignored 3 column(s) that are not numbers: type, precision, license" in captured.err
    assert "only 3 model groups, so the grouped split uses 3 folds" in captured.err
    lines = captured.out.splitlines()
    group_rows = [line for line in lines if " group " in line]
    assert group_rows and all("±" not in line for line in group_rows)  # the same split every seed: no spread
    assert not re.search(r"± 0\.?0*(\s|$)", captured.out)  # never a spread of zero
    assert any(" kfold " in line and "±" in line for line in lines)
    assert "none where every seed gives the same split" in captured.out
    assert main(["predict", str(path), str(csv), "--targets", "ARC", "--seeds", "1", "--no-write", "--json"]) == 0
    assert {r["target"] for r in json.loads(capsys.readouterr().out)["rows"]} == {"ARC", "mean_loglik"}
    assert main(["predict", str(path), str(csv), "--targets", "ARC,license", "--no-write"]) == 2
    err = capsys.readouterr().err
    assert "line 2: column 'license' has the non-numeric value 'apache-2.0'" in err and "--targets" in err
