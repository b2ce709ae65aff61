"""Benchmark of the map side: neighbours, all-pairs KL, t-SNE and the whole `pylogmap map`.

For K synthetic models x N texts (pylogmap.testing.synthetic_population: families, heavy tail,
realistic scale), in one run, ours against the baselines on the same Q:

- k-NN of every model (k = 10, self excluded): ours (`neighbors.search`, index "exact":
  float32 panel-GEMM candidates, or bf16 ones where the CPU has AMX and MKL is installed, with
  a proven margin, float64 answer), the same search with float32 tiles and with numpy's exact
  stage instead of the compiled one (PYLOGMAP_GEMM / PYLOGMAP_NATIVE_PAIRS, same run), numpy
  brute force in float64 (the published code's full distance matrix + argpartition) and FAISS
  IndexFlatL2 (float32, k + 1 nearest, no re-ranking). The neighbour sets of ours are compared
  with the brute force's.
- all-pairs KL: ours streamed in row blocks (`geometry.iter_pairwise_kl`, float64, memory one
  block) against the published one-shot ``sq_i + sq_j - 2 X X^T`` (float64, K x K at once).
- t-SNE: ours (openTSNE FFT from the map's own neighbour lists, `embedding.tsne_fft`) against
  scikit-learn (published settings), with the quality measure of issue 17: the fraction of each
  model's 10 nearest (in KL) that stay among its 10 nearest on the 2-D map.
- `pylogmap map` without embeddings (`mapping.compute_map` on a synthetic map file) against a
  plain numpy float64 reference of the same outputs (read, clip at the 2 % quantile, double
  centre, k-NN by the full float64 distance matrix, KL and SE of the lists).

Sizes above ``--full-limit`` models (100,000 by default) run in the reduced-N form: the same K
with ``--reduced-texts`` texts (1,000), everything run in full at that N; the figure for N texts
is then extrapolated (marked "extrap."): the GEMM-bound steps scale with N (the k-NN tiles and
the exact ranking by N, measured separately), baselines that cannot run are timed on a slice of
2,048 query rows and scaled by K / 2,048.

Memory = the peak resident set size above the resident size before the step (Linux VmHWM, reset
with /proc/self/clear_refs; includes FAISS's and BLAS's allocations); elsewhere tracemalloc's peak.
tracemalloc is never on during a timed step on Linux: it records every allocation, numpy's
included, and made the FFT t-SNE (many small arrays per iteration) four times slower.
Time = wall clock (best of ``--rounds``), and CPU seconds of the process (all threads): on a
machine shared with other jobs the wall time grows with the load, the CPU time less so. The load
average is printed with the table.

Examples:
  python benchmarks/bench_map.py                                   # 1k, 10k, 100k (reduced N)
  python benchmarks/bench_map.py --models 1000 --texts 2000 --tsne 1000 --map 1000   # quick
  python benchmarks/bench_map.py --map-file 100000 --texts 10000   # the real 100k x 10k pylogmap map
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pylogmap.mapping import embedding, geometry, neighbors  # noqa: E402


def _trim() -> None:
    """Give freed heap memory back to the OS so that the next peak shows in the RSS."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status(pid: int | str = "self") -> dict[str, int]:
    """VmHWM and VmRSS (bytes) of a process, this one by default."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


class Measure:
    """Wall time, CPU time and peak extra resident memory of a block."""

    def __enter__(self):
        gc.collect()
        _trim()
        self.linux = os.path.exists("/proc/self/clear_refs")
        if self.linux:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                self.linux = False
        if not self.linux:
            tracemalloc.start()
        self.rss0 = _status().get("VmRSS", 0) if self.linux else 0
        self.c0 = time.process_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0
        if self.linux:
            self.peak = _status().get("VmHWM", 0) - self.rss0
        else:
            self.peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()


def best_of(rounds: int, fn):
    """Run ``fn`` ``rounds`` times; the measure of the fastest round and its result."""
    best = None
    for _ in range(max(1, rounds)):
        with Measure() as m:
            out = fn()
        if best is None or m.seconds < best[0].seconds:
            best = (m, out)
        else:
            del out
    return best


def _fmt_bytes(n) -> str:
    if n != n:
        return "n/a"
    n = max(0, n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit in ("B", "KiB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Table(list):
    """Rows (task, method, K, N, seconds, cpu, memory, extrapolated, ratio, note); each row is also
    printed to stderr as it comes (long runs show progress)."""

    def add(self, task, method, K, N, sec, cpu, mem, extrap=False, ratio=None, note=""):
        row = (task, method, K, N, sec, cpu, mem, extrap, ratio, note)
        self.append(row)
        print(_format_row(row), file=sys.stderr, flush=True)


def _format_row(row) -> str:
    task, method, K, N, sec, cpu, mem, extrap, ratio, note = row
    t = "n/a" if sec != sec else f"{sec:.2f} s" + (" (extrap.)" if extrap else "")
    c = "n/a" if cpu != cpu else f"{cpu:.1f} s"
    r = "" if ratio is None else f"x{ratio:.2f}"
    return f"| {task} | {method} | {K:,} | {N:,} | {t} | {c} | {_fmt_bytes(mem)} | {r} | {note} |"


def make_Q(K: int, N: int, seed: int = 0) -> np.ndarray:
    from pylogmap.testing import synthetic_population

    pop = synthetic_population(K, N, n_families=max(5, K // 200), seed=seed)
    L = pop.L
    del pop
    L, _ = geometry.clip(L, out=L)
    return geometry.double_center(L, out=L)


# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------


def pairwise_published(Q: np.ndarray) -> np.ndarray:
    """The published code's pwd(): full float64 Gram, K x K at once."""
    X = Q.astype(np.float64)
    sq = np.sum(X**2, axis=1)
    d = sq[:, None] + sq[None, :] - 2 * (X @ X.T)
    return np.maximum(d, 0) / (2 * Q.shape[1])


def knn_published(Q: np.ndarray, k: int, queries=None) -> np.ndarray:
    """numpy brute force in float64: the full distance matrix (of a slice of query rows)."""
    if queries is None:
        D = pairwise_published(Q)
        np.fill_diagonal(D, np.inf)
        return np.argpartition(D, k - 1, axis=1)[:, :k]
    X = Q.astype(np.float64)
    sq = np.sum(X**2, axis=1)
    D = sq[queries, None] + sq[None, :] - 2 * (X[queries] @ X.T)
    D[np.arange(queries.size), queries] = np.inf
    return np.argpartition(D, k - 1, axis=1)[:, :k]


def knn_faiss_flat(Q: np.ndarray, k: int, queries=None) -> np.ndarray:
    """FAISS IndexFlatL2 as it comes: float32, the k + 1 nearest, self dropped, no re-ranking."""
    import faiss

    X = np.ascontiguousarray(Q, dtype=np.float32)
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    qs = np.arange(X.shape[0]) if queries is None else queries
    _, idx = index.search(X[qs], k + 1)
    return np.array([[j for j in row if j != q][:k] for q, row in zip(qs.tolist(), idx.tolist())])


def sgemm_rate(n: int = 4096, depth: int = 10_000) -> float:
    """GFLOP/s of one float32 product of two n x depth blocks (the k-NN tiles' shape), best of 2."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, depth), dtype=np.float32)
    B = rng.standard_normal((n, depth), dtype=np.float32)
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        A @ B.T
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n * n * depth / best / 1e9


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    """Environment variables set for the duration (the search reads them at every call)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def same_sets(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([set(x) == set(y) for x, y in zip(a.tolist(), b.tolist())]))


# --------------------------------------------------------------------------------------------
# Benchmarks
# --------------------------------------------------------------------------------------------


def bench_knn(Q, k, table: Table, rounds: int, extrap_scale: float = 1.0, full_baselines: bool = True,
              gflops: float = 0.0):
    K, N = Q.shape
    Nt = int(round(N * extrap_scale))
    m, res = best_of(rounds, lambda: neighbors.search(Q, k, gpu=False))
    idx = res.idx
    ours = m.seconds * extrap_scale
    tiles = "bf16 tiles (MKL, AMX)" if res.backend == "numpy-bf16" else "float32 tiles"
    table.add(f"k-NN k={k}", f"ours: {tiles} + proven margin, float64 answer", K, Nt, ours, m.cpu * extrap_scale,
              m.peak, extrap_scale != 1.0, 1.0, f"{res.mean_candidates:.1f} candidates per query")
    # the other arithmetic of the same search, in the same run: float32 tiles, and float32 tiles
    # with numpy's exact stage (no compiled pair_moments: the search before it existed)
    others = [("ours, float32 tiles (PYLOGMAP_GEMM=float32)", {"PYLOGMAP_GEMM": "float32"}),
              ("ours, float32 tiles, numpy exact stage (PYLOGMAP_NATIVE_PAIRS=0)",
               {"PYLOGMAP_GEMM": "float32", "PYLOGMAP_NATIVE_PAIRS": "0"})]
    if res.backend != "numpy-bf16":
        others = others[1:]
    for name, env in others:
        with _environ(env):
            mo, other = best_of(rounds, lambda: neighbors.search(Q, k, gpu=False))
        lists = "lists identical to ours" if np.array_equal(other.idx, idx) else "lists DIFFERENT from ours"
        gap = float(np.max(np.abs(other.sqdist - res.sqdist) / np.maximum(res.sqdist, 1e-300)))
        values = "distances bit-identical" if gap == 0 else f"distances within {gap:.1e} relative (summation order)"
        table.add(f"k-NN k={k}", name, K, Nt, mo.seconds * extrap_scale, mo.cpu * extrap_scale, mo.peak,
                  extrap_scale != 1.0, mo.seconds / m.seconds,
                  f"{other.mean_candidates:.1f} candidates per query; {lists}, {values}")
    if gflops:
        # Any exact search that forms the Gram matrix does at least its upper half: K^2 N flops.
        floor = K * K * Nt / (gflops * 1e9)
        table.add(f"k-NN k={k}", "floor: the half Gram matrix at this run's float32 GEMM rate", K, Nt, floor,
                  float("nan"), float("nan"), True, floor / ours, f"K^2 N flops at {gflops:.0f} GFLOP/s")
    if extrap_scale != 1.0:
        table.add(f"k-NN k={k}", "ours, as run", K, N, m.seconds, m.cpu, m.peak, False, None)
    baselines = (("numpy brute force float64 (full matrix)", knn_published), ("FAISS IndexFlatL2 (float32, no re-rank)",
                                                                             knn_faiss_flat))
    for name, fn in baselines:
        if full_baselines:
            mb, ref = best_of(rounds, lambda: fn(Q, k))
            scale = extrap_scale
            note = f"sets equal to ours: {same_sets(ref, idx):.2%}"
        else:  # a slice of query rows, scaled to all of them
            qs = np.arange(min(K, 2048))
            mb, ref = best_of(1, lambda: fn(Q, k, qs))
            scale = extrap_scale * K / qs.size
            note = f"timed on {qs.size:,} queries x K/{qs.size:,}; sets equal to ours: {same_sets(ref, idx[qs]):.2%}"
        table.add(f"k-NN k={k}", name, K, Nt, mb.seconds * scale, mb.cpu * scale, mb.peak, scale != 1.0,
                  mb.seconds * scale / ours, note)
        del ref


def bench_pairwise(Q, table: Table, full: bool, extrap_scale: float = 1.0):
    K, N = Q.shape
    Nt = int(round(N * extrap_scale))
    n_rows = K if full else min(K, 2048)
    with Measure() as m:
        for r, blk in geometry.iter_pairwise_kl(Q, np.arange(n_rows)):
            float(blk[0, 0])
    scale = K / n_rows * extrap_scale
    ours = m.seconds * scale
    table.add("all-pairs KL", "ours: streamed row blocks (float64)", K, Nt, ours, m.cpu * scale, m.peak, scale != 1.0, 1.0,
              "memory: one block of rows, a [block, K] result")
    if full:
        with Measure() as mt:
            for _, _, tile in geometry.iter_pairwise_kl_tiles(Q):
                float(tile[0, 0])
        table.add("all-pairs KL", "ours: streamed symmetric tiles (float64, each pair once)", K, Nt, mt.seconds * extrap_scale,
                  mt.cpu * extrap_scale, mt.peak, extrap_scale != 1.0, mt.seconds * extrap_scale / ours,
                  "memory: two blocks of rows and one tile")
    with Measure() as m32:
        for r, blk in geometry.iter_pairwise_kl(Q, np.arange(n_rows), dtype=np.float32):
            float(blk[0, 0])
    table.add("all-pairs KL", "ours: streamed row blocks, float32 products", K, Nt, m32.seconds * scale, m32.cpu * scale,
              m32.peak, scale != 1.0, m32.seconds * scale / ours, "Gram cancellation ~1e-7 |q|^2: not for near-identical models")
    if full:
        with Measure() as mp:
            P = pairwise_published(Q)
        del P
        table.add("all-pairs KL", "numpy one-shot float64 (published code)", K, Nt, mp.seconds * extrap_scale,
                  mp.cpu * extrap_scale, mp.peak, extrap_scale != 1.0, mp.seconds * extrap_scale / ours)
    else:
        table.add("all-pairs KL", "numpy one-shot float64 (published code)", K, Nt, float("nan"), float("nan"),
                  K * K * 8 * 2 + K * Nt * 8, False, None, "cannot run: memory needed shown")


def neighbour_kept(exact_idx: np.ndarray, coords: np.ndarray, k: int = 10) -> float:
    """Fraction of each model's k nearest (in KL) among its k nearest on the 2-D map."""
    from scipy.spatial import cKDTree

    _, near = cKDTree(coords).query(coords, k=k + 1)
    hits = [len(set(a[:k]) & set(b[1:])) for a, b in zip(exact_idx.tolist(), near.tolist())]
    return float(np.mean(hits)) / k


def bench_tsne(K, N, table: Table, with_sklearn: bool, sklearn_limit: int):
    """Ours (the neighbour search with the wide lists, the PCA and the FFT t-SNE) and scikit-learn.
    The note splits ours: what the embedding adds to the map's own neighbour search (PCA + FFT
    t-SNE) is the figure of issue 17's goal. The FFT t-SNE's own cost does not depend on N (it
    sees only the neighbour lists), so large K may run at the reduced N; its time is then still
    the figure for any N."""
    Q = make_Q(K, N, seed=2)
    perp = embedding.effective_perplexity(K, 30.0)
    with Measure() as m:
        t0 = time.perf_counter()
        res = neighbors.map_neighbors(Q, 10, gpu=False, n_wide=embedding.neighbours_needed(perp))
        t1 = time.perf_counter()
        init = embedding.pca(Q, method="blocks")
        t2 = time.perf_counter()
        coords, params = embedding.tsne_fft(res.wide_idx, res.wide_sqdist, init, perplexity=perp)
        t3 = time.perf_counter()
    exact = res.table.idx
    ours = m.seconds
    table.add("t-SNE", f"ours: openTSNE FFT ({params['max_iter']} iter) incl. its neighbour search + PCA", K, N, ours,
              m.cpu, m.peak, False, 1.0,
              f"10-NN kept {neighbour_kept(exact, coords):.3f}; search {t1 - t0:.1f} s, then the embedding "
              f"{t3 - t1:.1f} s (PCA {t2 - t1:.1f} s, FFT t-SNE {t3 - t2:.1f} s, any N; {params['n_jobs']} threads)")
    if with_sklearn and K <= sklearn_limit:
        with Measure() as ms:
            ref = embedding.tsne(Q)
        table.add("t-SNE", "scikit-learn, published settings (1000 iter)", K, N, ms.seconds, ms.cpu, ms.peak, False,
                  ms.seconds / ours, f"10-NN kept {neighbour_kept(exact, ref):.3f}")
    del Q


def _reference_map(path, k: int):
    """Plain numpy float64 reference of `pylogmap map`'s outputs without embeddings."""
    from pylogmap.store import open_map

    with open_map(path) as mf:
        L = mf.loglik().astype(np.float64)
    mean_ll = L.mean(axis=1)
    tau = np.quantile(L, 0.02)
    L = np.maximum(L, tau)
    Q = L - L.mean(axis=1, keepdims=True) - L.mean(axis=0, keepdims=True) + L.mean()
    tv = Q.var(axis=0)
    D = pairwise_published(Q)
    np.fill_diagonal(D, np.inf)
    idx = np.argpartition(D, k - 1, axis=1)[:, :k]
    kl = np.take_along_axis(D, idx, axis=1)
    m4 = np.empty_like(kl)
    for i in range(Q.shape[0]):
        d = Q[idx[i]] - Q[i]
        d -= d.mean(axis=1, keepdims=True)
        m4[i] = np.mean(d**4, axis=1)
    se = np.sqrt(np.maximum(m4 - (2 * kl) ** 2, 0) / Q.shape[1]) / 2
    return idx, kl, se, mean_ll, tv


def bench_map_command(K, N, k, table: Table, rounds: int, with_reference: bool):
    from pylogmap import mapping
    from pylogmap.testing import write_synthetic_map

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "map.h5"
        mf, _ = write_synthetic_map(path, K, N, n_families=max(5, K // 200), seed=5)
        mf.close()
        m, res = best_of(rounds, lambda: mapping.compute_map(path, embeddings=(), k=k, force=True, progress=False))
        table.add("pylogmap map (no embedding)", "ours: compute_map", K, N, m.seconds, m.cpu, m.peak, False, 1.0,
                  ", ".join(f"{name} {sec:.1f}" for name, sec in res.timings.items()))
        if with_reference:
            mr, ref = best_of(1, lambda: _reference_map(path, k))
            from pylogmap.store import open_map

            with open_map(path) as f:
                got = f.read_derived("neighbors/index")[0]
            table.add("pylogmap map (no embedding)", "numpy float64 reference of the same outputs", K, N, mr.seconds,
                      mr.cpu, mr.peak, False, mr.seconds / m.seconds, f"neighbour sets equal: {same_sets(got, ref[0]):.2%}")


def _watch_peak(proc: subprocess.Popen, every: float = 0.5) -> int:
    """The child's own peak resident memory: its VmHWM, read every ``every`` seconds while it runs
    (getrusage's figure for children counts the parent's pages copied at the fork, gigabytes here)."""
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, _status(proc.pid).get("VmHWM", 0))
        except (OSError, ValueError):
            pass
        time.sleep(every)
    return peak


def bench_map_file(K, N, table: Table, extra_args: list[str]):
    """The real thing: `pylogmap map` on a K x N synthetic file in a child process (peak memory =
    the child's own VmHWM, sampled while it runs; an out-of-core Q's file pages are not in it)."""
    from pylogmap.testing import write_synthetic_map

    workdir = Path(os.environ.get("BENCH_DIR", tempfile.gettempdir())) / f"bench-map-{K}x{N}"
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "map.h5"
    if not path.exists():
        t0 = time.perf_counter()
        mf, _ = write_synthetic_map(path.with_suffix(".tmp.h5"), K, N, n_families=max(5, K // 200), seed=7)
        mf.close()
        os.replace(path.with_suffix(".tmp.h5"), path)
        print(f"# wrote {path} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    cmd = [sys.executable, "-m", "pylogmap", "map", str(path), "--force", "--json", *extra_args]
    gc.collect()
    _trim()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(workdir)})
    peak = _watch_peak(proc)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"pylogmap map failed:\n{stderr}")
    out = json.loads(stdout)
    steps = out["timings_s"]
    table.add("pylogmap map (whole command)", f"ours{' ' + ' '.join(extra_args) if extra_args else ''}", K, N, wall,
              usage.ru_utime + usage.ru_stime, peak, False, None,
              f"out of core: {out['out_of_core']}; t-SNE: {out['tsne_method'] or 'none'}; "
              + ", ".join(f"{name} {sec:.0f} s" for name, sec in steps.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="1000,10000,100000", help="comma-separated K values for k-NN and all-pairs KL")
    ap.add_argument("--texts", type=int, default=10_000, help="N texts (default 10000)")
    ap.add_argument("--full-limit", type=int, default=10_000,
                    help="largest K run at N texts; above it the reduced-N form (default 10000)")
    ap.add_argument("--reduced-texts", type=int, default=1_000, help="N for the reduced-N form (default 1000)")
    ap.add_argument("--tsne", default="1000,10000,100000", help="K values for t-SNE, or 'none'")
    ap.add_argument("--sklearn-limit", type=int, default=10_000, help="largest K for scikit-learn's t-SNE")
    ap.add_argument("--map", default="10000", help="K values for the pylogmap map benchmark, or 'none'")
    ap.add_argument("--map-file", type=int, default=0, help="K: run the whole pylogmap map command on a K x N file")
    ap.add_argument("--map-args", default="", help="extra arguments for --map-file (e.g. '--no-tsne --no-pca')")
    ap.add_argument("--rounds", type=int, default=2, help="rounds per timed step; the best is kept (default 2)")
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args(argv)
    import faiss
    import sklearn
    import sklearn.manifold  # noqa: F401  (import the libraries before timing anything)

    table = Table()
    load0 = os.getloadavg()[0]
    gflops = sgemm_rate()
    if args.map_file:
        bench_map_file(args.map_file, args.texts, table, args.map_args.split())
    for K in [int(x) for x in args.models.split(",") if x and x != "none"]:
        reduced = K > args.full_limit
        N = args.reduced_texts if reduced else args.texts
        t0 = time.perf_counter()
        Q = make_Q(K, N)
        print(f"# K={K} N={N}: synthetic Q ({Q.nbytes / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        scale = args.texts / N
        bench_knn(Q, args.k, table, 1 if reduced else args.rounds, extrap_scale=scale, full_baselines=not reduced,
                  gflops=gflops)
        bench_pairwise(Q, table, full=not reduced, extrap_scale=scale)
        del Q
        gc.collect()
    if args.tsne != "none":
        for K in [int(x) for x in args.tsne.split(",") if x]:
            bench_tsne(K, args.reduced_texts if K > args.full_limit else args.texts, table, True, args.sklearn_limit)
    if args.map != "none":
        for K in [int(x) for x in args.map.split(",") if x]:
            bench_map_command(K, args.texts, args.k, table, args.rounds, with_reference=K <= args.full_limit)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"numpy {np.__version__}, faiss {faiss.__version__} (GPU: {neighbors.faiss_gpu_available()}), "
          f"scikit-learn {sklearn.__version__}; float32 GEMM 4096 x 4096 x 10000 in this run: {gflops:.0f} GFLOP/s")
    print(f"load average: {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end\n")
    print("| task | method | models K | texts N | wall time | CPU time | peak extra memory | time / ours | note |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for row in table:
        print(_format_row(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
