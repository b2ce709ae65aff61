"""pylogmap.kernels.head_logprobs: the LM head in bounded row blocks, against float64 torch.

Tolerances: the reference is float64 `log_softmax(hidden @ W.T + b)` on the same (rounded) inputs.
The head's matmul runs in fp32 here (or bf16 when asked), so the logits carry the GEMM's rounding:
for fp32, |err| <= d * eps32 * sum|h||w| (a dot product of d terms), far below the 1e-4 used; for
bf16 logits each logit is rounded to 8 bits of mantissa (relative 2^-8) by design, so bf16 is
compared with the float64 computation on the logits the bf16 matmul produced, plus the kernel's own
tolerance (tests/_kernel_helpers.py).
"""

from __future__ import annotations

import pytest
import torch

from pylogmap.kernels import head, logprobs

from _kernel_helpers import assert_close_rows, reference, tolerance


def _inputs(n, d, v, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=g).to(dtype)
    weight = (torch.randn(v, d, generator=g) / d**0.5 * 3).to(dtype)
    bias = torch.randn(v, generator=g).to(dtype)
    targets = torch.randint(0, v, (n,), generator=g)
    return hidden, weight, bias, targets


def _want(hidden, weight, targets, bias=None, softcap=None, scale=None):
    logits = hidden.double() @ weight.double().t()
    if bias is not None:
        logits = logits + bias.double()
    lp, ent, _ = reference(logits, targets, softcap=softcap, scale=scale)
    return lp, ent


@pytest.mark.parametrize("budget", [1, 4096, 10**5, 256 * 2**20])
def test_matches_reference_for_any_budget(budget):
    hidden, weight, bias, targets = _inputs(37, 64, 1000)
    want_lp, want_ent = _want(hidden, weight, targets, bias=bias, softcap=30.0, scale=0.8)
    lp, ent = head.head_logprobs(
        hidden, weight, targets, bias=bias, softcap=30.0, scale=0.8, budget_bytes=budget, entropy=True
    )
    tol = torch.full((37,), 1e-4, dtype=torch.float64)
    assert_close_rows(lp, want_lp, tol, f"head logp budget={budget}")
    assert_close_rows(ent, want_ent, tol, f"head entropy budget={budget}")
    # without entropy, same numbers (not bitwise: the BLAS may use other kernels for other block sizes)
    lp_only = head.head_logprobs(hidden, weight, targets, bias=bias, softcap=30.0, scale=0.8, budget_bytes=budget)
    assert_close_rows(lp_only, want_lp, tol, f"head logp only budget={budget}")


def test_blocks_respect_the_budget(monkeypatch):
    """Every block of logits handed to the kernel fits the budget; together they cover all rows."""
    seen = []
    real_run = logprobs.logprobs_into

    def spy(logits, targets, out, ent, softcap, scale):
        seen.append((logits.shape[0], logits.shape[1], logits.element_size(), logits.data_ptr()))
        return real_run(logits, targets, out, ent, softcap, scale)

    monkeypatch.setattr(logprobs, "logprobs_into", spy)
    hidden, weight, _, targets = _inputs(1000, 32, 500)
    budget = 50_000  # 50_000 // ((500 + 32) * 4) = 23 rows per block
    lp = head.head_logprobs(hidden, weight, targets, budget_bytes=budget)
    assert sum(r for r, *_ in seen) == 1000
    assert all(r * (v + 32) * es <= budget for r, v, es, _ in seen)
    assert max(r for r, *_ in seen) == 23
    assert len({p for *_, p in seen}) == 1  # one reused buffer, not a new allocation per block
    want, _ = _want(hidden, weight, targets)
    assert_close_rows(lp, want, torch.full((1000,), 1e-4, dtype=torch.float64), "blocked")


def test_plan_blocks():
    # rows * (V + d) * 2 bytes of bf16 logits and cast hidden rows <= 256 MiB, as many as fit
    rows, chunk = head.plan_blocks(10**6, 896, 151936, torch.bfloat16, 256 * 2**20)
    assert chunk == 151936 and rows * (151936 + 896) * 2 <= 256 * 2**20 < (rows + 1) * (151936 + 896) * 2
    assert head.plan_blocks(5, 896, 151936, torch.float32, 256 * 2**20) == (5, 151936)
    assert head.plan_blocks(10**6, 896, 151936, torch.float32, 10) == (1, 151936)  # at least a row
    rows, chunk = head.plan_blocks(10**6, 896, 151936, torch.float32, 256 * 2**20, convert_weight=True)
    assert chunk * 896 * 4 <= 64 * 2**20 and rows * (151936 + chunk + 896) * 4 + chunk * 896 * 4 <= 256 * 2**20


def test_bf16_head_gives_the_models_own_bf16_logits():
    """The matmul runs in the weight's dtype, as the model's own head would."""
    hidden, weight, bias, targets = _inputs(20, 64, 700, dtype=torch.bfloat16)
    lp = head.head_logprobs(hidden, weight, targets, bias=bias)
    logits = torch.addmm(bias, hidden, weight.t())  # what the model computes: bf16 logits
    want, _, y = reference(logits, targets)
    assert_close_rows(lp, want, tolerance(y, targets), "bf16 head")
    lp32 = head.head_logprobs(hidden, weight, targets, bias=bias, compute_dtype=torch.float32)
    want32, _ = _want(hidden, weight, targets, bias=bias)
    assert_close_rows(lp32, want32, torch.full((20,), 1e-4, dtype=torch.float64), "fp32 compute")


def test_fp16_on_cpu_is_computed_in_fp32_in_chunks():
    hidden, weight, bias, targets = _inputs(25, 48, 900, dtype=torch.float16)
    for budget in (60_000, 256 * 2**20):  # a small budget forces several blocks and weight chunks
        lp = head.head_logprobs(hidden, weight, targets, bias=bias, budget_bytes=budget)
        want, _ = _want(hidden, weight, targets, bias=bias)
        assert_close_rows(lp, want, torch.full((25,), 1e-4, dtype=torch.float64), f"fp16 budget {budget}")


def test_mixed_hidden_dtype_and_tied_weight():
    """Hidden states in fp32 with a bf16 (tied embedding) weight: cast to the weight's dtype."""
    emb = torch.nn.Embedding(300, 32).to(torch.bfloat16)
    hidden = torch.randn(9, 32)
    targets = torch.randint(0, 300, (9,))
    lp = head.head_logprobs(hidden, emb.weight, targets)  # a Parameter with requires_grad
    assert not lp.requires_grad
    logits = hidden.to(torch.bfloat16) @ emb.weight.detach().t()
    want, _, y = reference(logits, targets)
    assert_close_rows(lp, want, tolerance(y, targets), "tied bf16")


def test_empty_and_single():
    hidden, weight, _, _ = _inputs(1, 16, 50)
    assert head.head_logprobs(hidden[:0], weight, torch.empty(0, dtype=torch.int64)).shape == (0,)
    lp, ent = head.head_logprobs(hidden[:0], weight, torch.empty(0, dtype=torch.int64), entropy=True)
    assert lp.shape == ent.shape == (0,)
    t = torch.tensor([49])
    want, _ = _want(hidden, weight, t)
    assert_close_rows(head.head_logprobs(hidden, weight, t), want, torch.full((1,), 1e-4, dtype=torch.float64), "N=1")


@pytest.mark.parametrize(
    "change,exc,match",
    [
        (lambda h, w, t, b: (h[None], w, t, b), ValueError, "hidden must be 2-D"),
        (lambda h, w, t, b: (h, w[None], t, b), ValueError, "weight must be 2-D"),
        (lambda h, w, t, b: (h, w.t(), t, b), ValueError, r"pass the LM-head weight itself"),
        (lambda h, w, t, b: (h, w, t[:-1], b), ValueError, "targets has 9 entries but hidden has 10 rows"),
        (lambda h, w, t, b: (h, w, t + 1000, b), ValueError, "out of range for a vocabulary of V = 100"),
        (lambda h, w, t, b: (h, w, t.float(), b), TypeError, "targets dtype"),
        (lambda h, w, t, b: (h, w.double(), t, b), TypeError, "weight dtype torch.float64"),
        (lambda h, w, t, b: (h.long(), w, t, b), TypeError, "hidden must be a floating-point"),
        (lambda h, w, t, b: (h, w, t, b[:-1]), ValueError, r"bias must have shape \(100,\)"),
        (lambda h, w, t, b: (h, w, t, b.to("meta")), ValueError, "bias is on meta"),
        (lambda h, w, t, b: (h.to("meta"), w, t, b), ValueError, "hidden is on meta but weight on cpu"),
    ],
)
def test_bad_inputs(change, exc, match):
    h, w, b, t = _inputs(10, 8, 100)
    h, w, t, b = change(h, w, t, b)
    with pytest.raises(exc, match=match):
        head.head_logprobs(h, w, t, bias=b)


def test_bad_budget_and_compute_dtype():
    h, w, _, t = _inputs(4, 8, 20)
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="budget_bytes must be a positive integer"):
            head.head_logprobs(h, w, t, budget_bytes=bad)
    with pytest.raises(TypeError, match="compute_dtype"):
        head.head_logprobs(h, w, t, compute_dtype=torch.float64)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cuda_head_matches_reference(dtype):
    hidden, weight, bias, targets = _inputs(300, 64, 5000, dtype=dtype)
    hc, wc, bc, tc = hidden.cuda(), weight.cuda(), bias.cuda(), targets.cuda()
    lp, ent = head.head_logprobs(hc, wc, tc, bias=bc, softcap=30.0, budget_bytes=200_000, entropy=True)
    assert lp.is_cuda and ent.is_cuda
    logits = torch.addmm(bc, hc, wc.t()).cpu()  # the logits the blocks see (same dtype, same GEMM)
    want, want_ent, y = reference(logits, targets, softcap=30.0)
    # the GEMM on a block may round differently from the whole-matrix GEMM: one ulp of the dtype
    ulp = {torch.float32: 2e-6, torch.bfloat16: 1.6e-2, torch.float16: 2e-3}[dtype] * y.abs().amax()
    tol = tolerance(y, targets) + 2 * ulp
    assert_close_rows(lp, want, tol, "cuda head")
    assert_close_rows(ent, want_ent, tol, "cuda head entropy")
