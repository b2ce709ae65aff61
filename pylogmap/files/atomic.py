"""Writing files all at once or not at all: temporary files beside the targets, renamed over them.

Every writer of a file a user names (exports, text sets, the side files of an export) goes through
`atomic_write` (or `atomic_open` for one text or binary stream):

- the target is checked first: a missing folder, a folder where the file should be, an existing
  file without `force` are each a one-line `PylogmapError` that names the path and the fix, before
  anything is written;
- the content goes to a hidden temporary file in the target's own folder (so the final rename
  stays on one file system), is flushed to disk, then `os.replace`d over the target: a reader
  sees the old file or the new one, never half of one;
- on any error (an `OSError` such as a read-only file system or a full disk, a library's own
  error, Ctrl-C) every temporary file is removed and nothing else is touched; an `OSError`
  becomes a `PylogmapError` with `pylogmap.errors.os_error_message`.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pylogmap.errors import PylogmapError, os_error_message
from pylogmap.files.durable import fsync_file


def check_target(target: str | os.PathLike, *, force: bool = True, flag: str = "--force") -> Path:
    """`target` as a Path once it is known that a file can be written there: its folder exists
    and takes new files (a probe file is made and removed), it is not a folder itself, and
    (unless `force`) it does not exist yet (`flag` is the option that allows replacing it, named
    in the message). Call it before long work, so that a bad output path fails first."""
    target = Path(target)
    parent = target.parent
    if target.is_dir():
        raise PylogmapError(f"{str(target)!r} is a folder; give the name of a file to write (in it, for example).")
    if not parent.is_dir():
        if parent.exists():
            raise PylogmapError(f"{str(parent)!r} is a file, not a folder; check the path of {str(target)!r}.")
        raise PylogmapError(f"folder {str(parent)!r} does not exist; create it first or choose another output path.")
    if target.exists() and not force:
        raise PylogmapError(f"{str(target)!r} already exists; pass {flag} to replace it, or choose another output path.")
    probe = _temporary_name(target)  # can a file be made there at all (read-only, /proc)?
    _create(probe, target)
    probe.unlink()
    return target


def _temporary_name(target: Path) -> Path:
    # Hidden, unique, and ending in the target's suffix (np.save appends .npy to other names).
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp{target.suffix}")


def _create(tmp: Path, target: Path) -> None:
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        if err.errno == errno.ENOENT:  # the folder exists but refuses new names (/proc)
            raise PylogmapError(f"cannot create files in folder {str(target.parent)!r}; write somewhere else.") from None
        raise PylogmapError(os_error_message(err, target)) from None


@contextmanager
def atomic_write(*targets: str | os.PathLike, force: bool = True, flag: str = "--force") -> Iterator[list[Path]]:
    """Temporary paths for `targets` (a list, in the same order); when the block ends without an
    error they are flushed to disk and each is `os.replace`d onto its target; on an error in the
    block none is, and every temporary is removed.

    Write each temporary path completely inside the block (by name: `np.save`, a library's
    `write(path)`, or `open`). See the module docstring for the checks and the clean-up.
    """
    paths = [check_target(t, force=force, flag=flag) for t in targets]
    temps: list[Path] = []
    try:
        for path in paths:
            tmp = _temporary_name(path)
            _create(tmp, path)
            temps.append(tmp)
        try:
            yield list(temps)
            for tmp in temps:
                fsync_file(tmp)
            for tmp, path in zip(temps, paths):
                os.replace(tmp, path)
        except OSError as err:
            named = {str(t): p for t, p in zip(temps, paths)}
            where = named.get(str(err.filename), err.filename) if err.filename is not None else paths[0]
            raise PylogmapError(os_error_message(err, where)) from None
    finally:
        for tmp in temps:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


@contextmanager
def atomic_open(target: str | os.PathLike, mode: str = "w", *, force: bool = True, flag: str = "--force",
                encoding: str | None = "utf-8", newline: str | None = None) -> Iterator[io.IOBase]:
    """An open file ("w" text, "wb" binary) whose content replaces `target` when the block ends
    without an error (see `atomic_write`)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode 'w' or 'wb', not {mode!r}")
    with atomic_write(target, force=force, flag=flag) as (tmp,):
        if mode == "wb":
            with open(tmp, "wb") as f:
                yield f
        else:
            with open(tmp, "w", encoding=encoding, newline=newline) as f:
                yield f
