"""Training the zoo's runs in worker processes: the picklable job and the scheduler.

Each run is one `TrainJob` (everything it needs, picklable) that `train_and_save` trains and
saves atomically. `run_jobs` runs the jobs in a pool of spawned processes (or in this process
for one worker), a fine-tune only after its base. Each run is seeded on its own and trains on
one thread, so the weights do not depend on the number of workers or on the order in which runs
finish.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from pylogmap.demo.cache import save_atomically
from pylogmap.demo.config import ZooConfig
from pylogmap.demo.plan import RunSpec
from pylogmap.demo.runtime import quiet_transformers, torch_threads
from pylogmap.demo.tokenizer import wrap_tokenizer
from pylogmap.demo.training import train_run

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class TrainJob:
    """Everything one training run needs, picklable so that a worker process can run it."""

    run: RunSpec
    config: ZooConfig
    bpe_json: str
    stream: np.ndarray
    folder: str
    checkpoint_dirs: dict[int, str]
    init_from: str | None
    info: dict


def train_and_save(job: TrainJob, progress: bool = False) -> float:
    """Train one run and save its checkpoints and final model atomically; returns seconds."""
    started = time.perf_counter()
    run = job.run
    tokenizer = wrap_tokenizer(Tokenizer.from_str(job.bpe_json), add_bos=run.add_bos,
                               model_max_length=job.config.max_positions)
    with quiet_transformers(), torch_threads(job.config.threads):

        def save_checkpoint(step: int, model: PreTrainedModel) -> None:
            if step in job.checkpoint_dirs and step != run.steps:
                save_atomically(Path(job.checkpoint_dirs[step]), model, tokenizer, {**job.info, "step": step})

        model = train_run(run, job.config, tokenizer, job.stream,
                          init_from=Path(job.init_from) if job.init_from else None,
                          on_checkpoint=save_checkpoint, progress=progress)
        save_atomically(Path(job.folder), model, tokenizer, {**job.info, "step": run.steps})
    return time.perf_counter() - started


def default_workers(n_jobs: int) -> int:
    """Training processes: one per CPU core (each trains on one thread), at most 4, at most the jobs."""
    return max(1, min(4, os.cpu_count() or 1, n_jobs))


def run_jobs(
    jobs: list[TrainJob],
    workers: int,
    progress: bool,
    log: Callable[[str], None],
    total: int,
    numbers: dict[str, int],
) -> None:
    """Run the training jobs, a fine-tune only after its base; in worker processes when workers > 1.

    `log` gets one line per finished run, numbered `numbers[run]` of `total` (the zoo's runs,
    reused ones included).
    """

    def done_line(job: TrainJob, seconds: float) -> str:
        run = job.run
        return f"  [{numbers[run.name]}/{total}] trained {run.name} ({run.steps} steps, {seconds:.1f} s)"

    if workers <= 1:
        for job in jobs:
            log(done_line(job, train_and_save(job, progress=progress)))
        return

    waiting = list(jobs)
    to_train = {job.run.name for job in jobs}
    finished: set[str] = set()
    bar = tqdm(total=len(jobs), desc=f"training on {workers} processes", unit="run", disable=not progress, leave=False)
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending: dict[cf.Future, TrainJob] = {}
        while waiting or pending:
            for job in list(waiting):
                base = job.run.base
                if base is None or base not in to_train or base in finished:
                    pending[pool.submit(train_and_save, job)] = job
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
