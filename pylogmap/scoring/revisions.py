"""Revision lists: 'step1000,step2000' or the inclusive range 'step1000:step10000:1000' -> names."""

from __future__ import annotations

import re
from typing import Sequence

from pylogmap.errors import PylogmapError

_RANGE_RE = re.compile(r"^(\D*?)(\d+):(\D*?)(\d+):(\d+)$")


def expand_revisions(text: str | Sequence[str] | None) -> list[str]:
    """'step1000,step2000' or the inclusive range 'step1000:step10000:1000' (or a mix) -> names,
    in order, without repeats."""
    if text is None:
        return []
    parts = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if ":" in part:
            match = _RANGE_RE.match(part)
            if not match or match.group(1) != match.group(3) or int(match.group(5)) <= 0:
                raise PylogmapError(
                    f"cannot read the revision range {part!r}; write PREFIX<start>:PREFIX<stop>:<step> "
                    "with the same prefix on both ends, e.g. 'step1000:step10000:1000' (inclusive)."
                )
            prefix, start, stop, step = match.group(1), int(match.group(2)), int(match.group(4)), int(match.group(5))
            if stop < start:
                raise PylogmapError(f"revision range {part!r} ends before it starts.")
            out.extend(f"{prefix}{n}" for n in range(start, stop + 1, step))
        else:
            out.append(part)
    return list(dict.fromkeys(out))
