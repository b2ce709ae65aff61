"""2-D embeddings of the map: t-SNE (the published settings, or FFT for large maps), PCA, UMAP.

Each function takes Q ``[K, N]`` (rows = models) and returns float32 coordinates ``[K, 2]``
together with the parameters actually used (stored as attributes under ``/map`` so that a
map can be reproduced).

Two t-SNE methods, chosen by ``tsne_method``: ``"sklearn"`` (below, the published call, kept for
exact reproduction of the published 1,018-model map; the default below FFT_FROM_MODELS models)
and ``"fft"`` (tsne_fft.py: openTSNE from the map's own neighbour lists; the default from
FFT_FROM_MODELS models, and the only one for a map kept out of core). PCA is scikit-learn's for
maps in memory below PCA_BLOCKS_FROM models and pca_blocks.py's blockwise randomized SVD above
or out of core.

t-SNE follows the map paper's code (shimo-lab/modelmap, ``resampling-texts/tsne_Q.py``):
``sklearn.manifold.TSNE(n_components=2, perplexity=30, init="pca", metric="sqeuclidean",
random_state=42)``. Two documented details:

- With ``method="barnes_hut"`` scikit-learn squares the neighbour distances it gets from the
  metric, so ``metric="sqeuclidean"`` builds the input affinities from ``||q_i - q_j||^4``
  (``metric="euclidean"`` gives the textbook squared-Euclidean affinities). We keep the
  published call by default for comparability and offer ``metric="euclidean"``.
- scikit-learn requires ``perplexity < n_models``. For small maps the perplexity is capped at
  ``max(1, (K - 1) / 3)`` (so that the 3 x perplexity neighbours t-SNE looks at exist); the
  value used is returned and stored.

scikit-learn and umap are imported inside the functions.
"""

from __future__ import annotations

import numpy as np

from pylogmap.errors import PylogmapError
from pylogmap.mapping.pca_blocks import pca_blocks
from pylogmap.mapping.tsne_fft import neighbours_needed, tsne_fft

SMALL_MAP = 3000  # below this many models t-SNE runs single-threaded (see tsne)
TSNE_METHODS = ("auto", "sklearn", "fft")
FFT_FROM_MODELS = 2000  # "auto" t-SNE: scikit-learn below (the published 1,018-model map), FFT from here
PCA_BLOCKS_FROM = 20_000

TSNE_DEFAULTS = {
    "n_components": 2,
    "perplexity": 30.0,
    "init": "pca",
    "metric": "sqeuclidean",
    "random_state": 42,
    "max_iter": 1000,
    "learning_rate": "auto",
    "method": "barnes_hut",
}


def tsne_method(n_models: int, requested: str = "auto", *, out_of_core: bool = False) -> str:
    """The t-SNE that runs: ``requested`` unless "auto" (by size, see the module docstring)."""
    if requested not in TSNE_METHODS:
        raise PylogmapError(f"unknown t-SNE method {requested!r}; choose one of {', '.join(TSNE_METHODS)}.")
    if requested == "sklearn" and out_of_core:
        raise PylogmapError(
            "scikit-learn's t-SNE needs the whole map in memory, and this one is kept out of core; "
            "use --tsne fft (or auto), or raise --memory."
        )
    if requested != "auto":
        return requested
    return "fft" if out_of_core or n_models >= FFT_FROM_MODELS else "sklearn"


def _check(Q: np.ndarray, minimum: int = 3) -> np.ndarray:
    Q = np.asarray(Q)
    if Q.ndim != 2:
        raise PylogmapError(f"Q must be 2-D [models, texts]; got shape {Q.shape}.")
    if Q.shape[0] < minimum:
        raise PylogmapError(
            f"a 2-D map needs at least {minimum} models with complete scores; this one has {Q.shape[0]}. "
            "Score more models first."
        )
    if not np.isfinite(Q).all():
        raise PylogmapError("Q contains NaN or infinite entries; build it from the finished rows only.")
    return Q


def effective_perplexity(n_models: int, perplexity: float = 30.0) -> float:
    """The perplexity used for K models: the requested one, capped at ``max(1, (K-1)/3)``."""
    cap = max(1.0, (n_models - 1) / 3.0)
    return float(min(float(perplexity), cap))


def tsne(
    Q: np.ndarray,
    seed: int = 42,
    perplexity: float = 30.0,
    *,
    max_iter: int = 1000,
    metric: str = "sqeuclidean",
    n_jobs: int | None = None,
    return_params: bool = False,
):
    """t-SNE of the rows of Q with the published settings; float32 ``[K, 2]``.

    ``return_params=True`` also returns the dict of parameters used (perplexity after the
    small-map cap, seed, max_iter, metric, scikit-learn version, final KL of the embedding).
    """
    import sklearn
    from sklearn.manifold import TSNE

    Q = _check(Q)
    if metric not in ("sqeuclidean", "euclidean"):
        raise PylogmapError(f"unsupported t-SNE metric {metric!r}; use 'sqeuclidean' (published) or 'euclidean'.")
    if max_iter < 250:
        raise PylogmapError(f"t-SNE needs max_iter >= 250; got {max_iter}.")
    perp = effective_perplexity(Q.shape[0], perplexity)
    params = dict(TSNE_DEFAULTS, perplexity=perp, random_state=int(seed), max_iter=int(max_iter), metric=metric)
    model = TSNE(n_jobs=n_jobs, **params)
    X = np.asarray(Q, dtype=np.float64 if Q.dtype == np.float64 else np.float32)
    # Below a few thousand models the per-iteration OpenMP start-up of scikit-learn's
    # Barnes-Hut gradient (and BLAS threading in the PCA initialisation) costs more than it
    # saves, and collapses on a busy machine (20x slower on 2 shared cores); one thread is
    # faster there. The Barnes-Hut sums depend (in the last digits) on the thread count, so
    # small maps are also bit-reproducible across machines this way.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1 if Q.shape[0] < SMALL_MAP else None):
        coords = model.fit_transform(X)
    coords = np.asarray(coords, dtype=np.float32)
    if not return_params:
        return coords
    used = {
        **params,
        "embedding": "tsne",
        "perplexity_requested": float(perplexity),
        "seed": int(seed),
        "kl_divergence": float(model.kl_divergence_),
        "n_iter": int(getattr(model, "n_iter_", max_iter)),
        "sklearn_version": sklearn.__version__,
    }
    return coords, used


def pca(Q, n_components: int = 2, *, seed: int = 0, method: str = "auto", return_params: bool = False):
    """Principal components of the rows of Q (float32 ``[K, n_components]``).

    ``method``: "sklearn" (scikit-learn, Q in memory), "blocks" (pca_blocks: a block of rows at a
    time, any size, also an out-of-core Q) or "auto" (sklearn for an ndarray below
    PCA_BLOCKS_FROM rows, else blocks). Signs follow scikit-learn's deterministic convention, so
    repeated runs give identical coordinates. ``return_params=True`` adds the explained variance
    ratios.
    """
    import sklearn

    if method not in ("auto", "sklearn", "blocks"):
        raise PylogmapError(f"unknown PCA method {method!r}; choose auto, sklearn or blocks.")
    in_memory = isinstance(Q, np.ndarray)
    if method == "auto":
        method = "sklearn" if in_memory and Q.shape[0] < PCA_BLOCKS_FROM else "blocks"
    if method == "blocks":
        if Q.shape[0] < max(2, n_components):
            raise PylogmapError(
                f"a 2-D map needs at least {max(2, n_components)} models with complete scores; this one has "
                f"{Q.shape[0]}. Score more models first."
            )
        coords, ratio = pca_blocks(Q, n_components, seed=seed)
        params = {"svd_solver": "randomized, blockwise (pca_blocks)"}
    else:
        from sklearn.decomposition import PCA
        from threadpoolctl import threadpool_limits

        Q = _check(Q, minimum=max(2, n_components))
        model = PCA(n_components=n_components, random_state=seed)
        # LAPACK on small matrices: one thread is as fast and immune to busy cores (see tsne)
        with threadpool_limits(limits=1 if Q.shape[0] < SMALL_MAP else None):
            coords = np.asarray(model.fit_transform(np.asarray(Q, dtype=np.float64)), dtype=np.float32)
        ratio = [float(x) for x in model.explained_variance_ratio_]
        params = {"svd_solver": str(model._fit_svd_solver)}
    if not return_params:
        return coords
    return coords, {
        "embedding": "pca",
        "n_components": int(n_components),
        "seed": int(seed),
        "explained_variance_ratio": ratio,
        **params,
        "sklearn_version": sklearn.__version__,
    }


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def umap(
    Q: np.ndarray,
    seed: int = 42,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    return_params: bool = False,
):
    """UMAP of the rows of Q (needs the optional package umap-learn)."""
    try:
        import umap as umap_lib
    except ImportError as err:
        raise PylogmapError(
            "UMAP needs the optional package umap-learn, which is not installed; "
            "run 'pip install umap-learn' or use t-SNE/PCA (the default)."
        ) from err
    Q = _check(Q)
    nn = int(min(n_neighbors, Q.shape[0] - 1))
    model = umap_lib.UMAP(n_components=2, n_neighbors=nn, min_dist=min_dist, metric="euclidean", random_state=seed)
    coords = np.asarray(model.fit_transform(np.asarray(Q, dtype=np.float32)), dtype=np.float32)
    if not return_params:
        return coords
    return coords, {
        "embedding": "umap",
        "n_neighbors": nn,
        "min_dist": float(min_dist),
        "metric": "euclidean",
        "seed": int(seed),
        "umap_version": getattr(umap_lib, "__version__", "unknown"),
    }


EMBEDDINGS = {"tsne": tsne, "pca": pca, "umap": umap}

__all__ = [
    "EMBEDDINGS", "FFT_FROM_MODELS", "PCA_BLOCKS_FROM", "TSNE_DEFAULTS", "TSNE_METHODS", "effective_perplexity", "embed",
    "neighbours_needed", "pca", "tsne", "tsne_fft", "tsne_method", "umap", "umap_available",
]


def embed(Q: np.ndarray, method: str, **kwargs):
    """Run one embedding by name; returns ``(coords, params)``."""
    if method not in EMBEDDINGS:
        raise PylogmapError(f"unknown embedding {method!r}; choose one of {', '.join(EMBEDDINGS)}.")
    return EMBEDDINGS[method](Q, return_params=True, **kwargs)
