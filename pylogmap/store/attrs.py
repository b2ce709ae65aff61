"""HDF5 attributes written and read through one encoder, so they read back as what was written.

HDF5 attributes hold numbers, strings and arrays. Other values are stored as something HDF5 holds
and recorded as such, in the idea of anndata's `encoding-type` / `encoding-version`: every object
whose attributes the store writes carries

- `encoding-type` = `"pylogmap-attrs"` and `encoding-version` = `"1"`, and
- `encoding-attrs`: a JSON object naming each attribute whose stored value is not the value
  itself, and how it is encoded: `"json"` (the value is JSON text: a dict, `None`, a list or
  tuple that is not a flat list of one kind of number) or `"list"` (a flat list of numbers, stored
  as a native HDF5 array so plain h5py readers get the numbers).

Written as themselves (and so absent from `encoding-attrs`): str, bool, int, float, numpy
scalars and numpy arrays of numbers, bools or strings. Reading gives back str, bool, int, float
(numpy scalars as the equal Python number), numpy arrays, and for the encoded ones the dict, list
(tuples come back as lists) or None. A `pathlib.Path` is written as its str.

An object without `encoding-type` was written before this encoding existed (format version 1
files of earlier releases): its attributes read as stored, so a JSON string stays a string and
`None` reads as the string `"null"`, exactly as those releases read them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pylogmap.errors import MapFileError
from pylogmap.store.json_text import dumps

ENCODING_TYPE = "encoding-type"
ENCODING_VERSION = "encoding-version"
ENCODED = "encoding-attrs"
TYPE = "pylogmap-attrs"
VERSION = "1"
RESERVED = (ENCODING_TYPE, ENCODING_VERSION, ENCODED)

_STR = h5py.string_dtype(encoding="utf-8")
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _same(got: Any, given: Any) -> bool:
    """Whether `got` (from `ndarray.tolist()`) equals `given` in value and Python type, so that a
    list stored as an array reads back unchanged (no 1 -> 1.0, True -> 1)."""
    if isinstance(given, (list, tuple)):
        return isinstance(got, list) and len(got) == len(given) and all(_same(a, b) for a, b in zip(got, given))
    if isinstance(given, np.generic):
        given = given.item()
    if type(got) is not type(given):
        return False
    return got == given or (isinstance(got, float) and math.isnan(got) and math.isnan(given))


def _number_list(value: list | tuple) -> np.ndarray | None:
    """`value` as a native array when it is a flat, non-empty list of numbers of one kind that
    `tolist()` gives back unchanged; None otherwise (it is then stored as JSON)."""
    if isinstance(value, tuple) or not value or any(isinstance(v, (list, tuple)) for v in value):
        return None
    try:
        arr = np.asarray(value)
    except (ValueError, OverflowError):
        return None
    if arr.dtype.kind not in "biuf" or not _same(arr.tolist(), value):
        return None
    return arr


def encode(name: str, value: Any) -> tuple[Any, str]:
    """(the value HDF5 stores, its encoding: "" = itself, "json" or "list")."""
    if not isinstance(name, str) or not name:
        raise MapFileError(f"attribute name {name!r} must be a non-empty string.")
    if name in RESERVED:
        raise MapFileError(f"attribute name {name!r} is reserved for the attribute encoding; choose another name.")
    if isinstance(value, Path):
        return str(value), ""
    if isinstance(value, (str, bool, float, np.bool_, np.number)):
        return value, ""
    if isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return np.int64(value), ""
        return json.dumps(value), "json"
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            return value, ""
        if value.dtype.kind in "UO":
            return np.array([str(v) for v in value.reshape(-1)], dtype=object).reshape(value.shape), ""
        raise MapFileError(f"attribute {name!r}: arrays of dtype {value.dtype} cannot be stored; use numbers or strings.")
    if isinstance(value, list):
        arr = _number_list(value)
        if arr is not None:
            return arr, "list"
    if value is None or isinstance(value, (dict, list, tuple)):
        try:
            return dumps(value), "json"
        except (TypeError, ValueError) as err:
            raise MapFileError(f"attribute {name!r} cannot be stored as JSON ({err}).") from None
    raise MapFileError(
        f"attribute {name!r} has a {type(value).__name__}; give a str, number, bool, None, list, dict or numpy array."
    )


def decode(stored: Any, encoding: str) -> Any:
    """The value written, from what HDF5 stored and its encoding."""
    if isinstance(stored, bytes):
        stored = stored.decode()
    if encoding == "json":
        return json.loads(stored)
    if encoding == "list":
        return np.asarray(stored).tolist()
    if isinstance(stored, np.generic):
        return stored.item()
    return stored


def is_encoded(obj) -> bool:
    """Whether the object's attributes were written through this encoder (else: an older file)."""
    return ENCODING_TYPE in obj.attrs


def _encodings(obj) -> dict[str, str] | None:
    """The object's `encoding-attrs`, or None for an object written without the encoding."""
    if not is_encoded(obj):
        return None
    raw = obj.attrs.get(ENCODED, "{}")
    return dict(json.loads(raw.decode() if isinstance(raw, bytes) else raw))


def _put(obj, name: str, stored: Any) -> None:
    if isinstance(stored, np.ndarray) and stored.dtype.kind == "O":
        obj.attrs.create(name, stored, dtype=_STR)
    else:
        obj.attrs[name] = stored


def write_encoded(obj, encoded: Mapping[str, tuple[Any, str]]) -> None:
    """Set attributes already encoded (`name -> (stored, encoding)`, from `encode`), keeping the
    object's other attributes and recording the encoding."""
    codes = _encodings(obj) or {}
    for name, (stored, encoding) in encoded.items():
        if isinstance(stored, np.ndarray) and stored.ndim == 0:  # a journal entry gives scalars as 0-d arrays
            stored = str(stored) if stored.dtype.kind == "U" else stored[()]
        elif isinstance(stored, np.ndarray) and stored.dtype.kind == "U":
            stored = stored.astype(object)
        _put(obj, name, stored)
        if encoding:
            codes[name] = encoding
        else:
            codes.pop(name, None)
    obj.attrs[ENCODING_TYPE] = TYPE
    obj.attrs[ENCODING_VERSION] = VERSION
    obj.attrs[ENCODED] = dumps(codes)


def write_attrs(obj, attrs: Mapping[str, Any]) -> None:
    """Set attributes of an h5py object (group, dataset or file) through the encoder."""
    write_encoded(obj, {name: encode(name, value) for name, value in attrs.items()})


def read_attrs(obj) -> dict[str, Any]:
    """Every attribute of an h5py object, decoded (without the encoding's own attributes)."""
    codes = _encodings(obj)
    out = {}
    for name, stored in obj.attrs.items():
        if codes is not None and name in RESERVED:
            continue
        out[name] = decode(stored, (codes or {}).get(name, ""))
    return out


def read_attr(obj, name: str, default: Any = None) -> Any:
    """One attribute, decoded; `default` when it is missing."""
    if name not in obj.attrs:
        return default
    return decode(obj.attrs[name], (_encodings(obj) or {}).get(name, ""))


def clear_attrs(obj) -> None:
    """Remove every attribute (and the encoding record) of an object."""
    for name in list(obj.attrs):
        del obj.attrs[name]
