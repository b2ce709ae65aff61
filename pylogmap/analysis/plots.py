"""PNG figures of the analyses (matplotlib, Agg backend, imported only when a plot is drawn).

matplotlib is a dependency of pylogmap, imported only when a figure is drawn: the analyses and
their tables never load it, and a broken install without it is a clear error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pylogmap.errors import PylogmapError
from pylogmap.files import atomic_write


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
    """Write the figure as a PNG, atomically (`pylogmap.files.atomic_write`), and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_write(path) as (tmp,):
            fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def plot_error_curves(rows: list[dict], path) -> Path:
    """tau1 and tau2 (RMS over seeds) against the mean number of unique texts, per method."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8), layout="constrained")
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
    """One panel per kind present: KL between consecutive checkpoints (against the later step),
    KL between adjacent layers (against the upper layer), with SE bars (bits/byte when known,
    else nats per text), and the diffusion exponent of each start (log-likelihood: solid,
    weights: dashed)."""
    plt = _pyplot()
    ck = [r for r in results if r["kind"] == "checkpoints"]
    ly = [r for r in results if r["kind"] == "layers"]
    dif = [r for r in ck if r.get("diffusion")]
    panels = [p for p, have in (("checkpoints", ck), ("layers", ly), ("diffusion", dif)) if have]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), layout="constrained", squeeze=False)
    axes = dict(zip(panels, axes[0]))
    for kind, group, xlabel in (("checkpoints", ck, "step (end of the pair)"), ("layers", ly, "layer (upper of the pair)")):
        if kind not in axes:
            continue
        ax = axes[kind]
        bpb = all("kl_bpb" in r["consecutive"] for r in group)
        for res in group:
            pos = np.asarray(res["positions"], dtype=float)
            c = res["consecutive"]
            y = np.asarray(c["kl_bpb"] if bpb else c["kl_nats"])
            e = np.asarray(c["se_bpb"] if bpb else c["se_nats"])
            label = res["name"] + (f"@{res['revision']}" if res.get("revision") else "")
            ax.errorbar(pos[1:], y, yerr=e, marker=".", capsize=2, label=label)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("KL, " + ("bits/byte" if bpb else "nats/text"))
        ax.set_title("consecutive checkpoints" if kind == "checkpoints" else "adjacent layers (logit lens)")
    if "diffusion" in axes:
        ax = axes["diffusion"]
        for res in dif:
            for space, style in (("loglik", "-"), ("weights", "--")):
                d = res["diffusion"].get(space)
                if d is not None and len(d["t0"]):
                    ax.plot(d["t0"], d["c"], style, marker=".", label=f"{res['name']} ({space})")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xlabel("start step t0")
        ax.set_ylabel("diffusion exponent c")
        ax.set_title("log D = c log(t - t0) + b")
    for ax in axes.values():
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_interpolation(ab: np.ndarray, weight_xy: np.ndarray, loglik_xy: np.ndarray, path, disparity=None) -> Path:
    """The weight grid and the log-likelihood grid (PCA, Procrustes-aligned), side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
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
