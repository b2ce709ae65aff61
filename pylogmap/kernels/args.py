"""The arguments the kernels accept: supported dtypes with their native codes, and the checks.

The compiled modules take raw pointers, shapes and integer dtype codes (csrc/kernel_args.h holds the
same numbers), so every tensor is validated here first: a bad argument is a `TypeError` or
`ValueError` that names it and says what to do, never a bad read in native code. The same checks
serve the kernel (`logprobs`), the torch reference (`reference`) and the head (`head`).
"""

from __future__ import annotations

import math
import numbers

import torch

# dtype codes shared with csrc/kernel_args.h (enum LogitsDtype, enum TargetDtype)
LOGITS_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}
TARGET_CODES = {torch.int32: 0, torch.int64: 1}


def check_logits(logits, targets, softcap, scale, entropy) -> None:
    """All arguments of `token_logprobs`: a dense 2-D float logits tensor, its targets, options."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.layout != torch.strided:
        raise ValueError("logits must be a dense (strided) tensor, not sparse; call .to_dense()")
    if logits.dtype not in LOGITS_CODES:
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
    check_targets(targets, n, logits.device, "logits")
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
    check_options(softcap, scale, entropy)


def check_targets(targets, n: int, device: torch.device, what: str) -> None:
    """targets: a 1-D int32/int64 tensor of n entries on `device` (`what` names the other input)."""
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if targets.layout != torch.strided:
        raise ValueError("targets must be a dense (strided) tensor, not sparse; call .to_dense()")
    if targets.dtype not in TARGET_CODES:
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


def check_options(softcap, scale, entropy) -> None:
    """softcap: a finite number > 0 or None; scale: a finite number or None; entropy: a bool."""
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


def check_target_range(targets: torch.Tensor, vocab: int) -> None:
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
