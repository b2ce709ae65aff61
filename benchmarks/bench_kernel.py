"""Benchmark the fused log-prob kernel against the two usual torch ways of getting the same numbers.

For each (N, V, dtype) it times, in the same run and on the same tensors:
  ours  pylogmap.kernels.token_logprobs(x, t)
  lsm   torch.log_softmax(x.float(), -1).gather(1, t[:, None])
  ce    -torch.nn.functional.cross_entropy(x, t, reduction="none")
and prints the median time, the effective bandwidth (bytes of logits read / time), the peak extra
memory each one allocates (torch's profiler on CPU, torch.cuda.max_memory_allocated on CUDA), the
speed-up of ours over the faster baseline, and the largest difference between ours and lsm
(a correctness check on the benchmark inputs; ce is not compared because on bf16/fp16 input it
returns bf16/fp16 values, rounded to ~0.03 nats).

    python benchmarks/bench_kernel.py                  # CPU, and CUDA when available
    python benchmarks/bench_kernel.py --device cuda --repeats 50
    python benchmarks/bench_kernel.py --device cpu --threads 2 --repeats 15

Run it against the built package (installed, or built in place: docs/kernel.md).
"""

from __future__ import annotations

import argparse
import datetime
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
CUDA_CONFIGS = [
    (8192, 32768, torch.bfloat16),
    (8192, 50257, torch.bfloat16),
    (8192, 50257, torch.float32),
    (8192, 50257, torch.float16),
    (4096, 151936, torch.bfloat16),
    (4096, 256000, torch.bfloat16),
    (4096, 151936, torch.float32),
    (16384, 7, torch.float32),
]
DT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_it(fn, device: str, repeats: int) -> float:
    """Median seconds per call, after two warm-up calls."""
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


def run(device: str, configs, repeats: int) -> list[dict]:
    from pylogmap import kernels

    rows = []
    for n, v, dtype in configs:
        g = torch.Generator().manual_seed(0)
        x = (torch.randn(n, v, generator=g) * 4).to(dtype).to(device)
        t = torch.randint(0, v, (n,), generator=g).to(device)
        fns = {
            "ours": lambda: kernels.token_logprobs(x, t),
            "lsm": lambda: torch.log_softmax(x.float(), -1).gather(1, t[:, None])[:, 0],
            "ce": lambda: -F.cross_entropy(x, t, reduction="none"),
        }
        res = {"device": device, "N": n, "V": v, "dtype": DT[dtype]}
        for name, fn in fns.items():
            res[f"{name}_s"] = time_it(fn, device, repeats)
            res[f"{name}_mem"] = peak_extra_bytes(fn, device)
        res["diff"] = float((fns["ours"]() - fns["lsm"]()).abs().max())
        res["gbps"] = x.numel() * x.element_size() / res["ours_s"] / 1e9
        res["speedup"] = min(res["lsm_s"], res["ce_s"]) / res["ours_s"]
        rows.append(res)
        print_row(res)
        del x, t
    return rows


HEADER = (
    f"{'device':6} {'N':>6} {'V':>7} {'dtype':5} | {'ours ms':>8} {'lsm ms':>8} {'ce ms':>8} | "
    f"{'ours GB/s':>9} | {'peak extra MiB ours/lsm/ce':>27} | {'best/ours':>9} | {'max|diff|':>9}"
)


def print_row(r: dict) -> None:
    mib = f"{r['ours_mem'] / 2**20:.2f}/{r['lsm_mem'] / 2**20:.0f}/{r['ce_mem'] / 2**20:.0f}"
    print(
        f"{r['device']:6} {r['N']:>6} {r['V']:>7} {r['dtype']:5} | {r['ours_s'] * 1e3:8.2f} "
        f"{r['lsm_s'] * 1e3:8.2f} {r['ce_s'] * 1e3:8.2f} | {r['gbps']:9.1f} | {mib:>27} | "
        f"{r['speedup']:8.2f}x | {r['diff']:9.2e}",
        flush=True,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="auto: CPU, then CUDA when available")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=11, help="timed calls per measurement (median)")
    ap.add_argument("--threads", type=int, default=None, help="torch/OpenMP threads on CPU")
    ap.add_argument("--quick", action="store_true", help="only the first two configurations")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from pylogmap import kernels

    st = kernels.native_status()
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads, "
          f"cpu variant {st.get('cpu_variant')}, core {st['core_loaded']}, cuda {st['cuda_loaded']}")  # fmt: skip
    if not st["core_loaded"]:
        print(f"# WARNING: {st['core_error']} -- 'ours' is the torch fallback")
    devices = ["cpu", "cuda"] if args.device == "auto" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            raise SystemExit("no CUDA device here")
        devices.remove("cuda")
    print(HEADER)
    for device in devices:
        configs = CPU_CONFIGS if device == "cpu" else CUDA_CONFIGS
        if device == "cuda":
            print(f"# {torch.cuda.get_device_name()}")
        run(device, configs[:2] if args.quick else configs, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
