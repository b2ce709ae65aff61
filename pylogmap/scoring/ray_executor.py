"""The Ray executor: one Ray task per model on a cluster (or a local Ray instance), results
streamed back to the driver, which alone writes the map file.

Connection: `address` (`--ray-address HOST:PORT`), else `RAY_ADDRESS`, else a new local Ray instance
on this machine (never an unrelated cluster that happens to run here). An already connected Ray
(`ray.init` called by the caller) is used as it is.

Order: results are yielded in the order of the jobs (a result that finishes early waits in the
driver's memory for the earlier ones), so the rows of the map are in the order of the model list
whatever the cluster did; the price is that a driver killed while a slow model holds up the queue
loses the finished results queued behind it (they are scored again on the rerun).

Scheduling: each task asks for `gpus_per_model` GPUs (default 1 when the cluster has GPUs, else 0;
fractions pack small models onto one GPU) and one CPU; the task uses exactly what Ray assigned it
(`ray_worker.score_on_node`). The texts go to the object store once per run; token ids are computed
once per tokenizer on each node and shared by its tasks (`ray_worker.NodeTokenCache`).

Faults: a task whose worker process or node dies is retried by Ray up to `max_retries` times (on
any node); after that its model comes back as a failed result with the reason, which the driver
records, so a lost node costs only the models it had in flight. A model that fails by itself (cannot
load, NaN scores) is not retried: `run_job` returns that as a normal failed result.
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import Iterator, Sequence

from tqdm.auto import tqdm

import pylogmap
from pylogmap.errors import PylogmapError
from pylogmap.scoring.jobs import JobResult, ScoreJob
from pylogmap.scoring.ray_worker import score_on_node
from pylogmap.scoring.tokenize import texts_fingerprint

DEFAULT_MAX_RETRIES = 2
CONNECT_TIMEOUT_S = 10.0


def import_ray():
    """The `ray` module, or a `PylogmapError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise PylogmapError(
            "the Ray executor needs the 'ray' package, which is not installed; "
            "pip install 'pylogmap[ray]' (or use --executor local)."
        ) from None
    return ray


class RayExecutor:
    """Run each job as a Ray task; yield the results to the driver in the order of the jobs.

    Tasks run and finish in any order (the progress bar counts them as they finish); a result is
    handed on as soon as every earlier job's has been, so the map's rows come in the order of the
    model list, as with the local executor, and the file is the same whichever node was faster.

    `address`: a Ray cluster address HOST:PORT (or `ray://HOST:PORT` for Ray Client); None uses
    `RAY_ADDRESS`, else starts a local Ray instance. `gpus_per_model`: GPUs each task reserves (None:
    1 when the cluster has GPUs, else 0). `max_retries`: how often a task lost with its worker or
    node is run again. Other keywords go to `ray.init` (e.g. `num_cpus` for a local instance).
    """

    def __init__(self, address: str | None = None, *, gpus_per_model: float | None = None,
                 max_retries: int = DEFAULT_MAX_RETRIES, **init_kwargs) -> None:
        self.ray = import_ray()
        if gpus_per_model is not None and not (isinstance(gpus_per_model, (int, float))
                                               and math.isfinite(gpus_per_model) and gpus_per_model >= 0):
            raise PylogmapError(f"--ray-gpus-per-model must be a number >= 0 (e.g. 1, 0.5 or 2), got {gpus_per_model!r}.")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise PylogmapError(f"--ray-retries must be a whole number >= 0, got {max_retries!r}.")
        self.address = address
        self.gpus_per_model = gpus_per_model
        self.max_retries = max_retries
        self.init_kwargs = init_kwargs

    # -- connection -------------------------------------------------------------------------
    def connect(self, *, log_to_driver: bool = True) -> None:
        """Connect to the cluster (or start a local instance) unless Ray is already connected."""
        ray = self.ray
        if ray.is_initialized():
            return
        check_no_source_folder_here()
        address = self.address or os.environ.get("RAY_ADDRESS") or "local"
        if address not in ("local", "auto") and "://" not in address:
            check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=log_to_driver, **self.init_kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = "start a local Ray instance" if address == "local" else f"connect to the Ray cluster at {address}"
            raise PylogmapError(
                f"cannot {where}: {first_line(err)} (check the address and that the cluster's "
                "token, RAY_AUTH_TOKEN or ~/.ray/auth_token, is the one of that cluster)."
            ) from None

    def gpus_for_each_model(self) -> float:
        if self.gpus_per_model is not None:
            return self.gpus_per_model
        return 1 if self.ray.cluster_resources().get("GPU", 0) >= 1 else 0

    # -- running ----------------------------------------------------------------------------
    def run(self, jobs: Sequence[ScoreJob], texts: Sequence[str]) -> Iterator[JobResult]:
        jobs = list(jobs)
        if not jobs:
            return
        ray = self.ray
        show = any(job.progress for job in jobs)
        self.connect(log_to_driver=show)
        task = ray.remote(score_on_node)
        options = dict(num_gpus=self.gpus_for_each_model(), max_retries=self.max_retries, retry_exceptions=False)
        texts_ref = ray.put(list(texts))
        key = texts_fingerprint(texts)
        pending = {task.options(name=f"score {job.label}", **options).remote(job, texts_ref, key): (i, job)
                   for i, job in enumerate(jobs)}
        finished: dict[int, JobResult] = {}  # results that wait for an earlier job's
        next_index = 0
        failed = 0
        try:
            with tqdm(total=len(jobs), unit="model", desc="ray", disable=not show) as bar:
                while pending:
                    refs = list(pending)
                    ready, rest = ray.wait(refs, num_returns=1)
                    if rest:  # everything else already finished, in one call
                        more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                        ready += more
                    for ref in ready:
                        index, job = pending.pop(ref)
                        finished[index] = result = self._collect(ref, job)
                        failed += result.error is not None
                        bar.update(1)
                        if failed:
                            bar.set_postfix(failed=failed, refresh=False)
                    while next_index in finished:
                        yield finished.pop(next_index)
                        next_index += 1
        finally:
            for ref in pending:  # the driver stopped early: do not leave work running for nobody
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort; Ray ends a dead job's tasks anyway
                    pass

    def _collect(self, ref, job: ScoreJob) -> JobResult:
        """The task's result, or a failed result naming why the task was lost."""
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:  # raised by the task's own code (run_job does not)
            cause = err.cause if err.cause is not None else err
            return JobResult(job=job, error=f"the Ray task raised {type(cause).__name__}: {first_line(cause)}")
        except Exception as err:  # noqa: BLE001 - worker or node lost (after the retries), task cancelled
            return JobResult(
                job=job,
                error=f"lost on the Ray cluster after {1 + self.max_retries} attempts: "
                      f"{type(err).__name__}: {first_line(err)}",
            )


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, with a clear message, when nothing listens at HOST:PORT (ray.init would retry
    for a long while before giving up)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise PylogmapError(f"Ray address {address!r} is not HOST:PORT (e.g. 10.0.0.1:6379).")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise PylogmapError(
            f"no Ray cluster answers at {address} ({err.strerror or err}); start one there with "
            f"`ray start --head --port {port}`, or correct --ray-address / RAY_ADDRESS."
        ) from None


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def check_no_source_folder_here(cwd: Path | None = None) -> None:
    """Refuse to start Ray where its workers would import another pylogmap than this one.

    Ray puts the folder the run starts in first on every worker's import path (so that a script's
    own modules are found on the nodes). Started from a clone of pylogmap after a plain
    `pip install .`, the workers would import the clone's source folder (no compiled kernels, so
    the slower torch path, and possibly other code) instead of the installed package.
    """
    here = (cwd or Path.cwd()) / "pylogmap" / "__init__.py"
    if here.is_file() and here.resolve() != Path(pylogmap.__file__).resolve():
        raise PylogmapError(
            f"this folder holds a pylogmap source folder ({here.parent}) that is not the installed pylogmap, "
            "and Ray workers would import it instead; start the Ray run from another folder."
        )
