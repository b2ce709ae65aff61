"""Per-token log-probabilities from LM-head outputs, without a `[rows, vocab]` result.

`token_logprobs(logits, targets)` returns, for every row n, the fp32 value

    logp[n] = y[n, t_n] - logsumexp(y[n, :]),   y = softcap * tanh(scale * x / softcap)

(`scale` and `softcap` each optional; scale first), and optionally the entropy of softmax(y[n]).
It is the heart of scoring: the scorer feeds it the LM head's output one bounded block of rows at a
time (see `pylogmap.head`), so no `[batch, seq, vocab]` log-softmax ever exists.

The work is done by the compiled kernels (one pass over each row, online max and sum of
exponentials, fp32 accumulation): `pylogmap.kernels._core` on CPU tensors and `pylogmap.kernels._cuda` on CUDA
tensors, on the current CUDA stream. This module validates the tensors, allocates the outputs
with torch and hands raw pointers to the extension. Without the CPU extension (a source checkout
that was not built) a pure-torch path computes the same numbers, with a warning. A CUDA tensor
without the CUDA extension is an error by default (a silent 10x slower GPU job is worse); set
PYLOGMAP_TORCH_FALLBACK=1 to accept the torch path there too.

No autograd: the results are plain tensors without a graph (scoring needs none); inference-mode
tensors and `torch.no_grad()` work.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from typing import Any

import torch

from pylogmap.kernels import _native

__all__ = ["token_logprobs", "native_status", "reference_token_logprobs"]

# dtype codes shared with csrc/kernel_args.h
_LOGITS_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}
_TARGET_CODES = {torch.int32: 0, torch.int64: 1}

# The torch path works on row blocks whose fp32 copy stays below this many bytes.
_TORCH_BLOCK_BYTES = 64 * 2**20

_warned_fallback = False


def native_status() -> dict[str, Any]:
    """What of the native part was built and loads here, and why not.

    Keys: `core_loaded` (bool), `core_error` (str or None), `cuda_built` (bool: the package was
    compiled with its CUDA module), `cuda_loaded` (bool: `pylogmap.kernels._cuda` imports), `cuda_error`
    (why not, or None), `build` (the CPU module's build information: CUDA mode, compiler and
    architectures, OpenMP, CPU variants), and when loaded `cpu_variant` (the SIMD variant in use)
    and `cuda_runtime` (driver/runtime versions and device count, or the reason CUDA cannot run).
    """
    return _native.status()


def token_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    softcap: float | None = None,
    scale: float | None = None,
    entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each row's target token, in one pass over the logits.

    Args:
        logits: `[N, V]` bf16, fp16 or fp32, on CPU or CUDA; the last dimension contiguous, rows
            any stride >= V (a slice of a wider buffer is fine).
        targets: `[N]` int32 or int64 on the same device, each in `[0, V)`.
        softcap: final-logit soft-cap c > 0: y = c * tanh(x / c) (Gemma 2 uses 30).
        scale: multiply the logits by this first (e.g. a model's logit scale).
        entropy: also return the entropy (nats) of each row's distribution.

    Returns:
        fp32 `[N]` log-probabilities on the logits' device, or `(logp, entropy)` when `entropy`.

    Raises:
        TypeError / ValueError: naming the offending argument (dtype, shape, device, stride,
            target range) and what to do about it.
        RuntimeError: a CUDA tensor where the CUDA module is not available, or a CUDA error.
    """
    _check(logits, targets, softcap, scale, entropy)
    out = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
    ent = torch.empty_like(out) if entropy else None
    _check_target_range(targets, logits.shape[1])
    _run(logits, targets, out, ent, softcap, scale)
    return (out, ent) if entropy else out


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
def _check(logits, targets, softcap, scale, entropy) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.layout != torch.strided:
        raise ValueError("logits must be a dense (strided) tensor, not sparse; call .to_dense()")
    if logits.dtype not in _LOGITS_CODES:
        raise TypeError(
            f"logits dtype {logits.dtype} is not supported: use torch.float32, torch.bfloat16 or "
            "torch.float16 (convert with .float())"
        )
    if logits.dim() != 2:
        raise ValueError(
            f"logits must be 2-D [N, V], got {logits.dim()}-D shape {tuple(logits.shape)}; "
            "flatten leading dimensions with logits.reshape(-1, logits.shape[-1])"
        )
    n, v = logits.shape
    if logits.device.type not in ("cpu", "cuda"):
        raise ValueError(f"logits on device type {logits.device.type!r} are not supported: use a CPU or CUDA tensor")
    _check_targets(targets, n, logits.device, "logits")
    if v < 1:
        raise ValueError("logits has V = 0 columns: the vocabulary cannot be empty")
    if n > 0 and v > 1 and logits.stride(1) != 1:
        raise ValueError(
            f"the last dimension of logits must be contiguous (stride 1), got strides {tuple(logits.stride())}; "
            "call logits.contiguous() (a transposed view is not supported)"
        )
    if n > 1 and logits.stride(0) < v:
        raise ValueError(
            f"the row stride of logits ({logits.stride(0)}) is smaller than V = {v} (overlapping or "
            "broadcast rows); call logits.contiguous()"
        )
    _check_options(softcap, scale, entropy)


def _check_targets(targets, n: int, device: torch.device, what: str) -> None:
    """targets: a 1-D int32/int64 tensor of n entries on `device` (`what` names the other input)."""
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if targets.layout != torch.strided:
        raise ValueError("targets must be a dense (strided) tensor, not sparse; call .to_dense()")
    if targets.dtype not in _TARGET_CODES:
        raise TypeError(
            f"targets dtype {targets.dtype} is not supported: use torch.int64 or torch.int32 "
            "(convert with .long())"
        )
    if targets.dim() != 1:
        raise ValueError(
            f"targets must be 1-D [N], got {targets.dim()}-D shape {tuple(targets.shape)}; "
            "flatten it with targets.reshape(-1)"
        )
    if targets.shape[0] != n:
        raise ValueError(f"targets has {targets.shape[0]} entries but {what} has {n} rows: they must match")
    if targets.device != device:
        raise ValueError(
            f"{what} is on {device} but targets on {targets.device}: move both to the same device"
        )


def _check_options(softcap, scale, entropy) -> None:
    if softcap is not None:
        if isinstance(softcap, bool) or not isinstance(softcap, numbers.Real):
            raise TypeError(f"softcap must be a positive number or None, got {softcap!r}")
        if not (math.isfinite(softcap) and softcap > 0):
            raise ValueError(f"softcap must be a finite number > 0, got {softcap!r}")
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise TypeError(f"scale must be a number or None, got {scale!r}")
        if not math.isfinite(scale):
            raise ValueError(f"scale must be finite, got {scale!r}")
    if not isinstance(entropy, bool):
        raise TypeError(f"entropy must be True or False, got {entropy!r}")


def _check_target_range(targets: torch.Tensor, vocab: int) -> None:
    """Raise ValueError naming the first target outside [0, vocab). (One device sync on CUDA.)"""
    if targets.numel() == 0:
        return
    bad = (targets < 0) | (targets >= vocab)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"targets[{i}] = {int(targets[i])} is out of range for a vocabulary of V = {vocab} "
            f"(valid token ids are 0..{vocab - 1}); check that the tokenizer matches the LM head"
        )


# ------------------------------------------------------------------------------------------------
# dispatch
# ------------------------------------------------------------------------------------------------
def _run(logits, targets, out, ent, softcap, scale) -> None:
    """Fill `out` (and `ent`) for validated inputs; targets are known to be in range."""
    n, v = logits.shape
    if n == 0:
        return
    targets = targets.contiguous()
    row_stride = logits.stride(0) if n > 1 else v
    if logits.device.type == "cpu":
        core = _native.core()
        if core is None:
            _warn_fallback(_native.status()["core_error"])
            _torch_into(logits, targets, out, ent, softcap, scale)
            return
        core.token_logprobs(
            logits.data_ptr(), n, v, row_stride, _LOGITS_CODES[logits.dtype],
            targets.data_ptr(), _TARGET_CODES[targets.dtype],
            out.data_ptr(), ent.data_ptr() if ent is not None else 0,
            scale is not None, float(scale) if scale is not None else 1.0,
            softcap is not None, float(softcap) if softcap is not None else 0.0,
            torch.get_num_threads(), "",
        )  # fmt: skip
        return
    cuda = _native.cuda()
    if cuda is None:
        reason = _native.status()["cuda_error"]
        if os.environ.get("PYLOGMAP_TORCH_FALLBACK") == "1":
            _warn_fallback(reason)
            _torch_into(logits, targets, out, ent, softcap, scale)
            return
        raise RuntimeError(
            f"CUDA logits need pylogmap's CUDA module, which is not available: {reason} "
            "(or set PYLOGMAP_TORCH_FALLBACK=1 to use the slower pure-torch path)"
        )
    stream = torch.cuda.current_stream(logits.device).cuda_stream
    cuda.token_logprobs(
        logits.data_ptr(), n, v, row_stride, _LOGITS_CODES[logits.dtype],
        targets.data_ptr(), _TARGET_CODES[targets.dtype],
        out.data_ptr(), ent.data_ptr() if ent is not None else 0,
        scale is not None, float(scale) if scale is not None else 1.0,
        softcap is not None, float(softcap) if softcap is not None else 0.0,
        logits.device.index if logits.device.index is not None else torch.cuda.current_device(),
        stream,
    )  # fmt: skip


def _warn_fallback(reason: str | None) -> None:
    global _warned_fallback
    if not _warned_fallback:
        _warned_fallback = True
        warnings.warn(
            f"pylogmap: using the slower pure-torch log-prob path: {reason}",
            RuntimeWarning,
            stacklevel=4,
        )


# ------------------------------------------------------------------------------------------------
# the pure-torch path (fallback, and a second implementation for the tests)
# ------------------------------------------------------------------------------------------------
def reference_token_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    softcap: float | None = None,
    scale: float | None = None,
    entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The same contract as `token_logprobs`, computed with torch ops in fp32.

    Works on bounded row blocks (about 64 MiB of fp32 at a time). Slower and, for large N,
    more memory than the kernels; it exists as the fallback and as an independent check.
    """
    _check(logits, targets, softcap, scale, entropy)
    _check_target_range(targets, logits.shape[1])
    out = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
    ent = torch.empty_like(out) if entropy else None
    _torch_into(logits, targets, out, ent, softcap, scale)
    return (out, ent) if entropy else out


def _torch_into(logits, targets, out, ent, softcap, scale) -> None:
    n, v = logits.shape
    rows = max(1, _TORCH_BLOCK_BYTES // (4 * v))
    with torch.no_grad():
        for r0 in range(0, n, rows):
            r1 = min(n, r0 + rows)
            y = logits[r0:r1].float()
            if scale is not None:
                y = y * scale
            if softcap is not None:
                y = softcap * torch.tanh(y / softcap)
            lse = torch.logsumexp(y, dim=-1)
            out[r0:r1] = y.gather(1, targets[r0:r1, None].long())[:, 0] - lse
            if ent is not None:
                logp = y - lse[:, None]
                # 0 * (-inf) for masked entries: their probability is 0 and so is their term
                finite = torch.where(logp == -math.inf, torch.zeros_like(logp), logp)
                ent[r0:r1] = -(torch.exp(logp) * finite).sum(-1)
