"""A map file opened for reading (mode "r") or for reading and writing (mode "a").

Readers open `OUT.h5` at any time and see the last commit, and keep seeing that commit while
writers commit (`store.snapshot`: appended rows stay out of view; a commit that rewrites what is
read since opening is an error saying to reopen). `MapFile.changed()` tells a long-lived reader
that a newer commit exists; `MapFile.reload()` opens it. Files are written with HDF5 format bounds
v1.10 so `h5py.File(path, "r", swmr=True)` works and any HDF5 >= 1.10 reads them. Maps of format
version 1 read as they are (`store.legacy`).

A `MapFile` opened with mode "a" writes rows, derived results and annotations, each call one
atomic commit (`store.journal`) under the writer lock (`store.lock`), taken for that commit only:
opening with "a" does not keep other writers out, it says that this handle may write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pylogmap.errors import MapFileError
from pylogmap.store.attrs import is_encoded, read_attr, read_attrs
from pylogmap.store.create import create_map
from pylogmap.store.entries import annotations_entry, bulk_rows_entry, derived_entry
from pylogmap.store.gather import read_rows, row_index
from pylogmap.store.journal import commit_entries, journal_entries, journal_report, recover as recover_journal
from pylogmap.store.keys import RowKey, unique_labels
from pylogmap.store.lookup import RowLookup
from pylogmap.store.schema import FORMAT, FORMAT_VERSION, MATRICES, MODEL_COLUMNS, read_str
from pylogmap.store.snapshot import Snapshot
from pylogmap.store.tokens import read_tokens
from pylogmap.texts import TextSet

MODES = ("r", "a")


class MapFile:
    """A map file; reading methods see the commit that was current when the file was opened (or
    last `reload`ed). Writing methods (`append_rows`, `write_derived`, `update_map`,
    `set_annotations`) need mode "a" and commit atomically.

    Use `open_map(path, mode)` or `MapFile.create(path, texts)` (which returns the new file
    opened with mode "a").
    """

    def __init__(self, path: str | os.PathLike, mode: str = "r", *, recover: bool = True):
        if mode not in MODES:
            raise MapFileError(f"a map file opens with mode 'r' (read) or 'a' (read and write), not {mode!r}.")
        self.path = Path(path)
        self.mode = mode
        if recover:
            recover_journal(self.path)
        self._snap: Snapshot | None = None
        self._open()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, texts: TextSet, *, overwrite: bool = False) -> "MapFile":
        """Create an empty map for `texts`. An existing file is kept unless `overwrite=True`; side
        folders of a map being replaced go only when pylogmap made them (`store.create`)."""
        create_map(Path(path), texts, overwrite=overwrite)
        return cls(path, "a", recover=False)

    @classmethod
    def create_with_rows(cls, path: str | os.PathLike, texts: TextSet, keys: Sequence[Any], loglik: Any,
                         ntokens: Any = None, meta: Any = None, *, truncated: Any = None,
                         annotations: Mapping[str, Any] | None = None, overwrite: bool = False) -> "MapFile":
        """Create a map already holding rows (and annotation columns) in one write, without the
        journal: the fast path for importers and synthetic maps (same arguments as `append_rows`)."""
        entry = bulk_rows_entry(keys, loglik, ntokens, meta, truncated, None, None, len(texts))
        ann = None if annotations is None else annotations_entry(annotations, len(entry["names"]))
        create_map(Path(path), texts, overwrite=overwrite, rows=entry, annotations=ann)
        return cls(path, "a", recover=False)

    def _open(self) -> None:
        path = self.path
        if not path.exists():
            raise MapFileError(f"map file {str(path)!r} does not exist; create it with 'pylogmap score' or 'pylogmap import'.")
        if path.is_dir():
            raise MapFileError(f"{str(path)!r} is a folder, not a map file.")
        st = os.stat(path)
        try:
            is_hdf5 = h5py.is_hdf5(path)
        except OSError:
            is_hdf5 = False
        if not is_hdf5:
            raise MapFileError(f"{str(path)!r} is not an HDF5 file, so not a pylogmap map; check the file name.")
        if self._snap is not None:
            self._snap.close()
            self._snap = None
        self._snap = Snapshot(path, self._check_file)
        self._stat = (st.st_ino, st.st_mtime_ns, st.st_size)
        self._cache: dict[str, Any] = {}

    def _check_file(self, f: h5py.File) -> int:
        """Check a freshly opened file is a map this release reads; its row count."""
        path = self.path
        try:
            if read_attr(f, "format") != FORMAT:
                raise MapFileError(
                    f"{str(path)!r} is an HDF5 file but not a pylogmap map (no format='pylogmap' attribute); "
                    "to use a matrix from elsewhere, convert it with 'pylogmap import'."
                )
            version = int(read_attr(f, "format_version", -1))
            if version > FORMAT_VERSION:
                raise MapFileError(
                    f"{str(path)!r} has map format version {version}, newer than this pylogmap "
                    f"(reads up to {FORMAT_VERSION}); upgrade pylogmap."
                )
            if version < 1:
                raise MapFileError(f"{str(path)!r} has an invalid format_version {version}; the file is damaged.")
            self._validate(f)
            return int(f["models/name"].shape[0])
        except (OSError, KeyError, ValueError) as err:
            raise MapFileError(f"{str(path)!r} is a damaged map file ({err}); restore it from a copy or rescore.") from None

    def _validate(self, f: h5py.File) -> None:
        need = ["texts/text", "texts/n_bytes", "texts/source", "texts/meta", *MATRICES]
        need += [f"models/{c}" for c in MODEL_COLUMNS]
        missing = [n for n in need if n not in f]
        if missing:
            raise MapFileError(f"{str(self.path)!r} lacks {', '.join(missing)}; the map file is damaged or incomplete.")
        n = f["texts/text"].shape[0]
        m = f["models/name"].shape[0]
        for name in MATRICES:
            if f[name].shape != (m, n):
                raise MapFileError(f"{str(self.path)!r}: /{name} has shape {f[name].shape}, expected {(m, n)}; the file is damaged.")
        for c in MODEL_COLUMNS:
            if f["models"][c].shape != (m,):
                raise MapFileError(f"{str(self.path)!r}: /models/{c} has {f['models'][c].shape[0]} rows, expected {m}.")

    @property
    def _view(self) -> Snapshot:
        if self._snap is None or self._snap.file is None:
            raise MapFileError(f"map file {str(self.path)!r} is closed.")
        return self._snap

    @property
    def file(self) -> h5py.File:
        """The open h5py file (read-only), for direct access. It shows the file as of the last
        read through this MapFile: for rows appended since, use `reload()`."""
        return self._view.file

    def _read(self, kind: str, fn):
        """`fn(file)` as of this reader's commit (`store.snapshot`)."""
        return self._view.read(kind, fn)

    def close(self) -> None:
        if self._snap is not None:
            self._snap.close()
            self._snap = None

    def __enter__(self) -> "MapFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._snap is None else f"{self.n_models} models x {self.n_texts} texts"
        return f"MapFile({str(self.path)!r}, {self.mode!r}, {state})"

    def changed(self) -> bool:
        """Whether a newer commit exists than the one this reader shows (since it was opened or
        last reloaded)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        if (st.st_ino, st.st_mtime_ns, st.st_size) == self._stat:
            return False
        if st.st_ino != self._stat[0] or self._view.format_1:
            return True  # replaced by another file (or a format-1 commit)
        return self._view.newer()

    def reload(self) -> None:
        """Open the current commit of the file (after `changed()`)."""
        self._open()

    # -- reading ---------------------------------------------------------------------------
    @property
    def n_models(self) -> int:
        return self._view.m

    @property
    def n_texts(self) -> int:
        if "n_texts" not in self._cache:
            self._cache["n_texts"] = int(self._read("texts", lambda f: f["texts/text"].shape[0]))
        return self._cache["n_texts"]

    def _root_attr(self, name: str, default: Any = None) -> Any:
        if ("attr", name) not in self._cache:
            self._cache[("attr", name)] = self._read("texts", lambda f: read_attr(f, name, default))
        return self._cache[("attr", name)]

    @property
    def text_hash(self) -> str:
        return str(self._root_attr("text_set_hash"))

    @property
    def format_version(self) -> int:
        return int(self._root_attr("format_version"))

    @property
    def map_id(self) -> str | None:
        """The map's identity (32 hex digits), given when it was created; None for a map of
        format version 1 that was never written since."""
        value = self._root_attr("map_id")
        return None if value is None else str(value)

    @property
    def commit_seq(self) -> int:
        """Sequence number of the commit this reader shows (grows with every commit)."""
        if self._view.format_1:
            return int(self._root_attr("commit_seq", 0))
        return self._view.seq

    def _column(self, col: str) -> np.ndarray:
        if col not in self._cache:
            m = self.n_models
            kind = MODEL_COLUMNS.get(col, ("str",))[0]

            def read(f):
                ds = f["models"][col]
                if kind == "str":
                    return ds.asstr()[:m].astype(object) if m else np.array([], dtype=object)
                return ds[:m]
            self._cache[col] = self._read("rows", read)
        return self._cache[col]

    def keys(self) -> list[RowKey]:
        """Row keys (name, revision, layer), in row order."""
        return [RowKey(n, r, int(lay)) for n, r, lay in
                zip(self._column("name"), self._column("revision"), self._column("layer"))]

    def model_names(self) -> list[str]:
        """The model names as given when scoring (may repeat across revisions/layers)."""
        return list(self._column("name"))

    def labels(self) -> list[str]:
        """A unique display label per row: `name`, `name@revision`, `name#L<layer>` (both if both).
        In the rare case two keys give the same label, later ones get a ` (2)`, ` (3)` suffix."""
        if "labels" not in self._cache:
            self._cache["labels"] = unique_labels(self.keys())
        return list(self._cache["labels"])

    def models_table(self) -> dict[str, np.ndarray]:
        """Every `/models` column as an array (strings as object arrays), plus `label`."""
        table = {c: np.array(self._column(c), copy=True) for c in MODEL_COLUMNS}
        table["label"] = np.array(self.labels(), dtype=object)
        return table

    def status(self) -> np.ndarray:
        """Per-row status: "ok" or "failed"."""
        return np.array(self._column("status"), copy=True)

    def _matrix(self, name: str, rows: Any) -> np.ndarray:
        idx = row_index(rows, self.n_models)
        try:
            return self._read("rows", lambda f: read_rows(f[name], idx))
        except OSError as err:
            raise MapFileError(
                f"{str(self.path)!r}: reading /{name} failed ({err}); the file is damaged (a checksum does not "
                "match). Restore it from a copy or rescore."
            ) from None

    def loglik(self, rows: Any = None) -> np.ndarray:
        """float32 [n, N] log-likelihoods in nats (NaN = not scored), rows in the order asked."""
        return self._matrix("loglik", rows)

    def ntokens(self, rows: Any = None) -> np.ndarray:
        """int32 [n, N] scored tokens per text (-1 = not scored)."""
        return self._matrix("ntokens", rows)

    def truncated(self, rows: Any = None) -> np.ndarray:
        """bool [n, N]: the text was cut at the model's context."""
        return self._matrix("truncated", rows)

    def text_bytes(self) -> np.ndarray:
        """int64 [N] UTF-8 length of each text."""
        return self._read("texts", lambda f: f["texts/n_bytes"][...])

    def texts(self) -> TextSet:
        """The map's text set (hash as stored)."""
        return self._read("texts", _read_texts)

    def annotations(self) -> dict[str, np.ndarray]:
        """Per-row user columns: float64 arrays, or object arrays of str for categorical ones."""
        m = self.n_models

        def read(f):
            g = f.get("annotations")
            if g is None:
                return {}
            return {name: (read_str(ds)[:m] if ds.dtype.kind == "O" else ds[:m]) for name, ds in g.items()}
        return self._read("annotations", read)

    def read_derived(self, name: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        """(array, attrs) of the derived dataset `/map/<name>`, or None when it is not there.
        The attributes read back as they were written (`store.attrs`)."""
        def read(f):
            g = f.get("map")
            if g is None or name not in g or not isinstance(g[name], h5py.Dataset):
                return None
            ds = g[name]
            data = read_str(ds) if ds.dtype.kind == "O" else ds[...]
            return data, read_attrs(ds)
        return self._read("map", read)

    def derived_names(self) -> list[str]:
        """Paths of every dataset under `/map` (e.g. `tsne`, `neighbors/index`)."""
        def read(f):
            g = f.get("map")
            out: list[str] = []
            if g is not None:
                g.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
            return sorted(out)
        return self._read("map", read)

    def map_attrs(self) -> dict[str, Any]:
        """Attributes of `/map` (`tau`, `rows_hash`, `n_used`, ...), as they were written."""
        return self._read("map", lambda f: {} if f.get("map") is None else read_attrs(f["map"]))

    def lookup(self) -> RowLookup:
        """The rows of this file by what a user types (`store.lookup` has the policy)."""
        if "lookup" not in self._cache:
            self._cache["lookup"] = RowLookup(self.keys(), self.labels(), where=self.path.name)
        return self._cache["lookup"]

    def find_rows(self, query: str) -> list[int]:
        """Every row `query` names (a label, a name: all its revisions; see `store.lookup`);
        a MapFileError with the closest labels when it names none."""
        return self.lookup().rows_of(query)

    def find_row(self, query: str) -> int:
        """The single row `query` names; an error listing the choices when it names several."""
        return self.lookup().one_row(query)

    def token_logprobs(self, row: int) -> list[np.ndarray] | None:
        """Per-token log-probabilities of one row (one float32 array per text, first token not
        included), or None when they were not kept. See docs/format.md, "Per-token sidecar"."""
        return read_tokens(self.path, self.keys()[row], self.text_hash, self.n_texts)

    def pending_journal(self) -> int:
        """Number of finished results journalled but not committed yet (a writer is running, or
        one was killed: the next writer or reader commits them)."""
        return len(journal_entries(self.path))

    def journal_report(self) -> list[str]:
        """One line for each thing to know about results waiting in the journal: that a writer
        is running and commits them, or why they cannot be committed and what to do (an entry
        that cannot be read, one written for another map, a folder that cannot be written)."""
        committed = self.commit_seq if not self._view.format_1 else int(self._root_attr("commit_seq", 0))
        return journal_report(self.path, committed, self.text_hash, self.map_id)

    # -- writing (mode "a"; atomic commits) -------------------------------------------------
    def _check_writable(self, what: str) -> None:
        if self.mode != "a":
            raise MapFileError(
                f"{self.path.name} is open read-only; open it with open_map(path, mode='a') to {what}."
            )

    def _commit(self, entry: dict[str, np.ndarray]) -> None:
        commit_entries(self.path, [entry])
        self._open()

    def append_rows(self, keys: Sequence[Any], loglik: Any, ntokens: Any = None, meta: Any = None,
                    *, truncated: Any = None, status: Sequence[str] | None = None,
                    errors: Sequence[str] | None = None) -> None:
        """Add (or replace, for keys already present) many rows in one atomic commit.

        `loglik` is [k, N]; `ntokens` [k, N] (default -1, unknown); `meta` a list of per-row dicts
        or a dict of per-row columns (`/models` columns such as `n_params`, `architecture`, `step`
        go to their column, anything else to the row's JSON `meta`).
        """
        self._check_writable("append rows")
        self._commit(bulk_rows_entry(keys, loglik, ntokens, meta, truncated, status, errors, self.n_texts))

    def write_derived(self, name: str, array: Any, attrs: Mapping[str, Any] | None = None) -> None:
        """Write (or replace) `/map/<name>` with its attributes, in one atomic commit."""
        self.update_map({name: (array, attrs or {})})

    def update_map(self, arrays: Mapping[str, Any], attrs: Mapping[str, Any] | None = None, *,
                   replace_all: bool = False) -> None:
        """Write several `/map` datasets (`name -> array` or `name -> (array, attrs)`) and `/map`'s
        own attributes in one atomic commit. `replace_all` first empties `/map`. Attribute values
        may be str, numbers, bools, None, lists, dicts or numpy arrays (`store.attrs`)."""
        self._check_writable("write derived results")
        self._commit(derived_entry(arrays, attrs, replace_all))

    def set_annotations(self, columns: Mapping[str, Any]) -> None:
        """Attach per-row columns (length = number of rows): numbers become float64 (NaN =
        missing), anything else str. Columns of the same name are replaced; others kept."""
        self._check_writable("set annotations")
        self._commit(annotations_entry(columns, self.n_models))


def _read_texts(f: h5py.File) -> TextSet:
    g = f["texts"]
    recipe = read_attr(g, "recipe")
    if not is_encoded(g):  # written before the attribute encoding: the recipe is JSON text
        recipe = json.loads(str(recipe if recipe is not None else "null"))
    return TextSet(
        texts=list(read_str(g["text"])),
        n_bytes=g["n_bytes"][...],
        sources=list(read_str(g["source"])),
        meta=[json.loads(s) for s in read_str(g["meta"])],
        hash=str(read_attr(g, "hash")),
        name=str(read_attr(g, "name", "")),
        recipe=recipe,
    )


def open_map(path: str | os.PathLike, mode: str = "r") -> MapFile:
    """Open a map file: mode "r" reads (the default), mode "a" may also write (`append_rows`,
    `write_derived`, `update_map`, `set_annotations`). Raises MapFileError for a missing file, a
    file that is not HDF5, an HDF5 file that is not a pylogmap map, a damaged or truncated file,
    or a newer format.

    Finished results journalled by a writer that was killed are committed first (when no writer
    is alive), in either mode.
    """
    return MapFile(path, mode)
