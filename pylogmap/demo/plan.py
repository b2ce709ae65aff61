"""The zoo's training runs (`RunSpec`, `plan_runs`) and their lineages: which models, from what, on which data.

A lineage is a base model and what derives from it. The bases (`ZooConfig.bases`) are trained
from scratch on the train slice; one of them (`ZooConfig.checkpoint_run`, the NeoX seed 0, as
Pythia is) also keeps checkpoints over the second half of its training; the bases named in
`ZooConfig.finetunes` get a few gentle fine-tunes each on the finetune slice (related text),
each fine-tune with its own seed and its own part of the slice (siblings). A run's `lineage` is
its base's name, or its own for a base.
"""

from __future__ import annotations

from dataclasses import dataclass

from pylogmap.demo.architectures import ARCHITECTURES
from pylogmap.demo.config import ZooConfig
from pylogmap.errors import PylogmapError


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

    @property
    def lineage(self) -> str:
        return self.base or self.name


def checkpoint_steps(steps: int, n: int) -> tuple[int, ...]:
    """`n` steps evenly spaced over the second half of a run of `steps`, the last one `steps`."""
    if n < 2:
        return (steps,)
    start = steps // 2
    return tuple(start + round(i * (steps - start) / (n - 1)) for i in range(n))


def plan_runs(config: ZooConfig) -> list[RunSpec]:
    """The training runs of the zoo, in the order they are trained (bases before fine-tunes)."""
    runs = []
    for arch, seed in config.bases:
        if arch not in ARCHITECTURES:
            raise PylogmapError(f"unknown zoo architecture {arch!r}: use one of {', '.join(ARCHITECTURES)}.")
        name = f"{arch}-s{seed}"
        ckpts = checkpoint_steps(config.steps, config.n_checkpoints) if name == config.checkpoint_run else ()
        runs.append(RunSpec(name, arch, seed, config.steps, config.lr, "train", checkpoint_steps=ckpts))
    by_name = {r.name: r for r in runs}
    for base_name, n in config.finetunes.items():
        base = by_name.get(base_name)
        if base is None:
            raise PylogmapError(f"the zoo fine-tunes {base_name!r}, which is not one of its bases ({', '.join(by_name)}).")
        for i in range(n):
            runs.append(RunSpec(f"{base.name}-ft{i + 1}", base.arch, seed=100 + 10 * base.seed + i,
                                steps=config.finetune_steps, lr=config.finetune_lr, data="finetune",
                                base=base.name, data_part=(i, n)))
    return runs
