"""The zoo's training runs (`RunSpec`, `plan_runs`): which models, from what, on which data.

Base models of every architecture x several seeds are trained from scratch on the train slice;
one of them (`ZooConfig.checkpoint_run`, the NeoX seed 0, as Pythia is) also keeps checkpoints
along training; a few fine-tunes of one base (`ZooConfig.finetune_base`) continue on the
finetune slice, each with its own seed and its own part of the slice (siblings).
"""

from __future__ import annotations

from dataclasses import dataclass

from pylogmap.demo.architectures import ARCHITECTURES
from pylogmap.demo.config import ZooConfig


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
