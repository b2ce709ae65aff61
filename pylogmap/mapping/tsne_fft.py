"""t-SNE of a large map with openTSNE's FFT-accelerated gradient, from the map's own neighbours.

scikit-learn's Barnes-Hut t-SNE searches the neighbours again over the 10,000-dimensional rows
and costs minutes at 10,000 models; at 100,000 it is out of reach. Here the affinities come
from the neighbour lists the map has already computed (neighbors.map_neighbors: the
``3 x perplexity`` nearest of every model, as t-SNE uses), openTSNE builds the perplexity-
calibrated, symmetrised affinity matrix from them (``PerplexityBasedNN`` over
``PrecomputedNeighbors``) and optimises with the FFT-interpolated gradient (Linderman et al.
2019): 250 iterations of early exaggeration 12 at learning rate K / 12, then the rest at K
(openTSNE's "auto").

Same conventions as embedding.tsne: ``metric="sqeuclidean"`` (the published call) gives openTSNE
the squared distances, which it squares again, exactly like scikit-learn's Barnes-Hut does with
that metric; ``metric="euclidean"`` gives the textbook affinities. The initialisation is the
PCA of Q scaled to a standard deviation of 1e-4 (scikit-learn's ``init="pca"``). With the same
inputs, seed and thread count the coordinates are identical run to run; compute_map uses one
thread (on 2 shared cores openTSNE's second thread made each iteration 2-3 times slower).

openTSNE is imported inside the function.
"""

from __future__ import annotations

import numpy as np

from pylogmap.errors import PylogmapError

EARLY_ITER = 250


def neighbours_needed(perplexity: float) -> int:
    """Neighbours per model the affinities use: 3 x perplexity (t-SNE's usual cut)."""
    return int(np.ceil(3.0 * perplexity))


def tsne_fft(
    wide_idx: np.ndarray,
    wide_sqdist: np.ndarray,
    init: np.ndarray,
    *,
    perplexity: float,
    seed: int = 42,
    max_iter: int = 750,
    metric: str = "sqeuclidean",
    n_jobs: int = 1,
):
    """``(coords float32 [K, 2], params dict)`` from neighbour lists and a 2-D initialisation."""
    try:
        import openTSNE
        from openTSNE.affinity import PerplexityBasedNN
        from openTSNE.nearest_neighbors import PrecomputedNeighbors
    except ImportError as err:  # pragma: no cover - openTSNE is a dependency
        raise PylogmapError("the FFT t-SNE needs openTSNE; run 'pip install openTSNE' or use --tsne sklearn.") from err
    if metric not in ("sqeuclidean", "euclidean"):
        raise PylogmapError(f"unsupported t-SNE metric {metric!r}; use 'sqeuclidean' (published) or 'euclidean'.")
    if max_iter <= EARLY_ITER:
        raise PylogmapError(f"the FFT t-SNE needs more than {EARLY_ITER} iterations; got {max_iter}.")
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
    model = openTSNE.TSNE(
        n_components=2,
        perplexity=perp,
        learning_rate="auto",
        early_exaggeration_iter=EARLY_ITER,
        early_exaggeration=12.0,
        n_iter=int(max_iter) - EARLY_ITER,
        negative_gradient_method="fft",
        n_jobs=n_jobs,
        random_state=int(seed),
        verbose=False,
    )
    emb = model.fit(affinities=affinities, initialization=np.ascontiguousarray(init))
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
        "early_exaggeration": 12.0,
        "early_exaggeration_iter": EARLY_ITER,
        "max_iter": int(max_iter),
        "learning_rate": "auto: K / 12 while exaggerated, then K",
        "seed": int(seed),
        "n_jobs": int(n_jobs),
        "kl_divergence": float(emb.kl_divergence),
    }
    return coords, params
