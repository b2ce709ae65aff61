"""What runs on the nodes of a Ray cluster: one scoring task per model, token ids shared per node.

`score_on_node` is the body of the Ray task `ray_executor.RayExecutor` submits for each job. It
takes the texts from the object store (put there once per run by the driver), scores the model on
the device Ray gave the task (a GPU when one was assigned, else the CPU), and returns the
`JobResult` by value: the task never opens the map file, only the driver writes it. Each row's
metadata says where it ran (`meta["ray"]`: node id, host, worker pid, where its token ids came from).

Token ids are computed once per tokenizer per node (`NodeTokenCache`): the first task on a node
that needs a tokenizer's ids tokenizes the texts and saves them in a folder of the node's Ray
session (under the node's Ray temp dir, next to Ray's own files, so they go with the cluster); every
later task on that node, in any worker process, loads them from there. A file lock makes a task that
needs ids being computed wait for them instead of tokenizing again. A folder that cannot be used
(a read-only disk, a lock that times out) only costs time: the task tokenizes by itself.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
from filelock import FileLock, Timeout

from pylogmap.scoring.jobs import JobResult, ScoreJob, run_job
from pylogmap.scoring.tokenize import tokenize_texts

LOCK_TIMEOUT_S = 1800.0  # tokenizing a large text set can take minutes; after this, tokenize here


class NodeTokenCache:
    """The token cache a task uses (the interface of `tokenize.TokenCache`), backed by `folder` on
    the node's disk. `source` says where the last ids came from: "node" (saved there by an earlier
    task) or "tokenized" (by this task)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.source = ""

    def get(self, tokenizer, tok_hash: str, texts: Sequence[str], texts_key: str,
            max_tokens: int | None = None) -> list[np.ndarray]:
        """The ids of `texts` under the tokenizer, tokenized as `tokenize_texts(..., max_tokens=)`
        does (bounded for a model's context); saved per (tokenizer, texts, bound) on the node."""
        if self.folder is not None:
            key = f"{tok_hash}\0{texts_key}\0{max_tokens}"
            name = hashlib.sha256(key.encode()).hexdigest()[:40]
            path = self.folder / f"{name}.npz"
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                with FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_S):
                    ids = load_ids(path)
                    if ids is not None:
                        self.source = "node"
                        return ids
                    ids = tokenize_texts(tokenizer, texts, max_tokens=max_tokens)
                    save_ids(path, ids)
                    self.source = "tokenized"
                    return ids
            except (OSError, Timeout):
                pass
        self.source = "tokenized"
        return tokenize_texts(tokenizer, texts, max_tokens=max_tokens)


def save_ids(path: Path, ids: list[np.ndarray]) -> None:
    """Write token ids atomically (a temporary file renamed into place)."""
    lengths = np.array([len(a) for a in ids], dtype=np.int64)
    flat = np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, flat=flat, lengths=lengths)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_ids(path: Path) -> list[np.ndarray] | None:
    """Token ids saved by `save_ids`, or None when there are none (or they cannot be read)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            flat, lengths = saved["flat"], saved["lengths"]
    except (OSError, ValueError, KeyError):
        return None
    if int(lengths.sum()) != flat.size:
        return None
    return np.split(flat, np.cumsum(lengths)[:-1]) if lengths.size else []


def node_folder(context) -> Path | None:
    """Where this node keeps token ids: inside its Ray session's folder (None if unknown)."""
    try:
        return Path(context.get_temp_dir()) / context.get_session_name() / "pylogmap" / "token-ids"
    except Exception:  # noqa: BLE001 - no session folder known: tasks tokenize by themselves
        return None


def score_on_node(job: ScoreJob, texts: Sequence[str], texts_key: str) -> JobResult:
    """Body of one Ray task: score `job` on this node and return the result to the driver.

    `texts` arrive through the object store (the driver passes the ref it put there once; Ray hands
    the task the value, fetched to the node once)."""
    import ray

    _quiet_progress_bars()
    context = ray.get_runtime_context()
    device = job.device
    if device == "auto":  # only what Ray assigned to this task: its GPU(s), else the CPU
        device = "cuda" if context.get_accelerator_ids().get("GPU") else "cpu"
    cache = NodeTokenCache(node_folder(context))
    result = run_job(replace(job, device=device, progress=False), texts, cache, texts_key)
    result.job = job
    result.meta["ray"] = {
        "node": context.get_node_id(),
        "host": socket.gethostname(),
        "worker_pid": os.getpid(),
        "token_ids": cache.source,
    }
    return result


def _quiet_progress_bars() -> None:
    """Workers draw no progress bars (their output goes to the driver's terminal, which draws one
    bar over all models)."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    from transformers.utils import logging

    logging.disable_progress_bar()
