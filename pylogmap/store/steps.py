"""The training step that a checkpoint's revision or folder name carries: one rule for the whole package.

Hub checkpoints name it in the revision (Pythia's `step143000`, `checkpoint-500`, a bare `1000`);
local checkpoint folders in the last part of the name (`run-step40`, `out/checkpoint-500`,
`run/step500`). The scorer records the step of every row with this rule, the demo names its
checkpoint folders so that it applies, and trajectories order checkpoints by it.
"""

from __future__ import annotations

import re

# a step word, then the number, at the end: "step1000", "run-step40", "out/checkpoint-500", "ckpt_7"
_SUFFIX = re.compile(r"^(?P<base>.*?)[/\\_@-]*(?:checkpoint|ckpt|step)[-_]?(?P<step>\d+)[/\\]*$", re.I)
_BARE = re.compile(r"^\d+$")


def split_step(text: str | None) -> tuple[str, int]:
    """(`text` without its step suffix, the step) or (`text`, -1) when it names no step.

    A bare number (a revision such as `1000`) is a step with an empty base.
    """
    text = text or ""
    if _BARE.match(text):
        return "", int(text)
    match = _SUFFIX.match(text)
    if match is None:
        return text, -1
    return match.group("base"), int(match.group("step"))


def step_of(text: str | None) -> int:
    """The training step in a revision or checkpoint name (`step143000`, `run-step40`); -1 if none."""
    return split_step(text)[1]
