"""The engine behind `pylogmap score`: score models into a map file, resumably, with one writer.

`score_models` checks an existing output file before writing anything, opens the map file's single
writer, names the rows (hub ids as given, local folders by their own name: `names.row_names`),
keeps the jobs of its shard (`--shard I/N`, `shards`), skips rows already finished (resume; a hub
row whose branch has moved since is said so), hands one job per (model, revision) to an executor
(`LocalExecutor` unless another is given), records each result as it arrives (in the order of the
jobs, which every executor keeps), and prints a summary table. The executor only runs jobs;
recording is the driver's alone.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from pylogmap.errors import MapFileError, PylogmapError, TextSetError
from pylogmap.scoring import hub
from pylogmap.scoring.executors import LocalExecutor
from pylogmap.scoring.jobs import JobResult, ScoreJob, job_keys
from pylogmap.scoring.layers import LayersArg, job_layers
from pylogmap.scoring.models import hub_parts
from pylogmap.scoring.names import is_local, local_path, row_names, stored_meta
from pylogmap.scoring.specs import model_revisions
from pylogmap.scoring.shards import Shard, parse_shard
from pylogmap.scoring.summary import RowSummary, ScoreSummary
from pylogmap.store import ScoreWriter, as_key, open_map
from pylogmap.texts import TextSet, load_texts


def score_models(
    texts,
    models: Sequence[str],
    out,
    *,
    revisions: str | Sequence[str] | None = None,
    revision: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    batch_tokens: int | None = None,
    force: bool = False,
    layers: LayersArg = None,
    executor=None,
    progress: bool = True,
    save_token_logprobs: bool = False,
    retry_failed: bool = False,
    trust_remote_code: bool = False,
    commit_interval: float | None = None,
    shard: str | tuple[int, int] | Shard | None = None,
) -> ScoreSummary:
    """Score `models` on `texts` into the map file `out` (created, or resumed).

    `texts`: a `TextSet`, a path `load_texts` reads, or a list of strings. `models`: hub ids
    (`org/name`, `org/name/file.gguf`), local directories or .gguf files; each is scored at
    `revision` (one) or at every revision of `revisions` ('step1000,step2000',
    'step1000:step10000:1000', or a list), unless it names its own (`org/name@step1000`,
    `org/name@step1000:step4000:1000`, `org/name@<commit>`). Local models' rows are named by the
    folder or file name (`names.row_names`), their path kept in the row's metadata. Rows already
    finished in `out` are skipped (`force` rescores them; `retry_failed` retries failed ones); a file of
    another text set is refused unless `force`, which replaces it. `layers` (None, "all", or a list
    of hidden-state indices) scores the logit lens, one row per layer. `executor` runs the jobs
    (default: a `LocalExecutor`, one model after another here). `shard` ('I/N' or (I, N)) keeps
    only the (model, revision) pairs of shard I of N (`shards.shard_of`), for N runs into N files.
    Returns a `ScoreSummary`; failed models are recorded in the file with their error and do not
    stop the run.
    """
    texts = _as_textset(texts)
    if len(texts) == 0:
        raise TextSetError("the text set is empty; give at least one text.")
    models = [str(m) for m in models]
    if not models:
        raise PylogmapError("no models given; name at least one hub id, directory or .gguf file.")
    pairs = model_revisions(models, revision=revision, revisions=revisions)
    layers = job_layers(layers)
    if batch_tokens is not None and (isinstance(batch_tokens, bool) or int(batch_tokens) < 1):
        raise PylogmapError(f"batch_tokens must be a positive number of tokens, got {batch_tokens!r}.")
    shard = parse_shard(shard) if shard is not None else None
    executor = executor or LocalExecutor()

    overwrite = _check_existing(out, texts, force)
    summary = ScoreSummary(path=str(out))
    with ScoreWriter(out, texts, overwrite=overwrite, commit_interval=commit_interval) as writer:
        stored = stored_meta(out)
        names = row_names(list(dict.fromkeys(m for m, _ in pairs)), [(k.name, meta) for k, meta in stored.items()])
        jobs_all = list({
            (names[m], r): ScoreJob(spec=m, name=names[m], revision=r, dtype=dtype, device=device,
                                    batch_tokens=int(batch_tokens) if batch_tokens else None, layers=layers,
                                    save_token_logprobs=save_token_logprobs, trust_remote_code=trust_remote_code,
                                    progress=progress)
            for m, r in pairs
        }.values())
        if shard is not None:
            n_all = len(jobs_all)
            # by row name, not the path as typed: a local folder keeps its shard wherever it sits
            jobs_all = [job for job in jobs_all if shard.holds(job.name, job.revision)]
            if progress:
                _say(f"shard {shard}: {len(jobs_all)} of {n_all} models (the others belong to other shards).")
        jobs = []
        for job in jobs_all:
            keys = job_keys(job)
            if keys is None:
                # "all" layers: unknown before loading; rerun unless every stored row of it is done
                if not force and _all_layers_done(writer, job, retry_failed):
                    summary.rows.append(RowSummary(job.label + "#all", "skipped"))
                    continue
                jobs.append(job)
                continue
            todo = writer.rows_to_do(keys, retry_failed=retry_failed, force=force)
            if todo:
                jobs.append(job)
            else:
                note = _moved(job, stored.get(as_key(keys[0])))
                if note and progress:
                    _say(f"note: {job.label}: {note}")
                summary.rows.extend(RowSummary(as_key(k).label, "skipped", note=note) for k in keys)
        if progress and len(jobs) < len(jobs_all):
            _say(f"{len(jobs_all) - len(jobs)} of {len(jobs_all)} models already scored in {out}; skipped.")
        for result in executor.run(jobs, texts.texts):
            _record(writer, result, summary, force=force, retry_failed=retry_failed)
            if progress and result.error:
                _say(f"failed: {result.job.label}: {result.error}")
    if progress:  # failures and notes were said as they came: the table does not repeat them
        _say("\n" + summary.table(details=False))
    return summary


def _moved(job: ScoreJob, meta: dict | None) -> str:
    """For a finished hub row: "" when its revision still resolves to the commit it was scored at
    (or when that cannot be told), else what moved (the row is kept as scored)."""
    if not meta or not meta.get("commit") or is_local(job.spec) or hub.is_commit(job.revision):
        return ""
    repo_id, _ = hub_parts(job.spec)
    try:
        now = hub.resolve_commit(repo_id, job.revision or None)
    except PylogmapError:
        return ""  # neither the hub nor the cache can say: nothing to compare
    if now == meta["commit"]:
        return ""
    return (f"{job.revision or 'main'} now points to commit {now[:12]}, the row was scored at "
            f"{str(meta['commit'])[:12]}; it is kept as scored (pass --force to rescore it).")


def _as_textset(texts) -> TextSet:
    if isinstance(texts, TextSet):
        return texts
    if isinstance(texts, (str, bytes)) or hasattr(texts, "__fspath__"):
        return load_texts(texts)
    return TextSet.from_texts(list(texts))


def _check_existing(out, texts: TextSet, force: bool) -> bool:
    """Validate an existing output file before anything is written; True = overwrite it."""
    if not os.path.exists(out):
        return False
    try:
        with open_map(out) as mf:
            other = mf.text_hash
    except MapFileError as err:
        raise MapFileError(
            f"{err} Nothing was written; move or delete {str(out)!r}, or choose another output file."
        ) from None
    except OSError as err:
        raise MapFileError(
            f"{str(out)!r} exists but is not a readable HDF5 map file ({err}); nothing was written. "
            "Move or delete it, or choose another output file."
        ) from None
    if other != texts.hash:
        if not force:
            raise MapFileError(
                f"{str(out)!r} was made with another text set (file: {other}, texts given: {texts.hash}); "
                "nothing was written. Score into a new file, use the file's own texts, or pass --force "
                "to replace the file."
            )
        return True
    return False


def _all_layers_done(writer: ScoreWriter, job: ScoreJob, retry_failed: bool) -> bool:
    """For layers="all" (depth unknown before loading): lens rows are recorded from the last layer
    down to layer 0, so a stored layer 0 means the whole job was recorded."""
    status = writer.status((job.row_name, job.revision, 0))
    return status == "ok" or (status == "failed" and not retry_failed)


def _record(writer: ScoreWriter, result: JobResult, summary: ScoreSummary, *, force: bool,
            retry_failed: bool) -> None:
    """Write one job's rows (or its failure) and add them to the summary."""
    keys = result.keys()[::-1]  # lens rows from the last layer down to 0 (see _all_layers_done)
    todo = set(writer.rows_to_do(keys, retry_failed=retry_failed, force=force))
    base = dict(result.columns, wall_time_s=result.wall_time_s, tokens_per_s=result.tokens_per_s)
    if is_local(result.job.spec):  # failed rows too: a rerun finds them by their path (names.row_names)
        result.meta.setdefault("path", local_path(result.job.spec))
    n_rows = len(keys)
    for back, key in enumerate(keys):
        r = n_rows - 1 - back
        k = as_key(key)
        if k not in todo:
            summary.rows.append(RowSummary(k.label, "skipped"))
            continue
        if result.error is not None:
            writer.record_failure(k, result.error, {**base, **result.meta})
            summary.rows.append(RowSummary(k.label, "failed", wall_time_s=result.wall_time_s,
                                           error=result.error))
            continue
        meta = {**base, **result.meta}
        if result.layers is not None:
            meta["lens"] = True
        writer.record(
            k, result.loglik[r], result.ntokens, result.truncated, meta,
            token_logprobs=result.token_logprobs[r] if result.token_logprobs is not None else None,
        )
        summary.rows.append(RowSummary(k.label, "ok", tokens_per_s=result.tokens_per_s,
                                       mean_loglik=float(np.mean(result.loglik[r])),
                                       wall_time_s=result.wall_time_s))


def _say(message: str) -> None:
    tqdm.write(message, file=sys.stderr)
