"""Log-probabilities straight from final hidden states: the LM head in bounded row blocks.

`head_logprobs(hidden, weight, targets)` computes `logits = hidden @ weight.T (+ bias)` for a block
of rows at a time, sized so that one block's logits fit `budget_bytes`, and feeds each block to
the log-probability kernel (`pylogmap.kernels.token_logprobs`). The peak extra memory is therefore
bounded by the budget whatever N is, and no `[N, V]` tensor ever exists (for a 150k vocabulary,
4096 tokens of fp32 logits would be 2.5 GB).

The matmul runs in the weight's dtype, as the model's own LM head does (so the logits are the ones
the model would produce, e.g. bf16 logits for a bf16 model), with one exception: fp16 on CPU. torch's
CPU fp16 matmul has no fast kernel (measured here, [256, 576] x [576, 16384]: fp16 0.80 s, converting
both to fp32 then the fp32 GEMM 0.36 s, bf16 0.10 s on the AVX-512 BF16 path), so on CPU an fp16
weight is converted to fp32 in vocabulary chunks (never all of it at once) and the logits are
fp32. `compute_dtype` overrides the choice (e.g. torch.float32 for more accurate logits than the
model's own bf16 ones).
"""

from __future__ import annotations

import numbers

import torch

from pylogmap.kernels import logprobs
from pylogmap.kernels.args import check_options, check_target_range, check_targets

_HEAD_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def head_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    softcap: float | None = None,
    scale: float | None = None,
    budget_bytes: int = 256 * 2**20,
    entropy: bool = False,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Per-row log-probability of `targets` under `softmax(cap(scale * (hidden @ weight.T + bias)))`.

    Args:
        hidden: `[N, d]` final hidden states (after the final norm), any float dtype.
        weight: `[V, d]` LM-head weight (tied input embeddings are fine), fp32/bf16/fp16.
        targets: `[N]` int32/int64 token ids in `[0, V)`.
        bias: optional `[V]` head bias.
        softcap, scale, entropy: as in `pylogmap.kernels.token_logprobs`.
        budget_bytes: bound on the extra memory for the logits of one block (and, when the
            weight is converted, its converted chunk). At least one row is always processed, so
            a budget smaller than one row of logits is rounded up to one row.
        compute_dtype: dtype of the matmul and the logits; default: the weight's dtype, fp32 for
            an fp16 weight on CPU (see the module docstring).

    Returns:
        fp32 `[N]` on the inputs' device (and the fp32 entropy when `entropy`).
    """
    n, d, v = _check(hidden, weight, targets, bias, budget_bytes)
    cdt = _compute_dtype(weight, compute_dtype)
    check_targets(targets, n, hidden.device, "hidden")
    check_options(softcap, scale, entropy)
    check_target_range(targets, v)

    out = torch.empty(n, dtype=torch.float32, device=hidden.device)
    ent = torch.empty_like(out) if entropy else None
    if n == 0:
        return (out, ent) if entropy else out
    convert = cdt != weight.dtype
    rows, vchunk = plan_blocks(n, d, v, cdt, budget_bytes, convert_weight=convert)

    with torch.no_grad():  # the weight is usually a Parameter: build no graph, keep no buffers
        block = torch.empty(min(rows, n), v, dtype=cdt, device=hidden.device)
        bias_c = bias.to(cdt) if bias is not None else None
        for r0 in range(0, n, rows):
            r1 = min(n, r0 + rows)
            h = hidden[r0:r1].to(cdt)
            logits = block[: r1 - r0]
            if not convert:
                if bias_c is None:
                    torch.mm(h, weight.t(), out=logits)
                else:
                    torch.addmm(bias_c, h, weight.t(), out=logits)
            else:
                for v0 in range(0, v, vchunk):
                    v1 = min(v, v0 + vchunk)
                    part = h @ weight[v0:v1].to(cdt).t()
                    if bias_c is not None:
                        part += bias_c[v0:v1]
                    logits[:, v0:v1] = part
                    del part
            logprobs.logprobs_into(
                logits,
                targets[r0:r1],
                out[r0:r1],
                ent[r0:r1] if ent is not None else None,
                softcap,
                scale,
            )
    return (out, ent) if entropy else out


def plan_blocks(
    n: int, d: int, v: int, dtype: torch.dtype, budget_bytes: int, *, convert_weight: bool = False
) -> tuple[int, int]:
    """Rows per block and vocabulary rows per converted weight chunk for a memory budget.

    Without conversion, one block costs rows * (V + d) elements of `dtype` (its logits and its
    hidden rows cast to `dtype`). With conversion a quarter of the budget goes to the converted
    weight chunk and the rest to rows * (V + chunk + d) fp32 elements (logits, the chunk's matmul
    result, the cast hidden rows). Both are at least 1.
    """
    esz = torch.empty(0, dtype=dtype).element_size()
    if not convert_weight:
        rows = budget_bytes // ((v + d) * esz)
        return max(1, min(n, rows)), v
    vchunk = max(1, min(v, (budget_bytes // 4) // (d * esz)))
    rows = (budget_bytes - vchunk * d * esz) // ((v + vchunk + d) * esz)
    return max(1, min(n, rows)), vchunk


def _compute_dtype(weight: torch.Tensor, requested: torch.dtype | None) -> torch.dtype:
    if requested is not None:
        if requested not in _HEAD_DTYPES:
            raise TypeError(f"compute_dtype must be one of {_HEAD_DTYPES}, got {requested}")
        return requested
    if weight.device.type == "cpu" and weight.dtype == torch.float16:
        return torch.float32
    return weight.dtype


def _check(hidden, weight, targets, bias, budget_bytes) -> tuple[int, int, int]:
    for name, t in (("hidden", hidden), ("weight", weight), ("targets", targets)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if hidden.dim() != 2:
        raise ValueError(
            f"hidden must be 2-D [N, d], got shape {tuple(hidden.shape)}; flatten it with "
            "hidden.reshape(-1, hidden.shape[-1])"
        )
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D [V, d], got shape {tuple(weight.shape)}")
    n, d = hidden.shape
    v, dw = weight.shape
    if dw != d:
        raise ValueError(
            f"hidden has d = {d} features but weight has shape {tuple(weight.shape)} ([V, d] expected, "
            f"d = {dw}); pass the LM-head weight itself (not transposed)"
        )
    if not hidden.is_floating_point():
        raise TypeError(f"hidden must be a floating-point tensor, got {hidden.dtype}")
    if weight.dtype not in _HEAD_DTYPES:
        raise TypeError(f"weight dtype {weight.dtype} is not supported: use float32, bfloat16 or float16")
    if hidden.device != weight.device:
        raise ValueError(f"hidden is on {hidden.device} but weight on {weight.device}: move both to one device")
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
        if bias.shape != (v,):
            raise ValueError(f"bias must have shape ({v},) to match the weight, got {tuple(bias.shape)}")
        if bias.device != weight.device:
            raise ValueError(f"bias is on {bias.device} but weight on {weight.device}: move it")
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, numbers.Integral) or budget_bytes <= 0:
        raise ValueError(f"budget_bytes must be a positive integer, got {budget_bytes!r}")
    return n, d, v
