"""The zoo's models on disk: what makes a saved model reusable, and how one is saved safely.

Every model is a plain `save_pretrained` directory (with its tokenizer) and a `zoo.json` that
records the fingerprint of its recipe (`run_fingerprint`). A directory is written under a
temporary name and renamed when complete (`save_atomically`), with `zoo.json` written last, so a
rerun reuses finished models (`is_complete`) and a killed run never leaves a half-written one
behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from pylogmap.demo.config import ZooConfig
from pylogmap.demo.corpus import Corpus
from pylogmap.demo.plan import RunSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ZOO_FORMAT = 2  # bump when the recipe changes so that old zoo directories are rebuilt


def run_fingerprint(run: RunSpec, config: ZooConfig, corpus: Corpus, tokenizer_hash: str) -> str:
    """What determines a run's weights: its recipe, the sizes, the corpus and the tokenizer (not
    the number of worker processes, nor whether SmolLM2 joins the zoo)."""
    recipe = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("workers", "pretrained")}
    blob = json.dumps(
        {"format": ZOO_FORMAT, "run": dataclasses.asdict(run), "config": recipe,
         "corpus": corpus.origin, "tokenizer": tokenizer_hash},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_complete(folder: Path, fingerprint: str) -> bool:
    """Whether `folder` holds a finished save of the recipe with this fingerprint."""
    marker = folder / "zoo.json"
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text())["fingerprint"] == fingerprint
    except (ValueError, KeyError):
        return False


def save_atomically(folder: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, info: dict) -> None:
    """save_pretrained into `<folder>.tmp`, write zoo.json last, then rename into place."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "zoo.json").write_text(json.dumps(info, indent=1, sort_keys=True))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
