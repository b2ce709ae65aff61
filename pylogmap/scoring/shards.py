"""`--shard I/N`: a deterministic share of the models, so N independent runs (a SLURM job array,
N machines without a shared scheduler) score disjoint parts of one model list into N files.

A job belongs to shard `1 + sha256(name, revision) mod N` (shards are numbered from 1, like
`split -n K/N`). The hash is of the row key's model part, so the split is the same on every machine,
in every process (no `PYTHONHASHSEED`), whatever the order of the model list, and a model never moves
to another shard when the list grows: a shard's file resumes cleanly after the list is extended.
All layers of a logit-lens job stay together (one model load). Shard sizes follow the hash: even on
average, a few models apart on short lists.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from pylogmap.errors import PylogmapError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class Shard(NamedTuple):
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, name: str, revision: str = "") -> bool:
        """Whether the model `name` at `revision` belongs to this shard."""
        return shard_of(name, revision, self.count) == self.index


def parse_shard(value: str | tuple[int, int] | Shard) -> Shard:
    """'I/N' (or a pair) as a `Shard`, with 1 <= I <= N; anything else is a `PylogmapError`."""
    if isinstance(value, tuple):
        index, count = (int(v) for v in value)
    else:
        match = _SHARD.match(str(value))
        if not match:
            raise PylogmapError(f"--shard {value!r} is not of the form I/N (e.g. 1/4: the first of 4 shards).")
        index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise PylogmapError(f"--shard {index}/{count}: the number of shards must be at least 1.")
    if not 1 <= index <= count:
        raise PylogmapError(
            f"--shard {index}/{count}: shards are numbered 1 to {count} "
            f"(for a SLURM array use --array=1-{count} and --shard $SLURM_ARRAY_TASK_ID/{count})."
        )
    return Shard(index, count)


def shard_of(name: str, revision: str, count: int) -> int:
    """The shard (1..count) that the model `name` at `revision` belongs to."""
    digest = hashlib.sha256(f"{name}\0{revision}".encode("utf-8", "surrogatepass")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % count
