"""Store benchmark: what a crash-safe commit costs against the size of the map, and how fast maps
are written and read.

Prints two tables.

1. Commit time against map size (M models x N texts): one commit adding one row,
   - format 1 (pylogmap 0.1): the protocol of the version-1 store, reproduced here for the
     comparison (copy the file, apply the journal entry to the copy with the store's own `apply`,
     fsync, rename over the map, fsync the folder);
   - format 2 (now): `ScoreWriter.commit()` after `record()`: HDF5 appends, the redo log, the
     changed ranges written in place (store.journal);
   with the median of several commits, and the disk a commit needs beyond the map.
2. Other operations: writing M x N synthetic rows in one go (MapFile.create_with_rows) vs h5py
   writing the same matrix alone; reading the whole matrix, 1,000 scattered rows, the models
   table; finding 1,000 rows by label with the row-lookup rule (store.lookup) against a dict.

Usage: python benchmarks/bench_store.py [--quick] [--sizes 1000,10000,50000] [--texts 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pylogmap.files.durable import fsync_dir, fsync_file  # noqa: E402
from pylogmap.store import MapFile, RowKey, RowLookup, ScoreWriter, open_map  # noqa: E402
from pylogmap.store.attrs import write_attrs  # noqa: E402
from pylogmap.store.entries import model_columns, rows_entry  # noqa: E402
from pylogmap.store.schema import LIBVER, FileState, apply  # noqa: E402
from pylogmap.testing import synthetic_population, write_synthetic_map  # noqa: E402
from pylogmap.texts import TextSet  # noqa: E402


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


BLOCK_BYTES = 400 << 20  # rows written per step while building a map


def build_map(path: Path, m: int, n: int) -> None:
    """A map of m random rows x n texts, written through the store in blocks of about 400 MB."""
    texts = TextSet.from_texts([f"text {k}" for k in range(n)])
    rng = np.random.default_rng(0)
    block = max(1, BLOCK_BYTES // (n * 9))

    def rows(lo: int, hi: int):
        return ([f"model-{i}" for i in range(lo, hi)], -rng.uniform(1, 300, (hi - lo, n)).astype(np.float32),
                np.full((hi - lo, n), 7, np.int32))

    keys, L, T = rows(0, min(block, m))
    MapFile.create_with_rows(path, texts, keys, L, T, overwrite=True).close()
    with MapFile(path, "a") as mf:
        for lo in range(block, m, block):
            mf.append_rows(*rows(lo, min(lo + block, m)))


def one_row(n: int, name: str):
    rng = np.random.default_rng(len(name))
    return -rng.uniform(1, 300, n), np.full(n, 7, np.int32)


def v1_commit(path: Path, name: str, n: int) -> float:
    """One commit of one row as the format-1 store made it: copy the map, apply the entry to the
    copy, fsync, rename the copy over the map, fsync the folder. Returns its time."""
    L, T = one_row(n, name)
    key = RowKey(name)
    entry = rows_entry([key], L[None].astype(np.float32), T[None], np.zeros((1, n), bool),
                       model_columns([key], [None], ["ok"], [""], [0]))
    t = time.perf_counter()
    tmp = path.with_name(path.name + ".tmp")
    shutil.copyfile(path, tmp)
    with h5py.File(tmp, "r+", libver=LIBVER) as f:
        apply(f, FileState(f), entry, "bench")
        write_attrs(f, {"commit_seq": 1})
        f.flush()
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return time.perf_counter() - t


def commit_table(d: Path, sizes: list[int], n: int, commits: int) -> None:
    """Table 1 (module doc)."""
    print(f"commit one row into a map of M models x {n} texts (median of {commits} commits; seconds)")
    print(f"{'models':>8} {'file GB':>8}  {'format 1':>9}  {'format 2':>9}  {'ratio':>7}  "
          "disk beyond the map (1 | 2)")
    for m in sizes:
        path = d / "map.h5"
        build_map(path, m, n)
        gb = os.path.getsize(path) / 1e9
        copy = d / "v1.h5"  # format 1 commits into its own copy: the map itself is left to format 2
        shutil.copyfile(path, copy)
        v1 = statistics.median(v1_commit(copy, f"v1-{i}", n) for i in range(max(1, commits // 2)))
        copy.unlink()
        times = []
        with ScoreWriter(path, commit_interval=3600) as w:
            for i in range(commits):
                w.record(f"v2-{i}", *one_row(n, f"v2-{i}"))
                t = time.perf_counter()
                w.commit()
                times.append(time.perf_counter() - t)
        v2 = statistics.median(times)
        grown = (os.path.getsize(path) / 1e9 - gb) / commits
        print(f"{m:>8} {gb:>8.2f}  {v1:>9.3f}  {v2:>9.4f}  {v1 / v2:>7.0f}  "
              f"{gb:.2f} GB | {grown * 1e3:.1f} MB per commit (the row and moved metadata)", flush=True)
        path.unlink()
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--sizes", help="map sizes (models) for the commit table, comma-separated")
    ap.add_argument("--texts", type=int, help="texts of the maps in the commit table (10,000; --quick 1,000)")
    ap.add_argument("--commits", type=int, default=10, help="commits timed per size (format 1: half)")
    ap.add_argument("--commits-only", action="store_true", help="print the commit table only")
    ap.add_argument("--dir", help="folder for the maps (default: the system's temporary folder)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else (
        [1000, 10000] if args.quick else [1000, 10000, 50000])
    n_texts = args.texts or (1000 if args.quick else 10000)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        d = Path(d)
        commit_table(d, sizes, n_texts, args.commits)
        if args.commits_only:
            return
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
