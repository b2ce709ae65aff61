"""Where scoring jobs run: in this process, one after another, or spread over a Ray cluster.

A job is a `jobs.ScoreJob` (model spec, revision, options); running it gives a `jobs.JobResult`
(arrays plus metadata, or an error). An executor takes the list of jobs and the texts and yields
one result per job, in the order of the jobs, so the map's rows are in the order of the model list
on every executor (the same file whatever ran where, and in whatever order it finished). Only the
driver (`driver.score_models`, which is handed an executor) writes the map file, so the HDF5 file
always has a single writer however many workers there are.

- `LocalExecutor`: runs the jobs in turn in this process and shares one token-id cache between
  them, so models with the same tokenizer tokenize the texts once.
- `RayExecutor` (`ray_executor`, optional extra `pip install 'pylogmap[ray]'`): one Ray task per
  job on a cluster or a local Ray instance, with retries for lost workers and nodes.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from pylogmap.errors import PylogmapError
from pylogmap.scoring.jobs import JobResult, ScoreJob, run_job
from pylogmap.scoring.ray_executor import RayExecutor
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


def make_executor(name: str = "local", **ray_options):
    """The executor called `name`: "local", or "ray" with `RayExecutor`'s keywords (address,
    gpus_per_model, max_retries, ...)."""
    if name == "local":
        if ray_options:
            given = ", ".join(sorted(ray_options))
            raise PylogmapError(f"{given} only apply to the Ray executor; add --executor ray (or drop them).")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(**ray_options)
    raise PylogmapError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}.")
