"""Shared pieces of the kernel tests: the float64 reference and the tolerance.

Tolerance (absolute, per element), used for logp and entropy alike:

    tol = 3e-5 + 8 * eps32 * (|y_target| + |max_j y_j|)

- The kernels read the same rounded bf16/fp16/fp32 values as the reference (the reference is
  computed in float64 on `logits.double()`, i.e. on the already rounded inputs), so input rounding
  does not count; what remains is fp32 arithmetic.
- fp32 results of `y_t - m - log s`: each subtraction rounds relative to its operands, so an
  absolute error of a few eps32 * |y| for the values involved, the target's and the row maximum
  (entries far below the maximum add exp(.) = 0 and no error) (8 eps covers the scale/soft-cap multiply, which is done in
  fp32 on each logit, and the final differences). For logits of +-1e4 this is ~2e-3, which is
  what fp32 can represent there at all.
- log s: s is a sum of up to 256000 fp32 terms in [0, 1] (exp computed to ~2 ulp), accumulated in
  16-lane vectors per 2048-element chunk (CPU) or per thread then by tree (CUDA), so rounding grows
  like sqrt(V) * eps in practice (observed <= 2e-6 at V = 256000); 3e-5 leaves a 10x margin.
  Bugs that move the result by less than that (one element of a flat row skipped, say) cannot hide
  behind it either: the tests put the row maximum and the target in the unaligned head, the ragged
  tail and chunk boundaries, where a skipped element changes logp by O(1).
"""

from __future__ import annotations

import torch

EPS32 = float(torch.finfo(torch.float32).eps)


def reference(logits: torch.Tensor, targets: torch.Tensor, softcap=None, scale=None):
    """float64 logp and entropy on exactly the given (already rounded) logits."""
    y = logits.double()
    if scale is not None:
        y = y * scale
    if softcap is not None:
        y = softcap * torch.tanh(y / softcap)
    lse = torch.logsumexp(y, dim=-1)
    logp = y.gather(1, targets.long()[:, None])[:, 0] - lse
    lp_all = y - lse[:, None]
    p = torch.exp(lp_all)
    ent = -(p * torch.where(p > 0, lp_all, torch.zeros_like(lp_all))).sum(-1)
    return logp, ent, y


def tolerance(y: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-row absolute tolerance (see the module docstring)."""
    if y.shape[0] == 0:
        return torch.zeros(0, dtype=torch.float64)
    finite = torch.isfinite(y)
    y_t = torch.where(finite, y.abs(), torch.zeros_like(y)).gather(1, targets.long()[:, None])[:, 0]
    row_max = torch.where(finite, y, torch.full_like(y, -torch.inf)).amax(-1).abs()
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    return 3e-5 + 8 * EPS32 * (y_t + row_max)


def assert_close_rows(got: torch.Tensor, want: torch.Tensor, tol: torch.Tensor, what: str) -> None:
    """|got - want| <= tol row by row; -inf must match -inf exactly, NaN must match NaN."""
    assert got.dtype == torch.float32, f"{what}: dtype {got.dtype}, expected float32"
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    got64 = got.double().cpu()
    want = want.cpu()
    same_special = (got64 == want) | (torch.isnan(got64) & torch.isnan(want))
    err = (got64 - want).abs()
    ok = same_special | (err <= tol.cpu())
    if not bool(ok.all()):
        bad = (~ok).nonzero()[:, 0]
        i = int(bad[0])
        raise AssertionError(
            f"{what}: {len(bad)} of {len(ok)} rows off; row {i}: got {float(got64[i])!r}, "
            f"want {float(want[i])!r}, |diff| {float(err[i]):.3g} > tol {float(tol[i]):.3g}"
        )


def make_logits(n: int, v: int, dtype: torch.dtype, *, seed: int = 0, spread: float = 4.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, v, generator=g) * spread).to(dtype)


def make_targets(n: int, v: int, *, seed: int = 1, dtype=torch.int64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, v, (n,), generator=g)
    if n >= 2:  # always include both ends of the vocabulary
        t[0] = 0
        t[1] = v - 1
    return t.to(dtype)
