"""Errors meant for the user.

Anything raised as a `PylogmapError` is a problem with the user's input or environment
(a missing file, a model that cannot be loaded offline, a text set that does not match the
file). The CLI prints its message without a traceback and exits with status 2; library callers
catch it like any exception. Every message says what is wrong and what to do about it.
"""


class PylogmapError(Exception):
    """A problem the user can fix; the message says what and how."""


class MapFileError(PylogmapError):
    """An HDF5 file that is missing, not a pylogmap map, corrupt, or of another text set."""


class ModelLoadError(PylogmapError):
    """A model that cannot be loaded (unknown id, offline hub, unsupported architecture)."""


class TextSetError(PylogmapError):
    """A text set that cannot be read or built (empty, not UTF-8, bad JSON)."""
