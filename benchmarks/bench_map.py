"""Benchmark of the map side: all-pairs KL, k nearest neighbours and t-SNE.

For K synthetic models x N texts (pylogmap.synthetic: families, heavy tail, realistic scale):
- all-pairs KL (geometry.iter_pairwise_kl, blockwise float64 Gram) vs the published code's
  one-shot ``sq_i + sq_j - 2 X X^T`` (numpy float64, full K x K in memory);
- k-NN of every model (k = 10, self excluded, float64 re-ranked): FAISS IndexFlatL2 ("exact"),
  numpy symmetric blocks ("numpy"), approximate PCA+IVF ("ivf-pca", recall@k vs exact) and a
  numpy brute-force baseline (full float64 distance matrix + argpartition);
- t-SNE (scikit-learn, the published settings) for the sizes given with --tsne.
Memory = the larger of the peak resident set size above the resident size before the step (Linux
VmHWM, reset with /proc/self/clear_refs; includes FAISS's own allocations) and tracemalloc's peak
(numpy allocations that reuse freed heap). Time = wall clock, and CPU
seconds of the process (all threads): on a machine shared with other jobs the wall time grows with
the load, the CPU time does not (on an idle machine, wall ~ CPU / threads used).

Sizes that would take too long on a small machine are extrapolated from a timed slice of query
rows and marked "(extrapolated)": the exact all-vs-all cost is K^2 N whatever the method.

Examples:
  python benchmarks/bench_map.py                          # K = 1k, 10k; N = 10k; t-SNE 1k, 10k
  python benchmarks/bench_map.py --models 1000 --tsne 1000 --texts 2000   # quick
  python benchmarks/bench_map.py --models 100000 --texts 1000 --tsne none --kinds numpy,ivf-pca
      # 100k models scaled to N = 1000 texts (as run for BENCHMARKS.md on 2 shared cores);
      # N = 10000 works the same way (Q is 4 GB, ~6 GB peak) but takes about 10x longer
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pylogmap.mapping import geometry, neighbors  # noqa: E402


def _trim() -> None:
    """Give freed heap memory back to the OS so that the next peak shows in the RSS."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


class Measure:
    """Wall time and peak extra resident memory of a block."""

    def __enter__(self):
        gc.collect()
        _trim()
        tracemalloc.start()
        self.linux = os.path.exists("/proc/self/clear_refs")
        if self.linux:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                self.linux = False
        self.rss0 = _status().get("VmRSS", 0) if self.linux else 0
        self.c0 = time.process_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss = (_status().get("VmHWM", 0) - self.rss0) if self.linux else 0
        self.peak = max(rss, traced)


def _fmt_bytes(n) -> str:
    if n != n:
        return "n/a"
    n = max(0, n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit in ("B", "KiB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _format_row(row) -> str:
    task, method, K, N, sec, cpu, mem, extra = row
    t = "n/a" if sec != sec else f"{sec:.2f} s" + (" (extrap.)" if extra else "")
    c = "n/a" if cpu != cpu else f"{cpu:.2f} s"
    mem_s = _fmt_bytes(mem) + (" (needed)" if extra and sec != sec else "")
    return f"| {task} | {method} | {K:,} | {N:,} | {t} | {c} | {mem_s} |"


class _Rows(list):
    """Rows of the table, also printed to stderr as they come (long runs show progress)."""

    def append(self, row):
        super().append(row)
        print(_format_row(row), file=sys.stderr, flush=True)


def make_Q(K: int, N: int, seed: int = 0) -> np.ndarray:
    from pylogmap.testing import synthetic_population

    pop = synthetic_population(K, N, n_families=max(5, K // 200), seed=seed)
    L = pop.L
    del pop
    L, _ = geometry.clip(L, out=L)
    return geometry.double_center(L, out=L)


def pairwise_published(Q: np.ndarray) -> np.ndarray:
    """The published code's pwd(): full float64 Gram, K x K at once."""
    X = Q.astype(np.float64)
    sq = np.sum(X**2, axis=1)
    d = sq[:, None] + sq[None, :] - 2 * (X @ X.T)
    return np.maximum(d, 0) / (2 * Q.shape[1])


def knn_published(Q: np.ndarray, k: int) -> np.ndarray:
    D = pairwise_published(Q)
    np.fill_diagonal(D, np.inf)
    return np.argpartition(D, k - 1, axis=1)[:, :k]


def bench_pairwise(Q, rows_limit, rows_out):
    K, N = Q.shape
    if K <= rows_limit:
        with Measure() as m:
            P = geometry.pairwise_kl(Q)
        del P
        rows_out.append(("all-pairs KL", "pylogmap pairwise_kl (symmetric blocks, float64)", K, N, m.seconds, m.cpu,
                         m.peak, False))
    # streaming (iter_pairwise_kl): the way to go through all pairs of a map too big for a K x K result
    n_rows = min(K, 2048)
    with Measure() as m:
        for r, blk in geometry.iter_pairwise_kl(Q, np.arange(n_rows)):
            float(blk[0, 0])
    scale = K / n_rows
    rows_out.append(("all-pairs KL", "pylogmap iter_pairwise_kl (streamed row blocks, float64)", K, N, m.seconds * scale,
                     m.cpu * scale, m.peak, scale > 1))
    if K <= rows_limit:
        with Measure() as mp:
            P = pairwise_published(Q)
        rows_out.append(("all-pairs KL", "numpy one-shot float64 (published)", K, N, mp.seconds, mp.cpu, mp.peak, False))
        del P
    else:
        need = K * K * 8 * 2 + K * N * 8
        rows_out.append(("all-pairs KL", "numpy one-shot float64 (published)", K, N, float("nan"), float("nan"), need, True))


def bench_knn(Q, k, rows_limit, rows_out, kinds, recall_queries=200):
    K, N = Q.shape
    exact_ref = None
    for kind in kinds:
        extrapolate = kind in ("exact", "numpy") and K > rows_limit
        if extrapolate:
            queries = np.arange(min(K, 2048))
            with Measure() as m:
                neighbors.nearest_neighbors(Q, k, index=kind, gpu="auto", queries=queries)
            scale = K / queries.size
            if kind == "numpy":
                scale /= 2  # all-vs-all uses the symmetric blocks: half the products of a query slice
            rows_out.append((f"k-NN k={k}", kind, K, N, m.seconds * scale, m.cpu * scale, m.peak, True))
            continue
        with Measure() as m:
            idx, _ = neighbors.nearest_neighbors(Q, k, index=kind, gpu="auto")
        label = kind
        if kind == "ivf-pca":
            rng = np.random.default_rng(1)
            qs = np.sort(rng.choice(K, size=min(recall_queries, K), replace=False))
            ref, ref_d = neighbors.brute_force_neighbors(Q, k, qs)
            rec = neighbors.recall(idx[qs], ref)
            _, got_d = neighbors.nearest_neighbors(Q, k, index="ivf-pca", gpu="auto", queries=qs)
            ratio = float(np.mean(got_d[:, -1] / ref_d[:, -1]))
            p = neighbors.ApproxParams().resolved(K, N)
            label = (f"ivf-pca (PCA{p['pca_dim']}, IVF{p['nlist']}, nprobe {p['nprobe']}; recall@{k} {rec:.3f}, "
                     f"k-th KL x{ratio:.3f})")
        elif exact_ref is None:
            exact_ref = idx
        rows_out.append((f"k-NN k={k}", label, K, N, m.seconds, m.cpu, m.peak, False))
    if K <= rows_limit:
        with Measure() as m:
            base = knn_published(Q, k)
        rows_out.append((f"k-NN k={k}", "numpy brute force float64 (full matrix)", K, N, m.seconds, m.cpu, m.peak, False))
        if exact_ref is not None:
            same = np.mean([set(a) == set(b) for a, b in zip(base.tolist(), exact_ref.tolist())])
            print(f"# K={K}: exact FAISS neighbour sets equal brute force for {same:.4%} of models", file=sys.stderr)
    with Measure() as m:
        table = neighbors.with_kl(Q, np.arange(min(K, 10_000)), np.tile(np.arange(1, k + 1), (min(K, 10_000), 1)))
    scale = K / min(K, 10_000)
    rows_out.append((f"KL+SE of k={k} lists", "geometry.kl_estimate_lists", K, N, m.seconds * scale, m.cpu * scale, m.peak, scale > 1))
    del table


def bench_tsne(K, N, rows_out):
    from pylogmap.mapping import embedding

    Q = make_Q(K, N, seed=2)
    with Measure() as m:
        embedding.tsne(Q)
    rows_out.append(("t-SNE", "scikit-learn, published settings (1000 iter)", K, N, m.seconds, m.cpu, m.peak, False))
    del Q


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="1000,10000", help="comma-separated K values (default 1000,10000)")
    ap.add_argument("--texts", type=int, default=10_000, help="N texts (default 10000)")
    ap.add_argument("--tsne", default="1000,10000", help="K values for t-SNE, or 'none'")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--full-limit", type=int, default=10_000,
                    help="largest K computed in full; above it, exact methods are timed on 2048 query rows and extrapolated")
    ap.add_argument("--kinds", default="exact,numpy,ivf-pca", help="k-NN indexes to time")
    args = ap.parse_args(argv)
    # import the libraries before timing anything
    import faiss  # noqa: F401
    import sklearn.decomposition  # noqa: F401
    import sklearn.manifold  # noqa: F401
    import sklearn.utils.extmath  # noqa: F401
    import threadpoolctl  # noqa: F401

    rows: list[tuple] = _Rows()
    kinds = [x for x in args.kinds.split(",") if x]
    for K in [int(x) for x in args.models.split(",") if x]:
        t0 = time.perf_counter()
        Q = make_Q(K, args.texts)
        print(f"# K={K} N={args.texts}: synthetic Q ({Q.nbytes / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        bench_pairwise(Q, args.full_limit, rows)
        bench_knn(Q, args.k, args.full_limit, rows, kinds)
        del Q
        gc.collect()
    if args.tsne != "none":
        for K in [int(x) for x in args.tsne.split(",") if x]:
            bench_tsne(K, args.texts, rows)
    import faiss
    import sklearn

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"numpy {np.__version__}, faiss {faiss.__version__} (GPU: {neighbors.faiss_gpu_available()}), "
          f"scikit-learn {sklearn.__version__}\n")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}\n")
    print("| task | method | models K | texts N | wall time | CPU time | peak extra memory |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(_format_row(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
