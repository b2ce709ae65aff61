"""Compute the map of a file: clip, double-centre, embed (t-SNE, PCA, optional UMAP) and index neighbours.

Steps (method.md sections 3-4): rows with missing scores or failed status are left out and
listed; L is clipped at tau (the 2 % quantile of the rows used, or the tau already stored in the
file, so that adding models keeps the old clipping); Q = double-centred L; t-SNE with the
published settings (perplexity 30, PCA init, squared Euclidean, seed 42; scikit-learn) below
2,000 models and openTSNE's FFT t-SNE from the map's own neighbour lists above (--tsne), and PCA;
the k nearest models of every model (exact by default: float32 GEMM candidates with a proven
margin, float64 ranking; FAISS on a GPU) with KL estimates and standard errors. A map whose Q
exceeds --memory is computed out of core (Q in a temporary file, read a block at a time).
Results go to /map in the same file in one atomic write. Nothing is recomputed when the scored
rows have not changed since the last run (use --force).
"""

from __future__ import annotations

import argparse
import json

from pylogmap import mapping
from pylogmap.errors import PylogmapError
from pylogmap.store import open_map


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the map file (.h5)")
    parser.add_argument("-k", type=int, default=10, help="neighbours stored per model (default 10; 0 = none)")
    parser.add_argument("--index", choices=["exact", "faiss", "numpy", "ivf-pca"], default="exact",
                        help="neighbour search: exact with the faster backend (default: FAISS on a GPU, float32 "
                        "GEMM tiles with a proven error margin and float64 ranking on the CPU; bf16 tiles "
                        "where the CPU has AMX and MKL is installed, see PYLOGMAP_GEMM), exact FAISS "
                        "IndexFlatL2, exact numpy tiles, or approximate PCA+IVF for very large maps (its recall "
                        "against exact search is measured and stored)")
    parser.add_argument("--no-gpu", action="store_true", help="never use a GPU for the neighbour search")
    parser.add_argument("--no-tsne", action="store_true", help="skip t-SNE")
    parser.add_argument("--no-pca", action="store_true", help="skip PCA")
    parser.add_argument("--umap", action="store_true", help="also compute UMAP (needs umap-learn)")
    parser.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default 30, capped for small maps)")
    parser.add_argument("--tsne", choices=["auto", "sklearn", "fft"], default="auto",
                        help="t-SNE method: scikit-learn with the published settings, openTSNE's FFT t-SNE from the "
                        "map's neighbour lists, or auto (default: scikit-learn below 2,000 models, FFT from there "
                        "and for out-of-core maps)")
    parser.add_argument("--tsne-iter", type=int, default=None,
                        help="t-SNE iterations (default 1000 for scikit-learn; for the FFT t-SNE 650, and 1000 from "
                        "20,000 models)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--new-tau", action="store_true",
                        help="recompute the clipping threshold from the current rows instead of reusing the stored one")
    parser.add_argument("--memory", type=float, default=2.0, metavar="GIB",
                        help="largest Q (models x texts x 4 bytes) kept in memory, in GiB (default 2); a larger map "
                        "is computed out of core in a temporary file under TMPDIR")
    parser.add_argument("--force", action="store_true", help="recompute even if the map is up to date")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    if args.k < 0:
        raise PylogmapError(f"-k must be 0 or more; got {args.k}.")
    if not args.memory > 0:
        raise PylogmapError(f"--memory must be a positive number of GiB; got {args.memory}.")
    embeddings = [e for e, skip in (("tsne", args.no_tsne), ("pca", args.no_pca)) if not skip]
    if args.umap:
        embeddings.append("umap")
    result = mapping.compute_map(
        args.file, embeddings=embeddings, k=args.k, index=args.index, gpu=False if args.no_gpu else "auto",
        force=args.force, new_tau=args.new_tau, perplexity=args.perplexity, tsne_iter=args.tsne_iter,
        tsne=args.tsne, seed=args.seed, memory_budget=int(args.memory * 2**30), progress=not (args.quiet or args.json),
    )
    with open_map(args.file) as mf:
        labels = mf.labels()
    if args.json:
        print(json.dumps(result.to_dict(labels), indent=2))
        return 0
    state = "computed" if result.computed else "up to date"
    print(f"map of {result.path}: {state}")
    print(f"  models   {result.n_used} on the map of {result.n_models} rows; {result.n_texts} texts, "
          f"mean {result.mean_bytes:.1f} bytes/text")
    print(f"  clipping tau = {result.tau:.6g} nats ({'reused from the map' if result.tau_source == 'map' else 'computed: 2% quantile'})")
    if result.embeddings:
        how = f" (t-SNE: {'openTSNE FFT' if result.tsne_method == 'fft' else 'scikit-learn'})" if result.tsne_method else ""
        print(f"  embeddings {', '.join(result.embeddings)}{how}")
    if result.out_of_core:
        print(f"  computed out of core (Q larger than --memory {args.memory:g} GiB)")
    if result.k:
        extra = f", recall@{result.k} vs exact = {result.recall:.3f}" if result.recall is not None else ""
        how = f"{result.index}, {result.backend}" if result.backend else result.index
        print(f"  neighbours k = {result.k} ({how}{extra})")
    if result.excluded:
        print(f"  left out {len(result.excluded)} row(s):")
        for r, why in list(result.excluded.items())[:20]:
            print(f"    {labels[r]}: {why}")
        if len(result.excluded) > 20:
            print(f"    ... and {len(result.excluded) - 20} more")
    return 0
