"""t-SNE of a large map with openTSNE's FFT-accelerated gradient, from the map's own neighbours.

scikit-learn's Barnes-Hut t-SNE searches the neighbours again over the 10,000-dimensional rows
and costs minutes at 10,000 models; at 100,000 it is out of reach. Here the affinities come
from the neighbour lists the map has already computed (neighbors.map_neighbors: the
``3 x perplexity`` nearest of every model, as t-SNE uses), openTSNE builds the perplexity-
calibrated, symmetrised affinity matrix from them (``PerplexityBasedNN`` over
``PrecomputedNeighbors``) and optimises with the FFT-interpolated gradient (Linderman et al.
2019): 250 iterations of early exaggeration 12 at learning rate K / 12, then the rest at K
(openTSNE's "auto").

Three choices differ from openTSNE's defaults, each measured (BENCHMARKS.md, "t-SNE after
tuning"). The iterations after the exaggeration depend on the size (default_iterations): 400
below 20,000 models (650 in all), where on 10,000-model maps the issue's quality measure (the
10 nearest in KL kept among the 10 nearest on the map) has levelled off (0.111 at 400 and at 500
on two maps, scikit-learn 0.109-0.111) and the last 100 are the dearest (the FFT grid grows with
the map's span); 750 from 20,000 models (1,000 in all, scikit-learn's count), because larger
maps settle more slowly (on 100,000 models the measure rose from 0.315 at 400 to 0.338 at 750).
Momentum 0.5 while exaggerated and 0.8 after (scikit-learn's and the original t-SNE's):
openTSNE's 0.8 throughout spread the 10,000-model map 6 % wider at the same quality. And while
exaggerated the FFT grid has at least 10 rather than 50 intervals per axis, when the points span
about 20 units: the FFT's accuracy is set by the interval width against the kernel's unit scale,
and one interval per unit (``ints_in_interval=1``, kept in both phases) is openTSNE's own
accuracy in the second phase.

Same conventions as embedding.tsne: ``metric="sqeuclidean"`` (the published call) gives openTSNE
the squared distances, which it squares again, exactly like scikit-learn's Barnes-Hut does with
that metric; ``metric="euclidean"`` gives the textbook affinities. The initialisation is the
PCA of Q scaled to a standard deviation of 1e-4 (scikit-learn's ``init="pca"``). With the same
inputs and seed the coordinates are identical run to run and for any thread count (openTSNE's
threads split the attractive forces by point; the FFT part runs in one thread). ``n_jobs``
(default: the cores this process may use) halved the exaggeration phase on 2 idle cores and cost
under 10 % when another process held one of them.

openTSNE is imported inside the function.
"""

from __future__ import annotations

import os

import numpy as np

from pylogmap.errors import PylogmapError

EARLY_ITER = 250
SMALL_ITER = 650  # 250 exaggerated + 400, below LARGE_FROM models (see the module docstring)
LARGE_ITER = 1000  # 250 + 750 from LARGE_FROM models
LARGE_FROM = 20_000
EXAGGERATION = 12.0
EARLY_MOMENTUM = 0.5  # scikit-learn's, while exaggerated
MOMENTUM = 0.8
EARLY_MIN_INTERVALS = 10  # FFT grid while exaggerated: >= 1 interval per unit of the map


def neighbours_needed(perplexity: float) -> int:
    """Neighbours per model the affinities use: 3 x perplexity (t-SNE's usual cut)."""
    return int(np.ceil(3.0 * perplexity))


def default_iterations(n_models: int) -> int:
    """Iterations in all (250 of them exaggerated) for a map of ``n_models``: see the module docstring."""
    return LARGE_ITER if n_models >= LARGE_FROM else SMALL_ITER


def tsne_fft(
    wide_idx: np.ndarray,
    wide_sqdist: np.ndarray,
    init: np.ndarray,
    *,
    perplexity: float,
    seed: int = 42,
    max_iter: int | None = None,
    metric: str = "sqeuclidean",
    n_jobs: int | None = None,
):
    """``(coords float32 [K, 2], params dict)`` from neighbour lists and a 2-D initialisation;
    ``max_iter`` defaults to default_iterations(K), ``n_jobs`` to the cores this process may use."""
    try:
        import openTSNE
        from openTSNE.affinity import PerplexityBasedNN
        from openTSNE.nearest_neighbors import PrecomputedNeighbors
    except ImportError as err:  # pragma: no cover - openTSNE is a dependency
        raise PylogmapError("the FFT t-SNE needs openTSNE; run 'pip install openTSNE' or use --tsne sklearn.") from err
    if metric not in ("sqeuclidean", "euclidean"):
        raise PylogmapError(f"unsupported t-SNE metric {metric!r}; use 'sqeuclidean' (published) or 'euclidean'.")
    if max_iter is None:
        max_iter = default_iterations(wide_idx.shape[0])
    if max_iter <= EARLY_ITER:
        raise PylogmapError(f"the FFT t-SNE needs more than {EARLY_ITER} iterations; got {max_iter}.")
    if n_jobs is None:
        n_jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if np.any(wide_idx < 0):
        raise PylogmapError("every model needs a full neighbour list for the t-SNE affinities.")
    sq = np.maximum(np.asarray(wide_sqdist, dtype=np.float64), 0.0)
    dist = sq if metric == "sqeuclidean" else np.sqrt(sq)
    # The affinities are scale-free (each point's bandwidth is calibrated to the perplexity), but
    # openTSNE's bandwidth search starts from 1 with a bounded number of steps: distances of
    # 1e4-1e7 (2 N KL for thousands of texts) made it stop far from the perplexity asked.
    scale = float(np.median(dist[:, -1]))
    if scale > 0:
        dist = dist / scale
    knn = PrecomputedNeighbors(np.ascontiguousarray(wide_idx, dtype=np.int64), np.ascontiguousarray(dist))
    perp = float(min(perplexity, wide_idx.shape[1] / 3.0))
    affinities = PerplexityBasedNN(knn_index=knn, perplexity=perp, n_jobs=n_jobs, verbose=False)
    init = np.asarray(init, dtype=np.float64)
    std = float(np.std(init[:, 0]))
    init = init / std * 1e-4 if std > 0 else init
    emb = openTSNE.TSNEEmbedding(
        np.ascontiguousarray(init),
        affinities,
        negative_gradient_method="fft",
        learning_rate="auto",
        n_jobs=n_jobs,
        random_state=int(seed),
        verbose=False,
    )
    emb = emb.optimize(EARLY_ITER, exaggeration=EXAGGERATION, momentum=EARLY_MOMENTUM,
                       min_num_intervals=EARLY_MIN_INTERVALS)
    emb = emb.optimize(int(max_iter) - EARLY_ITER, momentum=MOMENTUM)
    coords = np.asarray(emb, dtype=np.float32)
    params = {
        "embedding": "tsne",
        "method": "fft",
        "implementation": f"openTSNE {openTSNE.__version__}",
        "perplexity": perp,
        "metric": metric,
        "neighbors": int(wide_idx.shape[1]),
        "neighbors_from": "the map's neighbour search (float32 bracket midpoints)",
        "init": "pca",
        "early_exaggeration": EXAGGERATION,
        "early_exaggeration_iter": EARLY_ITER,
        "early_min_num_intervals": EARLY_MIN_INTERVALS,
        "momentum": [EARLY_MOMENTUM, MOMENTUM],
        "max_iter": int(max_iter),
        "learning_rate": "auto: K / 12 while exaggerated, then K",
        "seed": int(seed),
        "n_jobs": int(n_jobs),
        "kl_divergence": float(emb.kl_divergence),
    }
    return coords, params
