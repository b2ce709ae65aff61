"""Weight interpolation of three models, built and scored (method.md section 8).

The merged models `theta(a, b) = (1 - a - b) theta0 + a theta1 + b theta2` on a grid of (a, b)
are built in weight space (torch), saved as model folders and scored through the real scorer
(`pylogmap.scoring.score_models`, so a rerun resumes); the grid of log-likelihood vectors is then
compared with the exact weight-space grid by `pylogmap.analysis` (`grid_weights`,
`weight_plane_coordinates`, `compare_grids`). torch and transformers are imported inside the
functions that use them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pylogmap.analysis import compare_grids, grid_weights, weight_plane_coordinates
from pylogmap.errors import ModelLoadError, PylogmapError
from pylogmap.scoring import row_names_in, score_models
from pylogmap.store import open_map


def _load_hf(spec: str, dtype):
    import transformers

    try:
        return transformers.AutoModelForCausalLM.from_pretrained(spec, dtype=dtype)
    except TypeError:  # transformers < 4.56 names it torch_dtype
        return transformers.AutoModelForCausalLM.from_pretrained(spec, torch_dtype=dtype)
    except Exception as err:  # noqa: BLE001 - shown to the user with the fix
        raise ModelLoadError(
            f"cannot load {spec!r} for interpolation ({type(err).__name__}: {err}); give a local "
            f"model folder (config.json + weights) or a hub id that is in the local cache."
        ) from err


def check_compatible(models, specs) -> None:
    """Same architecture class and the same parameter names and shapes, else a clear error."""
    arch = [type(m).__name__ for m in models]
    if len(set(arch)) != 1:
        raise PylogmapError(
            "interpolation needs three models of one architecture; got "
            + ", ".join(f"{s} ({a})" for s, a in zip(specs, arch))
            + ". Choose models fine-tuned from the same base."
        )
    sds = [m.state_dict() for m in models]
    names0 = set(sds[0])
    for s, sd in zip(specs[1:], sds[1:]):
        if set(sd) != names0:
            diff = sorted(set(sd) ^ names0)
            raise PylogmapError(f"{s} and {specs[0]} have different parameters (e.g. {', '.join(diff[:3])}).")
        for k, v in sd.items():
            if tuple(v.shape) != tuple(sds[0][k].shape):
                raise PylogmapError(
                    f"parameter {k} has shape {tuple(v.shape)} in {s} but {tuple(sds[0][k].shape)} in "
                    f"{specs[0]} (different sizes or vocabularies); interpolation needs equal shapes."
                )


def inner_products(models) -> tuple[float, float, float]:
    """(|d1|^2, |d2|^2, <d1, d2>) of `d1 = theta1 - theta0`, `d2 = theta2 - theta0`, in float64
    over the distinct parameters (tied weights counted once)."""
    import torch

    p = [dict(m.named_parameters()) for m in models]
    ip11 = ip22 = ip12 = 0.0
    with torch.no_grad():
        for k, w0 in p[0].items():
            d1 = p[1][k].double() - w0.double()
            d2 = p[2][k].double() - w0.double()
            ip11 += float((d1 * d1).sum())
            ip22 += float((d2 * d2).sum())
            ip12 += float((d1 * d2).sum())
    return ip11, ip22, ip12


def merge_state_dicts(sds, a: float, b: float) -> dict:
    """`(1-a-b) sd0 + a sd1 + b sd2` per tensor, computed in float32 (float64 for float64
    tensors) and cast back to the base dtype; non-float buffers must agree and are copied."""
    import torch

    out = {}
    with torch.no_grad():
        for k, t0 in sds[0].items():
            t1, t2 = sds[1][k], sds[2][k]
            if not torch.is_floating_point(t0):
                if not (torch.equal(t0, t1) and torch.equal(t0, t2)):
                    raise PylogmapError(f"the integer buffer {k} differs between the models; they cannot be merged.")
                out[k] = t0.clone()
                continue
            acc = torch.float64 if t0.dtype == torch.float64 else torch.float32
            m = (1.0 - a - b) * t0.to(acc) + a * t1.to(acc) + b * t2.to(acc)
            out[k] = m.to(t0.dtype)
    return out


def interpolate_models(
    base: str,
    model_a: str,
    model_b: str,
    *,
    texts,
    out,
    step: float = 0.2,
    lo: float = 0.0,
    hi: float = 1.0,
    work_dir=None,
    keep_models: bool = False,
    dtype: str = "fp32",
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Build, score and compare the merged models `(1-a-b) base + a model_a + b model_b`.

    Each merged model is written as a model folder under `work_dir` (default: `<out>.models/`),
    scored into the map file `out` by `pylogmap.scoring.score_models` (so a rerun resumes: finished
    merged models are not redone), and deleted unless `keep_models`. Returns a dict with the
    grid, the weight-space inner products and `compare_grids`'s results; the file also gets
    annotation columns `interp_a` and `interp_b`.
    """
    import torch
    import transformers

    out = Path(out)
    work = Path(work_dir) if work_dir is not None else out.with_name(out.name + ".models")
    ab = grid_weights(step, lo, hi)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype)
    if torch_dtype is None:
        raise PylogmapError(f"unknown dtype {dtype!r}; use fp32, bf16 or fp16.")
    specs = [base, model_a, model_b]
    models = [_load_hf(s, torch_dtype) for s in specs]
    check_compatible(models, specs)
    ip11, ip22, ip12 = inner_products(models)
    sds = [m.state_dict() for m in models]
    container = _load_hf(base, torch_dtype)

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    except Exception as err:  # noqa: BLE001
        raise ModelLoadError(f"cannot load the tokenizer of {base!r} ({err}); the base model folder needs one.") from err

    names = []
    work.mkdir(parents=True, exist_ok=True)
    iterator = tqdm(ab, desc="merged models", unit="model") if progress else ab
    for a, b in iterator:
        folder = work / f"interp_a{a:+.3f}_b{b:+.3f}"
        name = row_names_in(out, [str(folder)])[str(folder)]  # the row's name, when scored before
        if _already_scored(out, name):
            names.append(name)
            continue
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        container.load_state_dict(merge_state_dicts(sds, float(a), float(b)))
        container.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "pylogmap_interpolation.json").write_text(
            json.dumps({"base": base, "a_model": model_a, "b_model": model_b, "a": float(a), "b": float(b)})
        )
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        score_models(texts, [str(folder)], out, dtype=dtype, device=device, progress=False)
        names.append(row_names_in(out, [str(folder)])[str(folder)])
        if not keep_models:
            shutil.rmtree(folder, ignore_errors=True)

    with open_map(out, mode="r") as m:
        model_names = list(m.model_names())
        rows = [model_names.index(n) for n in names]
        L = m.loglik(rows=np.array(rows)).astype(np.float64)
        n_rows = m.n_models
    if not np.all(np.isfinite(L)):
        bad = [names[i] for i in range(len(names)) if not np.all(np.isfinite(L[i]))]
        raise PylogmapError(f"some merged models failed to score ({', '.join(bad[:3])}); see 'pylogmap info {out}'.")
    wxy = weight_plane_coordinates(ab, ip11, ip22, ip12)
    cmp = compare_grids(L, wxy)
    col_a = np.full(n_rows, np.nan)
    col_b = np.full(n_rows, np.nan)
    col_a[rows] = ab[:, 0]
    col_b[rows] = ab[:, 1]
    with open_map(out, mode="a") as m:
        m.set_annotations({"interp_a": col_a, "interp_b": col_b})
    return {
        "base": base,
        "model_a": model_a,
        "model_b": model_b,
        "ab": ab,
        "names": names,
        "inner_products": {"ip11": ip11, "ip22": ip22, "ip12": ip12},
        "weight_xy": wxy,
        **cmp,
    }


def _already_scored(out: Path, name: str) -> bool:
    """Whether the merged model `name` already has a fully finite row in `out` (resume)."""
    if not out.exists():
        return False
    with open_map(out, mode="r") as m:
        if name not in list(m.model_names()):
            return False
        i = list(m.model_names()).index(name)
        return bool(np.all(np.isfinite(m.loglik(rows=np.array([i])))))
