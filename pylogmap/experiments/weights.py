"""Weight-space distances along training checkpoints (method.md section 7, trajectory paper).

`||theta_t - theta_t0||^2` summed over every parameter, each difference formed and summed in float64
(bf16 parameters are upcast exactly first). Checkpoint weights are read from local model folders
or the local Hugging Face cache: safetensors files as numpy where the dtype allows (torch only for
bfloat16), `pytorch_model*.bin` through torch. `trajectories_map` in `pylogmap.analysis` fits the
diffusion exponents; `checkpoint_weight_distances` is the function it is handed for weight space.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from huggingface_hub import snapshot_download
from safetensors import safe_open
from tqdm import tqdm

from pylogmap.errors import PylogmapError


def _as_float64(x) -> np.ndarray:
    """A parameter (numpy array or torch tensor, any dtype incl. bf16) as a float64 numpy array."""
    if hasattr(x, "detach"):  # torch tensor: convert with its own methods
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def squared_weight_distance(a: Mapping[str, object], b: Mapping[str, object]) -> float:
    """`sum over parameters of ||a - b||^2`, each difference formed and summed in float64."""
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        raise PylogmapError(
            f"the checkpoints do not have the same parameters (e.g. {', '.join(only[:3])}); "
            f"weight distances need checkpoints of one architecture."
        )
    total = 0.0
    for name in sorted(a):
        x = _as_float64(a[name])
        y = _as_float64(b[name])
        if x.shape != y.shape:
            raise PylogmapError(f"parameter {name} has shape {x.shape} in one checkpoint and {y.shape} in another.")
        d = (x - y).ravel()
        total += float(np.dot(d, d))
    return total


def weight_window_distances(
    loaders: Sequence[Callable[[], Mapping[str, object]]], window: int = 10, *, cache: bool = False,
    progress: bool = False,
) -> np.ndarray:
    """`D[t0, t] = ||theta_t - theta_t0||^2` for each start and the next `window` checkpoints.

    `loaders[i]()` returns checkpoint i's state dict (name -> array/tensor). Without `cache`
    each start loads its reference once and each later checkpoint once (memory: two
    checkpoints); with `cache`, every checkpoint is loaded once and kept (small models).
    """
    T = len(loaders)
    kept: dict[int, Mapping[str, object]] = {}

    def get(i):
        if cache:
            if i not in kept:
                kept[i] = loaders[i]()
            return kept[i]
        return loaders[i]()

    D = np.full((T, T), np.nan)
    starts = range(T - 1)
    if progress:
        starts = tqdm(starts, desc="weight distances", unit="start")
    for a in starts:
        ref = get(a)
        for t in range(a + 1, min(T, a + window + 1)):
            D[a, t] = squared_weight_distance(ref, get(t))
    return D


def checkpoint_weight_distances(
    checkpoints: Sequence[tuple[str, str]], window: int = 10, *, progress: bool = False
) -> np.ndarray:
    """`weight_window_distances` over checkpoints given as (name, revision) rows of a map.

    Each checkpoint's folder is found first (a clear error when one is not available locally),
    then the weights are read start by start.
    """
    folders = [checkpoint_folder(name, revision) for name, revision in checkpoints]
    loaders = [lambda folder=folder: load_state_dict(folder) for folder in folders]
    return weight_window_distances(loaders, window, progress=progress)


def checkpoint_folder(name: str, revision: str) -> Path:
    """The local folder holding a checkpoint's weights, or a clear error."""
    p = Path(name)
    if p.is_dir() and not revision:
        return p
    try:
        return Path(snapshot_download(name, revision=revision or None, local_files_only=True))
    except Exception as err:  # noqa: BLE001 - turned into a message with the fix
        raise PylogmapError(
            f"the weights of {name}{'@' + revision if revision else ''} are not available locally "
            f"({type(err).__name__}); weight-space exponents need the checkpoints as local folders or "
            f"in the Hugging Face cache. Leave out --weights for log-likelihood exponents only."
        ) from err


def load_state_dict(folder) -> dict:
    """All tensors of a model folder (`*.safetensors`, else `pytorch_model*.bin`), by name.

    safetensors files are read as numpy where the dtype allows and through torch (imported
    here only) for bfloat16; `.bin` files need torch.
    """
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    out: dict = {}
    if files:
        for f in files:
            try:
                with safe_open(str(f), framework="np") as h:
                    for k in h.keys():
                        out[k] = h.get_tensor(k)
            except (TypeError, ValueError):  # bf16 has no numpy dtype
                with safe_open(str(f), framework="pt") as h:
                    for k in h.keys():
                        out[k] = h.get_tensor(k)
        return out
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if not bins:
        raise PylogmapError(f"no weights (*.safetensors or pytorch_model*.bin) in {folder}.")
    import torch

    for f in bins:
        out.update(torch.load(f, map_location="cpu", weights_only=True))
    return out
