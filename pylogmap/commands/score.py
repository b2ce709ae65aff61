"""Score causal language models on a text set into a resumable HDF5 map file.

Each entry L[model, text] is the text's log-likelihood in nats under the model: the model's own
tokenizer with its default special tokens (a BOS only where that tokenizer adds one), the first
token unscored, texts cut at the model's context (and flagged). Results are committed model by
model: rerunning the same command skips finished models and continues; a killed run loses at most
the model in flight. A model that fails (cannot load, NaN scores, out of memory on one text) is
recorded as failed with its error and the run goes on; the exit status is then 1.

Models (M): a Hugging Face hub id (e.g. EleutherAI/pythia-70m), a GGUF file of a hub repository
(org/name/file.gguf), a local model directory, a .gguf file, or @FILE naming a text file with one
model per line ('#' starts a comment). A hub model may carry its own revisions: org/name@step1000,
org/name@<commit> or org/name@step1000:step10000:1000 (they take the place of --revision(s)).
Hub models are loaded at the commit their revision resolves to, which each row records; offline
(HF_HUB_OFFLINE=1) they come from the local cache (docs/scoring.md, "Offline clusters").
Local folders are named by their folder name in the map (the path is kept in the row's metadata).

examples:
  pylogmap score --texts texts.jsonl --models gpt2 EleutherAI/pythia-70m -o map.h5
  pylogmap score --texts texts.jsonl --models @models.txt -o map.h5 --dtype bf16
  pylogmap score --texts texts.jsonl --models EleutherAI/pythia-160m \\
      --revisions step1000:step10000:1000 -o pythia.h5
  pylogmap score --texts texts.jsonl --models EleutherAI/pythia-160m@step1000:step10000:1000 gpt2 -o mix.h5
  pylogmap score --texts texts.jsonl --models ./my-model --layers all -o lens.h5
  pylogmap score --texts texts.jsonl --models @models.txt -o map.h5 --executor ray --ray-address HEAD:6379
  pylogmap score --texts texts.jsonl --models @models.txt -o part-2.h5 --shard 2/8

Many GPUs and nodes (Ray, SLURM job arrays): docs/multi-gpu.md.
"""

from __future__ import annotations

import argparse
import sys

from pylogmap.errors import PylogmapError
from pylogmap.scoring import BATCH_TOKENS, DTYPES, EXECUTORS, make_executor, parse_shard, read_model_list, score_models
from pylogmap.texts import load_texts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--texts", required=True, metavar="TEXTS",
                        help="the text set: published jsonl, jsonl with a 'text' field, a .txt file "
                             "(one text per line) or a folder of .txt files")
    parser.add_argument("--models", required=True, nargs="+", metavar="M",
                        help="hub ids (org/name, org/name@REV, org/name/file.gguf), model directories, .gguf "
                             "files, or @FILE (one model per line)")
    parser.add_argument("-o", "--out", required=True, metavar="OUT.h5", help="the map file to create or extend")
    parser.add_argument("--dtype", default="auto", choices=DTYPES,
                        help="weight dtype (default auto: the checkpoint's dtype on a GPU, fp32 on the CPU)")
    parser.add_argument("--device", default="auto",
                        help="auto (a GPU when there is one), cuda, cuda:N or cpu (default auto)")
    parser.add_argument("--batch-tokens", type=int, default=None, metavar="N",
                        help=f"token budget of one batch, counting padding (default {BATCH_TOKENS['cuda']} on a "
                             f"GPU, {BATCH_TOKENS['cpu']} on the CPU; lower it if a GPU runs out of memory often)")
    revs = parser.add_mutually_exclusive_group()
    revs.add_argument("--revision", default=None, metavar="REV",
                      help="hub revision (branch, tag or commit) for every model")
    revs.add_argument("--revisions", default=None, metavar="REVS",
                      help="score several revisions of each model: 'step1000,step2000' or an inclusive "
                           "range 'step1000:step10000:1000'; the step number goes into the file")
    parser.add_argument("--layers", default=None, metavar="LAYERS",
                        help="logit lens: score hidden states through the final norm and head, one row "
                             "per layer: 'all', or indices like '0,6,12' or '0:12:2' (0 = embeddings)")
    parser.add_argument("--force", action="store_true",
                        help="rescore models already in the file, and replace a file made with other texts")
    parser.add_argument("--retry-failed", action="store_true", help="score again models recorded as failed")
    parser.add_argument("--save-token-logprobs", action="store_true",
                        help="also keep every token's log-probability (in OUT.tokens/, large)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow models that ship their own Python code (only for repositories you trust)")
    parser.add_argument("--executor", default="local", choices=EXECUTORS,
                        help="local: models one after another here (default); ray: one Ray task per model "
                             "with one GPU each (pip install 'pylogmap[ray]')")
    parser.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                        help="the Ray cluster to run on (default: $RAY_ADDRESS, else a new local Ray instance); "
                             "needs --executor ray")
    parser.add_argument("--ray-gpus-per-model", type=float, default=None, metavar="G",
                        help="GPUs each model's task reserves (default 1 when the cluster has GPUs, else 0; "
                             "0.5 packs two small models per GPU); needs --executor ray")
    parser.add_argument("--ray-retries", type=int, default=None, metavar="N",
                        help="times a model lost with its worker or node is retried before it is recorded as "
                             "failed (default 2); needs --executor ray")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="score only shard I of N (1 <= I <= N) of the models, split by a stable hash of "
                             "each model and revision; run the N shards into N files and merge them")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary table")


def executor_from_args(args: argparse.Namespace):
    """The executor the options ask for; --ray-* options without --executor ray are an error."""
    ray_options = {
        "address": ("--ray-address", args.ray_address),
        "gpus_per_model": ("--ray-gpus-per-model", args.ray_gpus_per_model),
        "max_retries": ("--ray-retries", args.ray_retries),
    }
    given = {key: value for key, (_, value) in ray_options.items() if value is not None}
    if args.executor != "ray" and given:
        flags = ", ".join(ray_options[key][0] for key in given)
        raise PylogmapError(f"{flags} only apply to the Ray executor; add --executor ray (or drop them).")
    return make_executor(args.executor, **given)


def run(args: argparse.Namespace) -> int:
    models = read_model_list(args.models)
    shard = parse_shard(args.shard) if args.shard is not None else None
    executor = executor_from_args(args)
    if args.executor == "ray":  # a wrong address fails now, before the texts are read or a file is made
        executor.connect(log_to_driver=not args.quiet)
    texts = load_texts(args.texts)  # its errors name the file and the line
    summary = score_models(
        texts,
        models,
        args.out,
        revision=args.revision,
        revisions=args.revisions,
        dtype=args.dtype,
        device=args.device,
        batch_tokens=args.batch_tokens,
        force=args.force,
        layers=args.layers,
        executor=executor,
        progress=not args.quiet,
        save_token_logprobs=args.save_token_logprobs,
        retry_failed=args.retry_failed,
        trust_remote_code=args.trust_remote_code,
        shard=shard,
    )
    if summary.failed:
        print(f"pylogmap score: {len(summary.failed)} of {len(summary.rows)} rows failed (recorded in "
              f"{args.out}; rerun with --retry-failed to try them again).", file=sys.stderr)
        return 1
    return 0
