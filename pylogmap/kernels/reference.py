"""The pure-torch log-probability path: the fallback without the compiled CPU module, and an
independent second implementation for the tests.

Same contract as `pylogmap.kernels.token_logprobs`, computed with torch ops in fp32 on bounded row
blocks (about 64 MiB of fp32 at a time): slower and, for large N, more memory than the kernels.
"""

from __future__ import annotations

import math

import torch

from pylogmap.kernels.args import check_logits, check_target_range

# The torch path works on row blocks whose fp32 copy stays below this many bytes.
_TORCH_BLOCK_BYTES = 64 * 2**20


def reference_token_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    softcap: float | None = None,
    scale: float | None = None,
    entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The same contract as `token_logprobs`, computed with torch ops in fp32 (see the module)."""
    check_logits(logits, targets, softcap, scale, entropy)
    check_target_range(targets, logits.shape[1])
    out = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
    ent = torch.empty_like(out) if entropy else None
    reference_into(logits, targets, out, ent, softcap, scale)
    return (out, ent) if entropy else out


def reference_into(logits, targets, out, ent, softcap, scale) -> None:
    """Fill `out` (and `ent`) for validated inputs with torch ops, block by block."""
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
