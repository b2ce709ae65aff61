"""Store benchmark: what crash safety costs, and how fast maps are written and read.

Prints one table. Rows:
- commit: time of one atomic commit (copy + append one row + fsync + rename) against the time of
  appending the same row in place with h5py (no crash safety), for maps of growing size;
- synthetic map: writing M x N synthetic rows in one go (MapFile.create_with_rows) vs h5py writing
  the same matrix alone;
- read: the whole matrix, 1,000 scattered rows, the models table;
- lookup: finding 1,000 rows by label with the row-lookup rule (store.lookup) against a plain
  dict of the labels.

Usage: python benchmarks/bench_store.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pylogmap.store import MapFile, RowLookup, ScoreWriter, open_map  # noqa: E402
from pylogmap.testing import synthetic_population, write_synthetic_map  # noqa: E402


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        sizes = [(100, 1000), (1000, 10000)] if args.quick else [(100, 1000), (1000, 10000), (4000, 10000)]
        for m, n in sizes:
            path = d / f"c{m}.h5"
            mf, pop = write_synthetic_map(path, m, n, overwrite=True)
            mf.close()
            size_mb = os.path.getsize(path) / 1e6
            row = pop.L[0].astype(np.float64)
            ntok = pop.ntokens[0]
            k = [0]

            def commit_one():
                with ScoreWriter(path, commit_interval=0) as w:
                    k[0] += 1
                    w.record(f"extra-{k[0]}", row, ntok)

            plain = d / "plain.h5"
            with h5py.File(plain, "w") as f:
                f.create_dataset("loglik", data=pop.L, maxshape=(None, n), chunks=(max(1, 65536 // n), n))

            def inplace_one():
                with h5py.File(plain, "r+") as f:
                    ds = f["loglik"]
                    ds.resize((ds.shape[0] + 1, n))
                    ds[-1] = row

            ours, base = timed(commit_one), timed(inplace_one)
            rows.append((f"commit 1 row into {m} x {n} ({size_mb:.0f} MB)", ours, "h5py in place (not crash-safe)",
                         base))
        m, n = (20_000, 100) if args.quick else (100_000, 100)
        path = d / "syn.h5"
        pop = synthetic_population(m, n)
        t_ours = timed(lambda: write_synthetic_map(path, m, n, overwrite=True)[0].close(), repeat=1)
        t_pop = timed(lambda: synthetic_population(m, n), repeat=1)
        t_h5 = timed(lambda: h5py.File(d / "p.h5", "w").create_dataset("L", data=pop.L).file.close(), repeat=1)
        rows.append((f"write synthetic map {m} x {n} (incl. {t_pop:.2f}s to draw it)", t_ours, "h5py matrix only", t_h5))
        with open_map(path) as mf:
            t_all = timed(lambda: mf.loglik())
            t_h5all = timed(lambda: h5py.File(path, "r")["loglik"][...])
            rows.append((f"read whole matrix {m} x {n}", t_all, "h5py ds[...]", t_h5all))
            pick = np.random.default_rng(0).integers(0, m, 1000)
            t_pick = timed(lambda: mf.loglik(pick))
            t_h5pick = timed(lambda: h5py.File(path, "r")["loglik"][np.unique(pick)], repeat=1)
            rows.append(("read 1,000 scattered rows", t_pick, "h5py fancy index (sorted)", t_h5pick))
            t_tab = timed(lambda: MapFile(path).models_table())
            rows.append((f"models table of {m} rows (open + read)", t_tab, "-", float("nan")))
            keys, labels = mf.keys(), mf.labels()
            queries = [labels[i] for i in pick]

            def by_lookup(texts):
                lookup = RowLookup(keys, labels)
                return [lookup.one_row(q) for q in texts]

            def by_dict():
                index = {label: i for i, label in enumerate(labels)}
                return [index[q] for q in queries]

            rows.append((f"find 1,000 rows by label among {m} (index + lookups)", timed(lambda: by_lookup(queries)),
                         "a dict of the labels", timed(by_dict)))
            upper = [q.upper() for q in queries]
            rows.append((f"find 1,000 rows by upper-cased label among {m}", timed(lambda: by_lookup(upper)),
                         "-", float("nan")))
    w = max(len(r[0]) for r in rows)
    print(f"{'operation':<{w}}  {'ours (s)':>9}  {'baseline':<32} {'base (s)':>9}  {'ratio':>6}")
    for name, ours, bname, base in rows:
        ratio = ours / base if base == base and base > 0 else float("nan")
        print(f"{name:<{w}}  {ours:9.3f}  {bname:<32} {base:9.3f}  {ratio:6.2f}")


if __name__ == "__main__":
    main()
