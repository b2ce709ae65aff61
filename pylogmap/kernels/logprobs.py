"""Per-token log-probabilities from LM-head outputs, without a `[rows, vocab]` result.

`token_logprobs(logits, targets)` returns, for every row n, the fp32 value

    logp[n] = y[n, t_n] - logsumexp(y[n, :]),   y = softcap * tanh(scale * x / softcap)

(`scale` and `softcap` each optional; scale first), and optionally the entropy of softmax(y[n]).
It is the heart of scoring: the scorer feeds it the LM head's output one bounded block of rows at a
time (see `pylogmap.kernels.head_logprobs`), so no `[batch, seq, vocab]` log-softmax ever exists.

The work is done by the compiled kernels (one pass over each row, online max and sum of
exponentials, fp32 accumulation): `pylogmap.kernels._core` on CPU tensors and
`pylogmap.kernels._cuda` on CUDA tensors, on the current CUDA stream. This module validates the
tensors (`args`), allocates the outputs with torch and hands raw pointers to the extension.
Without the CPU extension (a source checkout that was not built) the pure-torch path
(`reference`) computes the same numbers, with a warning. A CUDA tensor without the CUDA extension
is an error by default (a silent 10x slower GPU job is worse); set PYLOGMAP_TORCH_FALLBACK=1 to
accept the torch path there too.

No autograd: the results are plain tensors without a graph (scoring needs none); inference-mode
tensors and `torch.no_grad()` work.
"""

from __future__ import annotations

import os
import warnings

import torch

from pylogmap.kernels import _native
from pylogmap.kernels.args import LOGITS_CODES, TARGET_CODES, check_logits, check_target_range
from pylogmap.kernels.reference import reference_into

_warned_fallback = False


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
    check_logits(logits, targets, softcap, scale, entropy)
    out = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
    ent = torch.empty_like(out) if entropy else None
    check_target_range(targets, logits.shape[1])
    logprobs_into(logits, targets, out, ent, softcap, scale)
    return (out, ent) if entropy else out


def logprobs_into(logits, targets, out, ent, softcap, scale) -> None:
    """Fill `out` (and `ent`) for validated inputs on the logits' device; targets are in range."""
    n, v = logits.shape
    if n == 0:
        return
    targets = targets.contiguous()
    row_stride = logits.stride(0) if n > 1 else v
    if logits.device.type == "cpu":
        core = _native.core()
        if core is None:
            _warn_fallback(_native.native_status()["core_error"])
            reference_into(logits, targets, out, ent, softcap, scale)
            return
        core.token_logprobs(
            logits.data_ptr(), n, v, row_stride, LOGITS_CODES[logits.dtype],
            targets.data_ptr(), TARGET_CODES[targets.dtype],
            out.data_ptr(), ent.data_ptr() if ent is not None else 0,
            scale is not None, float(scale) if scale is not None else 1.0,
            softcap is not None, float(softcap) if softcap is not None else 0.0,
            torch.get_num_threads(), "",
        )  # fmt: skip
        return
    cuda = _native.cuda()
    if cuda is None:
        reason = _native.native_status()["cuda_error"]
        if os.environ.get("PYLOGMAP_TORCH_FALLBACK") == "1":
            _warn_fallback(reason)
            reference_into(logits, targets, out, ent, softcap, scale)
            return
        raise RuntimeError(
            f"CUDA logits need pylogmap's CUDA module, which is not available: {reason} "
            "(or set PYLOGMAP_TORCH_FALLBACK=1 to use the slower pure-torch path)"
        )
    stream = torch.cuda.current_stream(logits.device).cuda_stream
    cuda.token_logprobs(
        logits.data_ptr(), n, v, row_stride, LOGITS_CODES[logits.dtype],
        targets.data_ptr(), TARGET_CODES[targets.dtype],
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
            stacklevel=4,  # the caller of token_logprobs / head_logprobs
        )
