"""pylogmap.kernels.token_logprobs against a float64 torch reference, and its input checks.

The CPU tests run the compiled `_core` module (every SIMD variant this CPU supports) and the
pure-torch fallback; the CUDA tests (marked gpu) run only where a GPU and `_cuda` are present.
Tolerances: see tests/_kernel_helpers.py.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from pylogmap import kernels
from pylogmap.kernels import _native, args, logprobs

from _kernel_helpers import assert_close_rows, make_logits, make_targets, reference, tolerance

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
DT_IDS = ["fp32", "bf16", "fp16"]
# The edge-case tests run on the CPU kernel and, where a GPU is present, on the CUDA kernel.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]

needs_core = pytest.mark.skipif(
    not kernels.native_status()["core_loaded"],
    reason="pylogmap.kernels._core is not built here (tests/test_build.py reports it as a failure)",
)


def check(logits, targets, *, softcap=None, scale=None, fn=kernels.token_logprobs, what=""):
    """Run fn with and without entropy and compare both outputs with the float64 reference."""
    want_lp, want_ent, y = reference(logits, targets, softcap=softcap, scale=scale)
    tol = tolerance(y, targets)
    lp = fn(logits, targets, softcap=softcap, scale=scale)
    assert isinstance(lp, torch.Tensor) and lp.device == logits.device
    assert_close_rows(lp, want_lp, tol, f"logp {what}")
    lp2, ent = fn(logits, targets, softcap=softcap, scale=scale, entropy=True)
    assert torch.equal(lp.cpu(), lp2.cpu()) or torch.allclose(lp.cpu(), lp2.cpu(), equal_nan=True)
    assert_close_rows(ent, want_ent, tol, f"entropy {what}")
    return lp, ent


# ------------------------------------------------------------------------------------------------
# correctness, CPU (compiled kernel)
# ------------------------------------------------------------------------------------------------
@needs_core
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("n,v", [(33, 7), (37, 50257), (3, 151936), (2, 256000)])
def test_matches_float64_reference(dtype, n, v):
    logits = make_logits(n, v, dtype, seed=v)
    targets = make_targets(n, v)
    targets[-1] = int(logits[-1].float().argmax())  # one target at the row maximum
    check(logits, targets, what=f"{dtype} V={v}")


@needs_core
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_extreme_logits(dtype, device):
    """+-1e4 (fp16: +-6e4 is its range, 1e4 is fine), a row maximum in the ragged tail."""
    n, v = 6, 5003
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, v, generator=g) * 3
    x[0, :] = -1e4
    x[0, 17] = 1e4  # one huge logit: logp of it ~ 0, of others ~ -2e4
    x[1, -1] = 1e4  # maximum in the tail (V is not a multiple of any vector width)
    x[2, ::2] = 1e4  # half the row tied at the top
    x[3, 0] = 1e4  # maximum at the very start
    x[4, :] = 1e4  # flat row: logp = -log V exactly
    x[5, 2048] = 9e3  # maximum at a chunk boundary
    logits = x.to(dtype).to(device)
    targets = torch.tensor([17, v - 1, 4, 0, 11, 2048], device=device)
    lp, ent = check(logits, targets, what=f"extremes {dtype}")
    assert abs(float(lp[4]) + math.log(v)) < 1e-5  # flat row
    targets2 = torch.tensor([3, 5, 5, 1, 0, 3], device=device)  # targets far below the maximum
    check(logits, targets2, what=f"extremes, low targets {dtype}")


@needs_core
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_masked_entries(dtype, device):
    """-inf and huge negative logits (attention-style masks on the vocabulary) contribute zero."""
    n, v = 5, 3001
    x = make_logits(n, v, torch.float32, seed=5)
    big_neg = -1e30 if dtype == torch.float32 else (-3e38 if dtype == torch.bfloat16 else -6e4)
    x[0, 100:] = -math.inf  # only the first 100 entries allowed
    x[1, :2900] = big_neg
    x[2, ::3] = -math.inf
    x[3, :-1] = -math.inf  # a single allowed token, at the very end: logp 0, entropy 0
    x[4, :2048] = -math.inf  # the whole first chunk masked (running max stays -inf for a while)
    logits = x.to(dtype).to(device)
    targets = torch.tensor([5, 2950, 1, v - 1, 2500], device=device)
    lp, ent = check(logits, targets, what=f"masked {dtype}")
    assert float(lp[3]) == 0.0 and abs(float(ent[3])) < 1e-6
    # a target on a masked entry has probability 0: logp = -inf, not NaN, not a finite number
    lp = kernels.token_logprobs(logits, torch.tensor([200, 0, 3, 0, 0], device=device))
    assert lp[0] == -math.inf and lp[2] == -math.inf and lp[3] == -math.inf and lp[4] == -math.inf


@needs_core
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("offset", [0, 1, 3])
def test_strided_rows(dtype, offset):
    """Rows that are a slice of a wider buffer: row stride > V, rows starting unaligned."""
    n, v, width = 9, 50257, 50257 + 13
    buf = make_logits(n, width, dtype, seed=11)
    logits = buf[:, offset : offset + v]
    assert logits.stride() == (width, 1) and not logits.is_contiguous()
    targets = make_targets(n, v)
    lp, ent = check(logits, targets, what=f"strided offset {offset}")
    lp_c, ent_c = kernels.token_logprobs(logits.contiguous(), targets, entropy=True)
    assert torch.equal(lp, lp_c) and torch.equal(ent, ent_c)  # same values, same arithmetic


@needs_core
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize(
    "softcap,scale", [(30.0, None), (None, 0.5), (None, -1.3), (30.0, 2.0), (5.0, 0.125)]
)
def test_softcap_and_scale(dtype, softcap, scale, device):
    n, v = 7, 32011
    logits = make_logits(n, v, dtype, seed=2, spread=20.0).to(device)  # large enough for the cap to bite
    targets = make_targets(n, v).to(device)
    check(logits, targets, softcap=softcap, scale=scale, what=f"softcap={softcap} scale={scale}")


@needs_core
@pytest.mark.parametrize("device", DEVICES)
def test_softcap_saturates_with_extremes(device):
    """tanh saturates: +-1e4 and -inf logits become +-softcap exactly as in float64."""
    x = torch.tensor([[1e4, -1e4, 0.0, -math.inf, 1.0], [-math.inf, -math.inf, 3.0, 1e4, 2.0]], device=device)
    t = torch.tensor([0, 3], device=device)
    check(x, t, softcap=30.0, what="softcap saturation")


@needs_core
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_small_n(dtype, device):
    empty = torch.empty(0, 11, dtype=dtype, device=device)
    t0 = torch.empty(0, dtype=torch.int64, device=device)
    lp = kernels.token_logprobs(empty, t0)
    assert lp.shape == (0,) and lp.dtype == torch.float32
    lp, ent = kernels.token_logprobs(empty, t0, entropy=True)
    assert lp.shape == (0,) and ent.shape == (0,)
    one = make_logits(1, 50257, dtype).to(device)
    check(one, torch.tensor([123], device=device), what="N=1")
    # N = 1 with an arbitrary row stride (torch allows any stride for a size-1 dimension)
    odd = torch.as_strided(make_logits(1, 200, dtype).to(device), (1, 100), (7, 1))
    check(odd, torch.tensor([99], device=device), what="N=1 odd stride")
    check(make_logits(4, 1, dtype).to(device), torch.zeros(4, dtype=torch.int64, device=device), what="V=1")


@needs_core
@pytest.mark.parametrize("device", DEVICES)
def test_int32_targets_and_every_target(device):
    v = 37
    logits = make_logits(v, v, torch.float32, seed=9).to(device)
    targets = torch.arange(v, dtype=torch.int32, device=device)  # every id, each on its own row
    check(logits, targets, what="int32 targets")
    lp32 = kernels.token_logprobs(logits, targets)
    lp64 = kernels.token_logprobs(logits, targets.long())
    assert torch.equal(lp32, lp64)
    # targets given as a strided view
    t_strided = torch.arange(2 * v, dtype=torch.int64, device=device)[::2] % v
    check(logits, t_strided, what="strided targets")


@needs_core
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_nan_logits_give_nan(dtype, device):
    """A NaN anywhere in a row makes that row's results NaN, wherever the NaN is; other rows are
    unaffected."""
    n, v = 4, 5000
    x = make_logits(n, v, torch.float32, seed=4)
    x[0, 10] = math.nan
    x[1, :2048] = math.nan  # a whole chunk of NaN before any finite value
    x[2, -1] = math.nan  # in the tail
    logits = x.to(dtype).to(device)
    lp, ent = kernels.token_logprobs(logits, torch.tensor([3, 3000, 3, 3], device=device), entropy=True)
    assert torch.isnan(lp[:3]).all() and torch.isnan(ent[:3]).all()
    assert torch.isfinite(lp[3]) and torch.isfinite(ent[3])


@needs_core
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_every_cpu_variant(dtype):
    """Each compiled SIMD variant this CPU can run (AVX-512, AVX2, generic) gives the right
    numbers: the dispatcher picks only one of them, so call each directly."""
    core = _native.core()
    info = core.build_info()
    n, v = 5, 4099  # ragged tail for every vector width
    buf = make_logits(n, v + 5, dtype, seed=7)
    logits = buf[:, 1 : v + 1]  # unaligned rows
    targets = make_targets(n, v)
    assert info["cpu_variant"] in info["cpu_variants_supported"]
    for isa in info["cpu_variants_supported"]:
        for softcap, scale in [(None, None), (30.0, 0.7)]:
            out = torch.empty(n)
            ent = torch.empty(n)
            used = core.token_logprobs(
                logits.data_ptr(), n, v, logits.stride(0), args.LOGITS_CODES[dtype],
                targets.data_ptr(), 1, out.data_ptr(), ent.data_ptr(),
                scale is not None, scale or 1.0, softcap is not None, softcap or 0.0, 1, isa,
            )  # fmt: skip
            assert used == isa
            w_lp, w_ent, w_y = reference(logits, targets, softcap=softcap, scale=scale)
            assert_close_rows(out, w_lp, tolerance(w_y, targets), f"logp {isa}")
            assert_close_rows(ent, w_ent, tolerance(w_y, targets), f"entropy {isa}")
    with pytest.raises(ValueError, match="unknown CPU kernel variant"):
        core.token_logprobs(0, 0, 1, 1, 0, 0, 1, 0, 0, False, 1.0, False, 0.0, 1, "sse9")


def _run_variant(core, logits, targets, isa, *, scale=None):
    n, v = logits.shape
    out = torch.empty(n)
    core.token_logprobs(
        logits.data_ptr(), n, v, logits.stride(0), args.LOGITS_CODES[logits.dtype],
        targets.data_ptr(), 1, out.data_ptr(), 0, scale is not None, scale or 1.0, False, 0.0, 1, isa,
    )  # fmt: skip
    return out


@needs_core
def test_fp16_conversion_every_bit_pattern():
    """Every fp16 value (subnormals, both zeros, infinities, every NaN) is read exactly by every
    variant, through the vector path (whole rows) and the scalar path (the target's logit).
    Values are grouped by exponent and scaled so that one fp16 ulp moves logp by >= 1/128 nat,
    far above the tolerance: a conversion off by one ulp fails."""
    core = _native.core()
    bits = torch.arange(0, 1 << 16, dtype=torch.int32).to(torch.int16)
    h = bits.view(torch.float16)
    exp_field = (bits.to(torch.int32) >> 10) & 0x1F
    v = 16
    cases = []
    for e in range(0, 31):  # 0: zeros and subnormals, 1..30: normal binades
        vals = h[exp_field == e]  # 2048 values: both signs, every mantissa
        # each row of 16 values repeated 16 times, with every column as the target once
        logits = vals.reshape(-1, v).repeat_interleave(v, dim=0).contiguous()
        targets = torch.arange(v).repeat(len(vals) // v)
        scale = 2.0**24 / 64 if e == 0 else 2.0 ** (3 - (e - 15))  # |y| < 16 or so
        want, _, y = reference(logits, targets, scale=scale)
        cases.append((e, logits, targets, scale, want, tolerance(y, targets)))
    for isa in core.build_info()["cpu_variants_supported"]:
        for e, logits, targets, scale, want, tol in cases:
            got = _run_variant(core, logits, targets, isa, scale=scale)
            assert_close_rows(got, want, tol, f"fp16 binade {e} {isa}")
        special = h[exp_field == 31]  # +-inf and 2046 NaN patterns
        rows = torch.zeros(len(special), v, dtype=torch.float16)
        rows[:, 5] = special
        lp = _run_variant(core, rows, torch.zeros(len(special), dtype=torch.int64), isa)
        is_nan = torch.isnan(special)
        assert torch.isnan(lp[is_nan]).all(), f"{isa}: a NaN pattern gave a number"
        neg_inf = special == -math.inf
        assert torch.allclose(lp[neg_inf], torch.tensor(-math.log(v - 1))), isa  # masked entry
        assert torch.isnan(lp[special == math.inf]).all(), isa  # +inf logits: NaN (documented)


@needs_core
def test_kernel_itself_never_reads_outside_the_row():
    """Second line of defence behind the Python range check: the compiled kernel, called directly
    with targets outside [0, V), writes NaN for those rows (no out-of-bounds read, no crash) and
    correct values for the others."""
    core = _native.core()
    logits = make_logits(4, 1000, torch.float32)
    for dtype in (torch.int64, torch.int32):
        targets = torch.tensor([-1, 5, 1000, 2**31 - 1], dtype=dtype)
        out = torch.empty(4)
        core.token_logprobs(
            logits.data_ptr(), 4, 1000, 1000, 0, targets.data_ptr(), args.TARGET_CODES[dtype],
            out.data_ptr(), 0, False, 1.0, False, 0.0, 1, "",
        )  # fmt: skip
        assert torch.isnan(out[[0, 2, 3]]).all()
        want, _, y = reference(logits[1:2], torch.tensor([5]))
        assert_close_rows(out[1:2], want, tolerance(y, torch.tensor([5])), "valid row")


@needs_core
def test_threads_do_not_change_results():
    logits = make_logits(64, 3000, torch.bfloat16, seed=8)
    targets = make_targets(64, 3000)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = kernels.token_logprobs(logits, targets, entropy=True)
        torch.set_num_threads(2)
        b = kernels.token_logprobs(logits, targets, entropy=True)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@needs_core
def test_inference_mode_and_grad_inputs():
    logits = make_logits(6, 1000, torch.float32).requires_grad_()
    targets = make_targets(6, 1000)
    lp = kernels.token_logprobs(logits, targets)
    assert not lp.requires_grad
    with torch.inference_mode():
        x = make_logits(6, 1000, torch.float32)
        t = make_targets(6, 1000)
        lp2 = kernels.token_logprobs(x, t)
    assert torch.equal(lp, lp2)
    with torch.no_grad():
        assert torch.equal(kernels.token_logprobs(logits, targets), lp)


# ------------------------------------------------------------------------------------------------
# the pure-torch path
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_torch_reference_path(dtype):
    n, v = 5, 50257
    x = make_logits(n, v, torch.float32, seed=12)
    x[0, :1000] = -math.inf
    logits = x.to(dtype)
    targets = make_targets(n, v)
    check(logits, targets, fn=kernels.reference_token_logprobs, what="torch path")
    check(logits, targets, softcap=30.0, scale=0.5, fn=kernels.reference_token_logprobs, what="torch path cap")


def test_fallback_warns_once_when_core_missing(monkeypatch):
    monkeypatch.setattr(_native, "_loaded", True)
    monkeypatch.setattr(_native, "_core", None)
    monkeypatch.setattr(_native, "_core_error", "pylogmap.kernels._core could not be imported (test)")
    monkeypatch.setattr(logprobs, "_warned_fallback", False)
    assert kernels.native_status()["core_loaded"] is False
    logits = make_logits(3, 100, torch.bfloat16)
    targets = make_targets(3, 100)
    with pytest.warns(RuntimeWarning, match="pure-torch.*could not be imported"):
        lp = kernels.token_logprobs(logits, targets)
    want, _, y = reference(logits, targets)
    assert_close_rows(lp, want, tolerance(y, targets), "fallback")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second call must not warn again
        kernels.token_logprobs(logits, targets)


def test_cuda_tensors_without_cuda_module_raise(monkeypatch):
    """Without the CUDA module, CUDA logits are a clear RuntimeError (not a silent slow path).
    There is no CUDA tensor on a CPU-only torch, so the dispatcher is driven with meta tensors,
    which take the same non-CPU branch."""
    monkeypatch.setattr(_native, "_loaded", True)
    monkeypatch.setattr(_native, "_cuda", None)
    monkeypatch.setattr(_native, "_cuda_error", "pylogmap was built without its CUDA module (test)")
    monkeypatch.delenv("PYLOGMAP_TORCH_FALLBACK", raising=False)
    logits = torch.empty(2, 5, device="meta")
    targets = torch.zeros(2, dtype=torch.int64, device="meta")
    out = torch.empty(2, device="meta")
    with pytest.raises(RuntimeError, match="CUDA module, which is not available.*without its CUDA module"):
        logprobs.logprobs_into(logits, targets, out, None, None, None)


# ------------------------------------------------------------------------------------------------
# bad inputs
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,exc,match",
    [
        (lambda: (torch.randn(3, 10), torch.tensor([1, -1, 2])), ValueError, r"targets\[1\] = -1 is out of range.*V = 10"),
        (lambda: (torch.randn(3, 10), torch.tensor([1, 2, 10])), ValueError, r"targets\[2\] = 10 is out of range"),
        (lambda: (torch.randn(3, 10), torch.tensor([1, 2], dtype=torch.int32)), ValueError, "2 entries but logits has 3 rows"),
        (lambda: (torch.randn(3, 10).double(), torch.tensor([1, 2, 3])), TypeError, "float64 is not supported"),
        (lambda: (torch.randint(0, 5, (3, 10)), torch.tensor([1, 2, 3])), TypeError, "int64 is not supported"),
        (lambda: (torch.randn(3, 10), torch.tensor([1.0, 2.0, 3.0])), TypeError, "targets dtype torch.float32"),
        (lambda: (torch.randn(3, 10), torch.tensor([1, 2, 3], dtype=torch.int16)), TypeError, "targets dtype torch.int16"),
        (lambda: (torch.randn(2, 3, 10), torch.tensor([1, 2])), ValueError, "must be 2-D"),
        (lambda: (torch.randn(10), torch.tensor([1])), ValueError, "must be 2-D"),
        (lambda: (torch.randn(3, 10), torch.tensor([[1, 2, 3]])), ValueError, "targets must be 1-D"),
        (lambda: (torch.randn(10, 3).t(), torch.tensor([1, 2, 3])), ValueError, "last dimension of logits must be contiguous"),
        (lambda: (torch.randn(1, 10).expand(3, 10), torch.tensor([1, 2, 3])), ValueError, "row stride"),
        (lambda: (torch.randn(3, 0), torch.zeros(3, dtype=torch.int64)), ValueError, "V = 0"),
        (lambda: (torch.randn(3, 10).numpy(), torch.tensor([1, 2, 3])), TypeError, "logits must be a torch.Tensor"),
        (lambda: (torch.randn(3, 10), [1, 2, 3]), TypeError, "targets must be a torch.Tensor"),
        (lambda: (torch.randn(3, 10, device="meta"), torch.tensor([1, 2, 3], device="meta")), ValueError, "device type 'meta'"),
        (lambda: (torch.randn(3, 10), torch.tensor([1, 2, 3], device="meta")), ValueError, "same device"),
        (lambda: (torch.randn(3, 10).to_sparse(), torch.tensor([1, 2, 3])), ValueError, "sparse"),
    ],
)
def test_bad_inputs(make, exc, match):
    logits, targets = make()
    with pytest.raises(exc, match=match):
        kernels.token_logprobs(logits, targets)
    with pytest.raises(exc, match=match):
        kernels.reference_token_logprobs(logits, targets)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"softcap": 0.0}, ValueError, "softcap must be a finite number > 0"),
        ({"softcap": -30.0}, ValueError, "softcap must be a finite number > 0"),
        ({"softcap": math.inf}, ValueError, "softcap must be a finite number > 0"),
        ({"softcap": math.nan}, ValueError, "softcap must be a finite number > 0"),
        ({"softcap": "30"}, TypeError, "softcap must be a positive number"),
        ({"softcap": True}, TypeError, "softcap must be a positive number"),
        ({"scale": math.inf}, ValueError, "scale must be finite"),
        ({"scale": None, "entropy": 1}, TypeError, "entropy must be True or False"),
    ],
)
def test_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        kernels.token_logprobs(torch.randn(3, 10), torch.tensor([1, 2, 3]), **kwargs)


def test_native_status_keys():
    st = kernels.native_status()
    for key in ("core_loaded", "core_error", "cuda_built", "cuda_loaded", "cuda_error", "build"):
        assert key in st
    assert isinstance(st["core_loaded"], bool) and isinstance(st["cuda_loaded"], bool)
    assert (st["core_error"] is None) == st["core_loaded"]
    assert (st["cuda_error"] is None) == st["cuda_loaded"]


# ------------------------------------------------------------------------------------------------
# CUDA (only where a GPU and the CUDA module are present; conftest.py skips them otherwise)
# ------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("n,v", [(33, 7), (300, 50257), (5, 151936), (4, 256000), (3, 1)])
def test_cuda_matches_reference(dtype, n, v):
    logits = make_logits(n, v, dtype, seed=v).cuda()
    targets = make_targets(n, v).cuda()
    check(logits, targets, what=f"cuda {dtype} V={v}")
    check(logits, targets.int(), softcap=30.0, scale=0.5, what=f"cuda softcap {dtype} V={v}")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("offset", [0, 1, 3, 7])
def test_cuda_unaligned_rows_and_specials(dtype, offset):
    n, v, width = 6, 50257, 50257 + 13
    x = make_logits(n, width, torch.float32, seed=offset)
    x[0, offset : offset + 4] = 1e4  # maximum in the unaligned head
    x[1, offset + v - 1] = 1e4  # maximum in the tail
    x[2, offset : offset + 30000] = -math.inf  # masked
    x[3, offset + 100] = math.nan
    buf = x.to(dtype).cuda()
    logits = buf[:, offset : offset + v]
    targets = torch.tensor([1, v - 1, 40000, 5, 0, 12345]).cuda()
    want_lp, want_ent, y = reference(logits.cpu(), targets.cpu())
    lp, ent = kernels.token_logprobs(logits, targets, entropy=True)
    tol = tolerance(y, targets.cpu())
    assert_close_rows(lp, want_lp, tol, "cuda unaligned logp")
    assert_close_rows(ent, want_ent, tol, "cuda unaligned entropy")
    assert torch.isnan(lp[3]).item() and torch.isnan(ent[3]).item()


@pytest.mark.gpu
def test_cuda_matches_cpu_kernel_and_uses_current_stream():
    logits = make_logits(4096, 32000, torch.bfloat16, seed=1)
    targets = make_targets(4096, 32000)
    cpu_lp = kernels.token_logprobs(logits, targets)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        x = logits.cuda(non_blocking=False)
        t = targets.cuda()
        lp = kernels.token_logprobs(x, t)  # enqueued on s, after the copies on s
    s.synchronize()
    assert (lp.cpu() - cpu_lp).abs().max().item() < 1e-4


@pytest.mark.gpu
def test_cuda_bad_targets_and_empty():
    x = torch.randn(3, 10, device="cuda")
    with pytest.raises(ValueError, match=r"targets\[1\] = 10 is out of range"):
        kernels.token_logprobs(x, torch.tensor([0, 10, 2], device="cuda"))
    with pytest.raises(ValueError, match="same device"):
        kernels.token_logprobs(x, torch.tensor([0, 1, 2]))
    lp = kernels.token_logprobs(torch.empty(0, 10, device="cuda"), torch.empty(0, dtype=torch.int64, device="cuda"))
    assert lp.shape == (0,) and lp.is_cuda


@pytest.mark.gpu
def test_cuda_kernel_itself_never_reads_outside_the_row():
    x = torch.randn(3, 1000, device="cuda")
    targets = torch.tensor([-1, 5, 1000], device="cuda")
    out = torch.empty(3, device="cuda")
    _native.cuda().token_logprobs(
        x.data_ptr(), 3, 1000, 1000, 0, targets.data_ptr(), 1, out.data_ptr(), 0,
        False, 1.0, False, 0.0, x.device.index, torch.cuda.current_stream().cuda_stream,
    )  # fmt: skip
    out = out.cpu()
    assert torch.isnan(out[[0, 2]]).all() and torch.isfinite(out[1])
