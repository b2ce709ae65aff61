"""Benchmark the fused log-prob kernel against the two usual torch ways of getting the same numbers.

For each (N, V, dtype) it times, in the same run and on the same tensors:
  ours  pylogmap.kernels.token_logprobs(x, t)
  lsm   torch.log_softmax(x.float(), -1).gather(1, t[:, None])
  ce    -torch.nn.functional.cross_entropy(x, t, reduction="none")
  copy  y.copy_(x): a device-to-device copy of the same bytes (the bandwidth ceiling)
and prints the median time, our read bandwidth (bytes of logits / our time), the copy's bandwidth
(bytes read + bytes written / its time, as memory bandwidth is usually quoted) and the ratio of the
two, the peak extra memory each method allocates (torch's profiler on CPU,
torch.cuda.max_memory_allocated on CUDA), the speed-up of ours over the faster torch baseline, and
the largest difference between ours and lsm (a correctness check on the benchmark inputs; ce is not
compared because on bf16/fp16 input it returns bf16/fp16 values, rounded to ~0.03 nats).

On CUDA every time is a median of CUDA-event timings (after two warm-up calls), the inputs are
drawn on the device, and the goals of the GPU suite are checked for bf16 rows with V >= 32000:
read bandwidth >= 0.90 of the copy's, and >= 2x the faster torch baseline (column "goals").

    python benchmarks/bench_kernel.py                  # CPU, and CUDA when available
    python benchmarks/bench_kernel.py --device cuda --repeats 50 --json kernel.json
    python benchmarks/bench_kernel.py --device cpu --threads 2 --repeats 15
    python benchmarks/bench_kernel.py --device cpu --configs cuda --rows 4 --repeats 1   # dry run

Run it against the built package (installed, or built in place: docs/kernel.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

CPU_CONFIGS = [
    (512, 32000, torch.float32),
    (512, 32000, torch.bfloat16),
    (512, 50257, torch.float32),
    (512, 50257, torch.bfloat16),
    (512, 50257, torch.float16),
    (128, 151936, torch.float32),
    (128, 151936, torch.bfloat16),
    (64, 256000, torch.bfloat16),
]
# The GPU suite's table: bf16 logits of 16384 rows for the vocabularies of Llama 2, GPT-2, Llama 3,
# Qwen 2 and Gemma; then fp16 and fp32 at GPT-2's vocabulary and a tiny vocabulary (launch-bound).
CUDA_CONFIGS = [
    (16384, 32000, torch.bfloat16),
    (16384, 50257, torch.bfloat16),
    (16384, 128256, torch.bfloat16),
    (16384, 151936, torch.bfloat16),
    (16384, 256000, torch.bfloat16),
    (16384, 50257, torch.float16),
    (16384, 50257, torch.float32),
    (16384, 7, torch.float32),
]
CONFIGS = {"cpu": CPU_CONFIGS, "cuda": CUDA_CONFIGS}
DT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
# Goals of the GPU suite (issue 16, item 3), checked on CUDA for bf16 and V >= GOAL_MIN_V.
GOAL_COPY_RATIO = 0.90
GOAL_SPEEDUP = 2.0
GOAL_MIN_V = 32000


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_it(fn, device: str, repeats: int) -> float:
    """Median seconds per call, after two warm-up calls (CUDA: timed with CUDA events)."""
    for _ in range(2):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_extra_bytes(fn, device: str) -> int:
    """Peak bytes allocated by fn beyond what existed before (its result included)."""
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del out
        return peak
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
        del out
    # An op's own allocations happen at its start; frees it does itself (of its children's
    # temporaries, e.g. cross_entropy freeing the log_softmax result) at its end.
    deltas = []
    for e in prof.events():
        b = e.self_cpu_memory_usage
        if b:
            deltas.append((e.time_range.start if b > 0 else e.time_range.end, b))
    cur = peak = 0
    for _, b in sorted(deltas, key=lambda d: (d[0], -d[1])):
        cur += b
        peak = max(peak, cur)
    return peak


def make_inputs(n: int, v: int, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits `randn * 4` in `dtype` and uniform targets, drawn on the device itself (drawing 4e9
    values on the host and copying them over would take longer than the whole benchmark)."""
    g = torch.Generator(device=device).manual_seed(0)
    x = (torch.randn(n, v, generator=g, device=device) * 4).to(dtype)
    t = torch.randint(0, v, (n,), generator=g, device=device)
    return x, t


def goals(res: dict) -> str:
    """'ok' / 'MISS ...' for the rows the GPU suite sets goals for, '' for the others."""
    if res["device"] != "cuda" or res["dtype"] != "bf16" or res["V"] < GOAL_MIN_V:
        return ""
    missed = []
    if res["copy_ratio"] < GOAL_COPY_RATIO:
        missed.append(f"copy<{GOAL_COPY_RATIO:.2f}")
    if res["speedup"] < GOAL_SPEEDUP:
        missed.append(f"best/ours<{GOAL_SPEEDUP:g}")
    return "MISS " + ",".join(missed) if missed else "ok"


def run(device: str, configs, repeats: int) -> list[dict]:
    from pylogmap import kernels

    rows = []
    for n, v, dtype in configs:
        x, t = make_inputs(n, v, dtype, device)
        copy_dst = torch.empty_like(x)
        fns = {
            "ours": lambda: kernels.token_logprobs(x, t),
            "lsm": lambda: torch.log_softmax(x.float(), -1).gather(1, t[:, None])[:, 0],
            "ce": lambda: -F.cross_entropy(x, t, reduction="none"),
        }
        res = {"device": device, "N": n, "V": v, "dtype": DT[dtype]}
        for name, fn in fns.items():
            res[f"{name}_s"] = time_it(fn, device, repeats)
            res[f"{name}_mem"] = peak_extra_bytes(fn, device)
        res["copy_s"] = time_it(lambda: copy_dst.copy_(x), device, repeats)
        res["diff"] = float((fns["ours"]() - fns["lsm"]()).abs().max())
        nbytes = x.numel() * x.element_size()
        res["gbps"] = nbytes / res["ours_s"] / 1e9
        res["copy_gbps"] = 2 * nbytes / res["copy_s"] / 1e9  # read + write
        res["copy_ratio"] = res["gbps"] / res["copy_gbps"]
        res["speedup"] = min(res["lsm_s"], res["ce_s"]) / res["ours_s"]
        res["goals"] = goals(res)
        rows.append(res)
        print_row(res)
        del x, t, copy_dst, fns
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


HEADER = (
    f"{'device':6} {'N':>6} {'V':>7} {'dtype':5} | {'ours ms':>8} {'lsm ms':>8} {'ce ms':>8} {'copy ms':>8} | "
    f"{'ours GB/s':>9} {'copy GB/s':>9} {'/copy':>5} | {'peak extra MiB ours/lsm/ce':>27} | "
    f"{'best/ours':>9} | {'max|diff|':>9} | goals"
)


def print_row(r: dict) -> None:
    mib = f"{r['ours_mem'] / 2**20:.2f}/{r['lsm_mem'] / 2**20:.0f}/{r['ce_mem'] / 2**20:.0f}"
    print(
        f"{r['device']:6} {r['N']:>6} {r['V']:>7} {r['dtype']:5} | {r['ours_s'] * 1e3:8.2f} "
        f"{r['lsm_s'] * 1e3:8.2f} {r['ce_s'] * 1e3:8.2f} {r['copy_s'] * 1e3:8.2f} | {r['gbps']:9.1f} "
        f"{r['copy_gbps']:9.1f} {r['copy_ratio']:5.2f} | {mib:>27} | {r['speedup']:8.2f}x | "
        f"{r['diff']:9.2e} | {r['goals']}",
        flush=True,
    )


def environment() -> dict:
    """What the figures were measured on (printed as the first line, stored in the JSON)."""
    from pylogmap import kernels

    st = kernels.native_status()
    env = {
        "date_utc": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}",
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_variant": st.get("cpu_variant"),
        "core_loaded": st["core_loaded"],
        "core_error": st["core_error"],
        "cuda_loaded": st["cuda_loaded"],
        "cuda_error": st["cuda_error"],
        "cuda_runtime": st.get("cuda_runtime"),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    return env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="auto: CPU, then CUDA when available")  # fmt: skip
    ap.add_argument("--configs", choices=sorted(CONFIGS), default=None,
                    help="which table of (N, V, dtype) to run (default: the device's own)")  # fmt: skip
    ap.add_argument("--rows", type=int, default=None, help="override N in every configuration (dry runs)")
    ap.add_argument("--repeats", type=int, default=11, help="timed calls per measurement (median)")
    ap.add_argument("--threads", type=int, default=None, help="torch/OpenMP threads on CPU")
    ap.add_argument("--quick", action="store_true", help="only the first two configurations")
    ap.add_argument("--json", default=None, help="also write the rows and the environment to this file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    env = environment()
    print(f"# {env['date_utc']} UTC, torch {env['torch']} (CUDA {env['torch_cuda']}), {env['cpu']}, "
          f"{env['cpu_threads']} CPU threads, cpu variant {env['cpu_variant']}, core {env['core_loaded']}, "
          f"cuda {env['cuda_loaded']}")  # fmt: skip
    if not env["core_loaded"]:
        print(f"# WARNING: {env['core_error']} -- 'ours' is the torch fallback on the CPU")
    devices = ["cpu", "cuda"] if args.device == "auto" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            raise SystemExit("--device cuda: torch sees no CUDA device here")
        devices.remove("cuda")
    if "cuda" in devices and not env["cuda_loaded"]:
        raise SystemExit(f"CUDA benchmark without pylogmap's CUDA module: {env['cuda_error']}")
    print(HEADER)
    rows = []
    for device in devices:
        configs = CONFIGS[args.configs or device]
        if args.rows:
            configs = [(args.rows, v, dtype) for _, v, dtype in configs]
        if device == "cuda":
            print(f"# {env['gpu']}, CUDA runtime {env['cuda_runtime']}")
        rows += run(device, configs[:2] if args.quick else configs, args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "repeats": args.repeats, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
