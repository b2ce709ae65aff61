"""Models as a user names them: `org/name@revision`, a revision range per model, and model lists.

`split_revision("EleutherAI/pythia-160m@step1000:step143000:1000")` gives the model and its own
revisions (any form `expand_revisions` reads: one name, a commit, a comma list or a range); an
existing local path is never split (a folder name may contain `@`). `read_model_list` expands
`@FILE` arguments: one model per line, `#` starts a comment, blank lines are skipped, so the plain
list of hub ids of the map paper works as it is, and a line may pin its revision. `model_revisions`
pairs every model with the revisions it is scored at: its own when the line gives them, else
`--revision` / `--revisions`, else the default branch ("").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from pylogmap.errors import PylogmapError
from pylogmap.files import read_text
from pylogmap.scoring.revisions import expand_revisions


def split_revision(item: str) -> tuple[str, str | None]:
    """(model, its own revision text or None) of `model[@revisions]`."""
    item = item.strip()
    if "@" not in item or Path(os.path.expanduser(item)).exists():
        return item, None
    model, _, revision = item.partition("@")
    if not model.strip() or not revision.strip():
        raise PylogmapError(
            f"cannot read the model {item!r}; write org/name@revision (a branch, tag, commit or a range "
            "like step1000:step10000:1000), or the model alone."
        )
    return model.strip(), revision.strip()


def read_model_list(items: Sequence[str]) -> list[str]:
    """Expand @FILE entries (one model per line, '#' comments, blank lines ignored), in order,
    without repeats."""
    out: list[str] = []
    for item in items:
        if not item.startswith("@"):
            out.append(item)
            continue
        path = Path(item[1:])
        if not path.is_file():
            raise PylogmapError(f"model list {str(path)!r} (from {item!r}) does not exist; check the path.")
        for line in read_text(path).splitlines():  # a file that is not UTF-8 is a one-line error
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(line)
    if not out:
        raise PylogmapError("no models to score: the model list is empty (only comments or blank lines).")
    return list(dict.fromkeys(out))


def model_revisions(models: Sequence[str], *, revision: str | None = None,
                    revisions: str | Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(model, revision) pairs to score, in order, without repeats (module docstring)."""
    if revision and revisions:
        raise PylogmapError("give either one revision or a list of revisions, not both.")
    default = expand_revisions(revisions) if revisions else [revision or ""]
    pairs: list[tuple[str, str]] = []
    for item in models:
        model, own = split_revision(str(item))
        for rev in expand_revisions(own) if own else default:
            pairs.append((model, rev))
    return list(dict.fromkeys(pairs))
