"""PNG figures of the analyses (matplotlib, Agg backend, imported only when a plot is drawn).

matplotlib is an optional dependency (`pip install matplotlib`, or the `plots` extra): the
analyses and their tables work without it; asking for a figure without it is a clear error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pylogmap.errors import PylogmapError


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise PylogmapError(
            "drawing a PNG needs matplotlib, which is not installed; run 'pip install matplotlib' "
            "(or leave out --plot to get the tables only)."
        ) from err
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_error_curves(rows: list[dict], path) -> Path:
    """tau1 and tau2 (RMS over seeds) against the mean number of unique texts, per method."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    methods = sorted({r["method"] for r in rows}, key=["uniform", "ls", "kl"].index)
    for method in methods:
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["n_draws"])
        x = [r["unique_mean"] for r in rs]
        for ax, key in zip(axes, ("tau1", "tau2")):
            ax.plot(x, [r[key] for r in rs], marker=".", label=method.upper() if method != "uniform" else "uniform")
    for ax, key in zip(axes, ("tau1", "tau2")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("unique texts")
        ax.set_ylabel(f"{key} (RMS over seeds)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("Resampling error against the full text set")
    return _save(fig, path)


def plot_trajectories(results: list[dict], path) -> Path:
    """KL between consecutive members (bits/byte when known, else nats) with SE bars, and the
    diffusion exponent of each start, one line per trajectory."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for res in results:
        steps = np.asarray(res["positions"], dtype=float)
        unit = "kl_bpb" if "kl_bpb" in res["consecutive"] else "kl_nats"
        se = "se_bpb" if unit == "kl_bpb" else "se_nats"
        y = np.asarray(res["consecutive"][unit])
        e = np.asarray(res["consecutive"][se])
        axes[0].errorbar(steps[1:], y, yerr=e, marker=".", capsize=2, label=res["name"])
        for space, style in (("loglik", "-"), ("weights", "--")):
            d = res.get("diffusion", {}).get(space)
            if d is not None and len(d["t0"]):
                axes[1].plot(d["t0"], d["c"], style, marker=".", label=f"{res['name']} ({space})")
    axes[0].set_xlabel("step / layer (end of the pair)")
    axes[0].set_ylabel("KL, " + ("bits/byte" if any("kl_bpb" in r["consecutive"] for r in results) else "nats/text"))
    axes[0].set_yscale("log")
    axes[1].axhline(1.0, color="grey", lw=0.8)
    axes[1].set_xlabel("start t0")
    axes[1].set_ylabel("diffusion exponent c")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_interpolation(ab: np.ndarray, weight_xy: np.ndarray, loglik_xy: np.ndarray, path, disparity=None) -> Path:
    """The weight grid and the log-likelihood grid (PCA, Procrustes-aligned), side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, xy, title in ((axes[0], weight_xy, "weights"), (axes[1], loglik_xy, "log-likelihood (PCA)")):
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=ab[:, 0], cmap="viridis", s=30 + 80 * (ab[:, 1] - ab[:, 1].min()))
        for (a, b), (x, y) in zip(ab, xy):
            ax.annotate(f"{a:g},{b:g}", (x, y), fontsize=6, alpha=0.7)
        ax.set_title(title)
        ax.set_aspect("equal", adjustable="datalim")
    fig.colorbar(sc, ax=axes, label="a (marker size: b)")
    if disparity is not None:
        fig.suptitle(f"Procrustes disparity {disparity:.4f}")
    return _save(fig, path)
