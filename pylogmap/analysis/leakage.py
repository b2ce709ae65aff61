"""Data-leakage hints (method.md section 8): texts, or whole text sources, on which a model's
log-likelihood is anomalously high relative to what the map predicts for it.

The map predicts a model's double-centred vector q_i by the mean of its k nearest models' vectors
(nearest in Q, itself excluded). The residual `r_ik = Q_ik - mean_{j in NN(i)} Q_jk` is positive
where model i finds text k easier than its neighbours do. Residuals are put on a common scale
per text by their robust spread across all models (1.4826 x median absolute deviation), so
`z_ik` is "how many typical deviations easier than expected". Texts with large z, and sources
whose texts have a high mean z (with a t statistic), hint that the model saw those texts (or that
source) in training. These are hints for a human to follow up, not proof.

numpy only; `leakage_map` works on a map file's data.
"""

from __future__ import annotations

import numpy as np

from pylogmap.analysis._mapdata import clipped_and_centred, require_used
from pylogmap.errors import PylogmapError


def neighbour_residuals(Q: np.ndarray, k: int = 10) -> np.ndarray:
    """`Q - (mean of each row's k nearest other rows)`, float64 `[K, N]` (squared Euclidean)."""
    Q = np.asarray(Q, dtype=np.float64)
    K = Q.shape[0]
    if K < 3:
        raise PylogmapError(f"leakage hints need at least 3 fully scored models, the map has {K}.")
    k = min(k, K - 1)
    sq = np.einsum("ij,ij->i", Q, Q)
    D = sq[:, None] + sq[None, :] - 2.0 * (Q @ Q.T)
    np.fill_diagonal(D, np.inf)
    nn = np.argsort(D, axis=1, kind="stable")[:, :k]
    return Q - Q[nn].mean(axis=1)


def robust_z(R: np.ndarray) -> np.ndarray:
    """Residuals divided, per text (column), by 1.4826 x their median absolute deviation across
    models (the standard deviation for normal data, insensitive to the few leaking models)."""
    R = np.asarray(R, dtype=np.float64)
    med = np.median(R, axis=0)
    mad = 1.4826 * np.median(np.abs(R - med), axis=0)
    scale = np.where(mad > 0, mad, np.nan)
    return (R - med) / scale


def source_summary(z: np.ndarray, sources) -> list[dict]:
    """Per source: number of texts, mean z, and the t statistic of that mean (mean / SE);
    sorted by t, largest first."""
    z = np.asarray(z, dtype=np.float64)
    sources = np.asarray([str(s) for s in sources], dtype=object)
    out = []
    for s in sorted(set(sources.tolist())):
        v = z[(sources == s) & np.isfinite(z)]
        if len(v) == 0:
            continue
        se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan
        out.append({"source": s, "n_texts": int(len(v)), "mean_z": float(v.mean()),
                    "t": float(v.mean() / se) if se and np.isfinite(se) and se > 0 else float("nan")})
    out.sort(key=lambda r: -np.nan_to_num(r["t"], nan=-np.inf))
    return out


def leakage_map(data, model: str, *, k: int = 10, top: int = 20, texts=None) -> dict:
    """Leakage hints for one model of a map (`_mapdata.MapData`): its `top` texts by z and the
    per-source summary. `texts` (a TextSet) adds sources and a preview of each text."""
    used = require_used(data, 3, "leakage hints")
    hits = [i for i in used if data.labels[i] == model] or [i for i in used if data.names[i] == model]
    if len(hits) != 1:
        raise PylogmapError(
            f"{model!r} names {len(hits)} fully scored rows of the map; give one display label "
            f"(see 'pylogmap info')."
        )
    _, Q, _ = clipped_and_centred(data.L[used], data.tau)
    z_all = robust_z(neighbour_residuals(Q, k))
    row = int(np.nonzero(used == hits[0])[0][0])
    z = z_all[row]
    order = np.argsort(-np.nan_to_num(z, nan=-np.inf), kind="stable")[:top]
    sources = list(texts.sources) if texts is not None else [""] * data.n_texts
    top_rows = [
        {"text": int(t), "z": float(z[t]), "source": sources[t],
         "preview": (texts.texts[t][:80].replace("\n", " ") if texts is not None else "")}
        for t in order
    ]
    return {"model": data.labels[hits[0]], "k": int(min(k, len(used) - 1)), "top_texts": top_rows,
            "sources": source_summary(z, sources) if texts is not None else [], "z": z}
