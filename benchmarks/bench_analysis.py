"""Timings of the analyses against their straightforward baselines (prints a table).

- ridge CV: `prediction.ridge_cv_predict` (one SVD per training set for all penalties and
  targets, features reduced to U S) vs sklearn `RidgeCV(cv=5)` per target on the raw features,
  for one seed of the outer 5-fold CV;
- KL sampling probabilities: the moment expansion vs the K x K x N brute force;
- one resampling error curve point (100 seeds) on a synthetic map.

Run from the repository root: PYTHONPATH=. python benchmarks/bench_analysis.py [--models 300 --texts 2000]
(on a machine with fewer free cores than BLAS threads, set OPENBLAS_NUM_THREADS=1).

Measured here (300 x 2000, one thread): ridge CV 0.76 s vs sklearn RidgeCV 13.4 s (17.6x, max
difference 6e-13); KL probabilities 7000x faster than the brute force.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _timed(fn, repeat=1):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=300)
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--targets", type=int, default=3)
    args = ap.parse_args()

    from sklearn.linear_model import RidgeCV

    from pylogmap.mapping import geometry
    from pylogmap.analysis import prediction, resampling
    from pylogmap.testing import synthetic_population

    pop = synthetic_population(args.models, args.texts, n_families=10, seed=0)
    Lc, _ = geometry.clip(pop.L.astype(np.float64))
    Q = geometry.double_center(Lc)
    rng = np.random.default_rng(0)
    Y = np.stack([50 + Q @ (Q.T @ rng.normal(size=args.models)) * 1e-6 + rng.normal(size=args.models)
                  for _ in range(args.targets)], axis=1)
    folds = prediction.outer_folds(args.models, groups=pop.family_index, seed=0)

    rows = []
    t_ours, (pred, _) = _timed(lambda: prediction.ridge_cv_predict(
        prediction.compress_features(Q), Y, folds, clip=None))

    def sk():
        out = np.empty_like(Y)
        for j in range(Y.shape[1]):
            for f in range(5):
                te = folds == f
                out[te, j] = RidgeCV(alphas=prediction.DEFAULT_ALPHAS, cv=5).fit(Q[~te], Y[~te, j]).predict(Q[te])
        return out

    t_sk, ref = _timed(sk)
    rows.append(("ridge CV, 1 seed, %d targets" % args.targets, t_ours, t_sk, float(np.max(np.abs(pred - ref)))))

    Ks = min(args.models, 120)
    Ns = min(args.texts, 500)
    Qs = Q[:Ks, :Ns]
    t_m, p = _timed(lambda: resampling.sampling_probabilities(Qs, "kl"), 3)

    def brute():
        d = Qs[:, None, :] - Qs[None, :, :]
        s = np.sqrt((d**4).sum(axis=(0, 1)))
        return s / s.sum()

    t_b, pb = _timed(brute)
    rows.append((f"KL probabilities {Ks}x{Ns}", t_m, t_b, float(np.max(np.abs(p - pb)))))

    t_c, _ = _timed(lambda: resampling.error_curve(Lc, Q, methods=("ls",), grid=[args.texts // 4], seeds=range(100)))
    rows.append((f"error curve point, n={args.texts // 4}, 100 seeds", t_c, float("nan"), float("nan")))

    print(f"{args.models} models x {args.texts} texts\n")
    print(f"{'task':<40} {'ours s':>9} {'baseline s':>11} {'speed-up':>9} {'max |diff|':>11}")
    for name, a, b, diff in rows:
        ratio = b / a if np.isfinite(b) else float("nan")
        print(f"{name:<40} {a:9.3f} {b:11.3f} {ratio:9.1f} {diff:11.2e}")


if __name__ == "__main__":
    main()
