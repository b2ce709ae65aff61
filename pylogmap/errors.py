"""Errors meant for the user.

Anything raised as a `PylogmapError` is a problem with the user's input or environment
(a missing file, a model that cannot be loaded offline, a text set that does not match the
file). The CLI prints its message without a traceback and exits with status 2; library callers
catch it like any exception. Every message says what is wrong and what to do about it.
"""

from __future__ import annotations

import errno
import os


class PylogmapError(Exception):
    """A problem the user can fix; the message says what and how."""


class MapFileError(PylogmapError):
    """An HDF5 file that is missing, not a pylogmap map, corrupt, or of another text set."""


class ModelLoadError(PylogmapError):
    """A model that cannot be loaded (unknown id, offline hub, unsupported architecture)."""


class TextSetError(PylogmapError):
    """A text set that cannot be read or built (empty, not UTF-8, bad JSON)."""


def os_error_message(err: OSError, path: str | os.PathLike | None = None) -> str:
    """One line for an operating-system error: what happened to which path, and what to do.

    `path` names the file when the error does not (`err.filename` is used otherwise). Used by
    the atomic writer (`pylogmap.files.atomic_write`) and by the CLI's last-resort handler, so an
    `OSError` never reaches a user as a traceback.
    """
    reason = " ".join((err.strerror or str(err) or type(err).__name__).split())
    named = path if path is not None else err.filename
    if named is None or str(named) == "":
        return f"{reason}; check the paths given."
    where = str(named)
    code = err.errno
    if code == errno.ENOENT:
        return f"{where!r} (or a folder above it) does not exist; check the path, or create the folder first."
    if code == errno.EISDIR:
        return f"{where!r} is a folder; give a file name (for example {os.path.join(where, 'out')!r})."
    if code == errno.ENOTDIR:
        return f"a part of {where!r} is a file, not a folder; check the path."
    if code == errno.EROFS:
        return f"cannot write {where!r}: the file system is read-only; write somewhere else."
    if code in (errno.EACCES, errno.EPERM):
        return f"cannot access {where!r}: permission denied; check its permissions or use another path."
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return f"no space left for {where!r} (disk or quota full); free some space or write somewhere else."
    if code == errno.EEXIST:
        return f"{where!r} already exists; remove it or choose another name."
    if code == errno.ENAMETOOLONG:
        return f"the name {where!r} is too long for the file system; choose a shorter one."
    return f"cannot use {where!r}: {reason}."
