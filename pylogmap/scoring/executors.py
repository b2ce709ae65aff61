"""Where scoring jobs run: in this process, one after another, or spread over GPUs with Ray.

A job is a `jobs.ScoreJob` (model spec, revision, options); running it gives a `jobs.JobResult`
(arrays plus metadata, or an error). An executor takes the list of jobs and the texts and yields
results as they finish, in any order. Only the driver (`driver.score_models`, which is handed an
executor) writes the map file, so the HDF5 file always has a single writer however many workers
there are.

- `LocalExecutor`: runs the jobs in turn in this process and shares one token-id cache between
  them, so models with the same tokenizer tokenize the texts once.
- `RayExecutor` (optional extra `pip install 'pylogmap[ray]'`): each job is a Ray task asking for
  one GPU (`num_gpus=1`; 0 on a cluster without GPUs); the texts are put in the object store once,
  each worker process keeps its own token cache across the tasks it runs, and results stream back
  to the driver as tasks finish. A task that dies (worker crash, node loss) comes back as a failed
  result for that model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator, Sequence

from tqdm.auto import tqdm

from pylogmap.errors import PylogmapError
from pylogmap.scoring.jobs import JobResult, ScoreJob, run_job
from pylogmap.scoring.tokenize import TokenCache, texts_fingerprint

EXECUTORS = ("local", "ray")


class LocalExecutor:
    """Run jobs one after another in this process."""

    def __init__(self) -> None:
        self.cache = TokenCache()

    def run(self, jobs: Sequence[ScoreJob], texts: Sequence[str]) -> Iterator[JobResult]:
        key = texts_fingerprint(texts)
        for job in jobs:
            yield run_job(job, texts, self.cache, key)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise PylogmapError(
            "the Ray executor needs the 'ray' package, which is not installed; "
            "pip install 'pylogmap[ray]' (or use --executor local)."
        ) from None
    return ray


_WORKER_CACHE = None


def _ray_task(job, texts, texts_key):
    """Body of a Ray task: score one job in a worker, reusing that worker's token cache."""
    global _WORKER_CACHE
    if _WORKER_CACHE is None:
        _WORKER_CACHE = TokenCache()
    return run_job(replace(job, progress=False), texts, _WORKER_CACHE, texts_key)


class RayExecutor:
    """Run each job as a Ray task with one GPU; yield results to the driver as they finish.

    `address`: a Ray cluster address (None: connect to the running cluster or start a local one,
    as `ray.init` does). `num_gpus`: GPUs per job (None: 1 when the cluster has GPUs, else 0).
    `init_kwargs` are passed to `ray.init`.
    """

    def __init__(self, address: str | None = None, *, num_gpus: float | None = None, **init_kwargs) -> None:
        self.ray = _import_ray()
        self.address = address
        self.num_gpus = num_gpus
        self.init_kwargs = init_kwargs

    def run(self, jobs: Sequence[ScoreJob], texts: Sequence[str]) -> Iterator[JobResult]:
        ray = self.ray
        if not jobs:
            return
        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, **self.init_kwargs)
        num_gpus = self.num_gpus
        if num_gpus is None:
            num_gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_gpus=num_gpus, max_retries=0)(_ray_task)
        texts_ref = ray.put(list(texts))
        key = texts_fingerprint(texts)
        pending = {task.remote(job, texts_ref, key): job for job in jobs}
        show = any(job.progress for job in jobs)
        with tqdm(total=len(jobs), unit="model", desc="ray", disable=not show) as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - a lost worker fails that model only
                    result = JobResult(job=job, error=f"the Ray task failed: {type(err).__name__}: {err}")
                bar.update(1)
                yield result


def make_executor(name: str = "local", **kwargs):
    """The executor called `name` ("local" or "ray")."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(**kwargs)
    raise PylogmapError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}.")
