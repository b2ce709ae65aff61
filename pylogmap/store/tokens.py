"""Per-token log-probabilities (optional), beside the map in `OUT.tokens/`: one small HDF5 file per
row, written atomically before the row's journal entry, so a committed row's token file is complete
(docs/format.md, "Per-token sidecar"). The folder pylogmap makes carries the map's marker
(`store.markers`); a row's file is replaced or removed only when it is provably the row's.

One file per row rather than one shared file: an HDF5 file cannot be appended in place without
risking its earlier contents on a kill, and copying gigabytes of token data per commit is not an
option.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pylogmap.errors import MapFileError
from pylogmap.files.durable import fsync_dir, fsync_file
from pylogmap.store.attrs import read_attrs, write_attrs
from pylogmap.store.keys import RowKey, as_key
from pylogmap.store.markers import make_folder
from pylogmap.store.schema import LIBVER

TOKENS_FORMAT = "pylogmap-tokens"


def tokens_dir(map_path: str | os.PathLike) -> Path:
    """The per-token sidecar folder of a map: `map.h5` -> `map.tokens/`."""
    p = Path(map_path)
    stem = p.name[:-3] if p.name.endswith(".h5") else p.name
    return p.with_name(stem + ".tokens")


def tokens_path(map_path: str | os.PathLike, key: Any) -> Path:
    """Sidecar file of one row: `<map>.tokens/<sha1 of the key>.h5`."""
    k = as_key(key)
    digest = hashlib.sha1(json.dumps([k.name, k.revision, k.layer]).encode()).hexdigest()[:20]
    return tokens_dir(map_path) / f"{digest}.h5"


def is_row_file(p: Path, key: RowKey) -> bool:
    """Whether `p` is a per-token file pylogmap wrote for the row `key`."""
    try:
        with h5py.File(p, "r") as f:
            attrs = read_attrs(f)
    except (OSError, KeyError):
        return False
    try:
        return (attrs.get("format") == TOKENS_FORMAT
                and RowKey(str(attrs["name"]), str(attrs["revision"]), int(attrs["layer"])) == key)
    except (KeyError, TypeError, ValueError):
        return False


def drop_tokens(map_path: Path, key: RowKey) -> None:
    """Remove the row's per-token file (a rescoring without per-token values must not leave old
    ones looking current); a file of that name that is not the row's is left alone."""
    p = tokens_path(map_path, key)
    if p.exists() and is_row_file(p, key):
        p.unlink()


def write_tokens(map_path: Path, key: RowKey, text_hash: str, token_logprobs: Sequence[Any], n: int,
                 map_id: str) -> None:
    """Write one row's per-token values (one array per text) atomically; the folder is made,
    with the map's marker, when it is not there."""
    if len(token_logprobs) != n:
        raise MapFileError(f"token_logprobs has {len(token_logprobs)} arrays for {n} texts.")
    arrays = [np.asarray(a, dtype=np.float32).reshape(-1) for a in token_logprobs]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    d = tokens_dir(map_path)
    if not d.exists():
        make_folder(d, "tokens", map_path, map_id)
    final = tokens_path(map_path, key)
    if final.exists() and not is_row_file(final, key):
        raise MapFileError(f"{str(final)!r} is in the way of the per-token file of {key.label} and was not made by "
                           "pylogmap for it; move it away, then rerun.")
    tmp = final.with_name(final.name + ".part")
    with h5py.File(tmp, "w", libver=LIBVER) as f:
        write_attrs(f, {"format": TOKENS_FORMAT, "format_version": 1, "name": key.name, "revision": key.revision,
                        "layer": np.int32(key.layer), "text_set_hash": text_hash})
        f.create_dataset("logprobs", data=np.concatenate(arrays) if arrays else np.zeros(0, np.float32))
        f.create_dataset("offsets", data=offsets)
    fsync_file(tmp)
    os.replace(tmp, final)
    fsync_dir(d)


def read_tokens(map_path: Path, key: RowKey, text_hash: str, n: int) -> list[np.ndarray] | None:
    """One row's per-token values (one float32 array per text), or None when they were not kept."""
    p = tokens_path(map_path, key)
    if not p.exists():
        return None
    try:
        with h5py.File(p, "r") as f:
            attrs = read_attrs(f)
            if str(attrs.get("text_set_hash", "")) != text_hash:
                raise MapFileError(f"{p} belongs to another text set; delete it.")
            if RowKey(str(attrs["name"]), str(attrs["revision"]), int(attrs["layer"])) != key:
                raise MapFileError(f"{p} belongs to another row than {key.label}; delete it.")
            lp = f["logprobs"][...]
            off = f["offsets"][...]
    except (OSError, KeyError) as err:
        raise MapFileError(f"per-token file {p} of {key.label} cannot be read ({err}); delete it.") from None
    if len(off) != n + 1 or off[-1] != len(lp):
        raise MapFileError(f"per-token file {p} of {key.label} is inconsistent with the map; delete it.")
    return [lp[off[k]:off[k + 1]] for k in range(len(off) - 1)]
