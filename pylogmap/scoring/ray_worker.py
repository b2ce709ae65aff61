"""What runs on the nodes of a Ray cluster: one scoring task per model, one token-id store per node.

`score_on_node` is the body of the Ray task `ray_executor.RayExecutor` submits for each job. It
takes the texts from the object store (put there once per run by the driver), scores the model on
the device Ray gave the task (a GPU when one was assigned, else the CPU), and returns the
`JobResult` by value: the task never opens the map file, only the driver writes it. Each row's
metadata says where it ran (`meta["ray"]`: node id, host, worker pid, where its token ids came from).

Token ids are computed once per tokenizer per node: a task looks in its worker process's own cache,
then asks its node's `TokenIdStore` (a Ray actor, created by the first task that needs it on that
node and shared by every worker there), which tokenizes on the first request for a tokenizer and
serves the ids to every later task from the node's object store. Any trouble with the store (an
actor that died with its creator, a node that joined late) falls back to tokenizing in the task.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import replace
from typing import Sequence

import numpy as np

from pylogmap.scoring.jobs import JobResult, ScoreJob, run_job
from pylogmap.scoring.tokenize import tokenize_texts

STORE_PREFIX = "pylogmap-token-ids-"
STORE_TIMEOUT_S = 1800.0  # tokenizing a large text set can take minutes; after this, tokenize here

IdsKey = tuple[str, str]  # (tokenizer hash, texts fingerprint)
_WORKER_IDS: dict[IdsKey, list[np.ndarray]] = {}  # this worker process's own, across its tasks


class TokenIdStore:
    """Body of the per-node Ray actor: token ids per (tokenizer hash, text set), tokenized once.

    Calls run concurrently (a threaded actor); a per-key lock makes a second request for a tokenizer
    being tokenized wait for that result instead of tokenizing again.
    """

    def __init__(self) -> None:
        self._ids: dict[IdsKey, list[np.ndarray]] = {}
        self._locks: dict[IdsKey, threading.Lock] = {}
        self._guard = threading.Lock()

    def ids(self, tok_hash: str, texts_key: str, tokenizer=None, texts_box: list | None = None):
        """The ids for this tokenizer and text set; when unknown, tokenize with `tokenizer` (the
        texts come from the object store ref in `texts_box`), or return None without one."""
        import ray

        key = (tok_hash, texts_key)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._ids:
                if tokenizer is None:
                    return None
                self._ids[key] = tokenize_texts(tokenizer, ray.get(texts_box[0]))
            return self._ids[key]


class NodeTokenCache:
    """The token cache one task uses (the interface of `tokenize.TokenCache`): this worker's own
    ids first, then the node's `TokenIdStore`, then tokenizing here. `source` records which."""

    def __init__(self, texts_box: list) -> None:
        self.texts_box = texts_box
        self.source = ""

    def get(self, tokenizer, tok_hash: str, texts: Sequence[str], texts_key: str) -> list[np.ndarray]:
        key = (tok_hash, texts_key)
        if key in _WORKER_IDS:
            self.source = "worker"
            return _WORKER_IDS[key]
        ids = self._from_node_store(tokenizer, tok_hash, texts_key)
        if ids is None:
            self.source = "tokenized"
            ids = tokenize_texts(tokenizer, texts)
        _WORKER_IDS[key] = ids
        return ids

    def _from_node_store(self, tokenizer, tok_hash: str, texts_key: str):
        import ray

        try:
            store = node_store()
            ids = ray.get(store.ids.remote(tok_hash, texts_key), timeout=STORE_TIMEOUT_S)
            if ids is not None:
                self.source = "node"
                return ids
            ids = ray.get(store.ids.remote(tok_hash, texts_key, tokenizer, self.texts_box), timeout=STORE_TIMEOUT_S)
            self.source = "node-tokenized"
            return ids
        except Exception:  # noqa: BLE001 - the store only saves time; without it the task tokenizes
            return None


def node_store():
    """This node's `TokenIdStore` actor, created on first use (pinned to the node, no CPU reserved;
    it belongs to this run's job and ends with it)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    actor = ray.remote(TokenIdStore).options(
        name=STORE_PREFIX + node, get_if_exists=True, num_cpus=0, max_concurrency=16,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
    )
    return actor.remote()


def score_on_node(job: ScoreJob, texts_box: list, texts_key: str) -> JobResult:
    """Body of one Ray task: score `job` on this node and return the result to the driver.

    `texts_box` is `[ref]`, the texts' object store ref wrapped in a list so that Ray passes the ref
    itself (the node store reads the texts from it only when it has to tokenize)."""
    import ray

    _quiet_progress_bars()
    context = ray.get_runtime_context()
    texts = ray.get(texts_box[0])
    device = job.device
    if device == "auto":  # only what Ray assigned to this task: its GPU(s), else the CPU
        device = "cuda" if context.get_accelerator_ids().get("GPU") else "cpu"
    cache = NodeTokenCache(texts_box)
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
