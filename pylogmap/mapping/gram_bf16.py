"""Coarse Gram tiles in bfloat16, on CPUs with bf16 matrix units (Intel AMX).

On a CPU with AMX, MKL multiplies bfloat16 matrices about four times faster than float32 BLAS
multiplies float32 ones (``cblas_gemm_bf16bf16f32``: bf16 inputs, float32 accumulation; 1.3
against 0.33 TFLOP/s for 4,096 x 4,096 x 10,000 on two cores of the AMX machine of
BENCHMARKS.md). The tile is ``-2 h_i.h_j`` with ``h = bf16(a)`` (each float32 value rounded to
nearest, compiled ``to_bf16``) plus gram_bound's alpha terms, so it is a lower bound of the float64
distance in gram_bound's sense, with a bracket about forty times wider than float32's: the
exact stage gets more candidates (27 instead of 10 per query for k = 10 on bench_map.py's
10,000 x 10,000 map) and ranks them in float64 as before, so the neighbours are the same.

Derivation (u = 2^-8, the unit roundoff of bf16; u32 = 2^-24; gamma_n = n u32 / (1 - n u32)).

1. Rounding to nearest: ``|a_k - h_k| <= u |a_k|`` and ``|h_k| <= (1 + u) |a_k|`` (bf16 has
   float32's exponent range, so this holds down to 2^-126; below, see item 4). Hence
   ``|a.b - h.h'| <= |a - h||b| + |h||b - h'| <= u (2 + u) |a||b|``.
2. Products of two bf16 numbers are exact in float32 (8 + 8 significant bits); whatever order
   MKL adds the N products in, the sum is within ``gamma_N sum |h_k h'_k| <= gamma_N (1 + u)^2
   |a||b|`` of ``h.h'`` (Higham, section 3.1; no assumption on the order, as in gram_bound).
3. ``-2`` is an exact scaling; the alpha terms, the rounding of a float64 Q to float32 and the
   mean term are gram_bound's items 3-5, within its ``24 u32`` slack.
4. bf16 inputs or float32 results below 2^-126 may be flushed to zero (AMX does): that moves
   a tile value by less than ``3 N 2^-124 (1 + s_i + s_j)``, covered by ``2^-99 (1 + s_i)`` in w_i.

With ``2 |a||b| <= s_i + s_j`` the distance is within ``c (s_i + s_j)`` of the tile value, with

    c = u (2 + u) + (1 + u)^2 gamma_N + 24 u32        (8.4e-3 for N = 10,000; float32: 2.0e-4)

Only the neighbour lists come from these tiles: the wide lists of t-SNE are read off the
bracket's midpoints, which would carry its width, so a search that asks for them multiplies in
float32 (knn_search decides). Queries whose kept list overflows are searched again in float32.

``use_bf16()`` decides: ``PYLOGMAP_GEMM=bf16`` or ``float32`` forces a path; the default
``auto`` takes bf16 where the CPU has AMX-BF16 and MKL can be loaded (``pip install
"pylogmap[mkl]"``); without AMX MKL's bf16 product is slower than float32 BLAS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import math
import os
import threading
from pathlib import Path

import numpy as np

from pylogmap.errors import PylogmapError
from pylogmap.mapping import pair_moments

U = 2.0**-8
U32 = 2.0**-24
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_MKL_INTERFACE_LP64 = 0
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_error: str | None = None
_tried = False


def _gamma(n: int) -> float:
    return n * U32 / (1.0 - n * U32)


def margin_coefficient(n_cols: int) -> float:
    """c such that ``e_i = c s_i`` bounds row i's share of the bf16 tile's error (docstring)."""
    if n_cols * U32 >= 0.5:
        raise PylogmapError(f"{n_cols} texts are too many for the bf16 error bound; use PYLOGMAP_GEMM=float32.")
    return U * (2.0 + U) + (1.0 + U) ** 2 * _gamma(n_cols) + 24.0 * U32


ABSOLUTE = 2.0**-99  # item 4: w_i gets ABSOLUTE * (1 + s_i)


def _mkl_paths() -> list[str]:
    """libmkl_rt from the `mkl` wheel first, then wherever the system keeps one."""
    paths: list[str] = []
    try:
        for f in importlib.metadata.files("mkl") or []:
            if Path(str(f)).name.startswith("libmkl_rt.so"):
                paths.append(str(f.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    found = ctypes.util.find_library("mkl_rt")
    if found:
        paths.append(found)
    return paths


def _load() -> None:
    global _lib, _error, _tried
    with _lock:
        if _tried:
            return
        _tried = True
        paths = _mkl_paths()
        if not paths:
            _error = 'MKL is not installed (pip install "pylogmap[mkl]")'
            return
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
                gemm = lib.cblas_gemm_bf16bf16f32
            except (OSError, AttributeError) as exc:
                _error = f"{path}: {exc}"
                continue
            # 32-bit integer arguments (LP64), whatever MKL_INTERFACE_LAYER says: set before any
            # other MKL call, and refused if an earlier user of this MKL chose ILP64
            if lib.MKL_Set_Interface_Layer(ctypes.c_int(_MKL_INTERFACE_LP64)) != _MKL_INTERFACE_LP64:
                _error = f"{path}: MKL's interface layer is already ILP64 in this process"
                continue
            i, p, f = ctypes.c_int, ctypes.c_void_p, ctypes.c_float
            gemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
            gemm.restype = None
            _threads(lib)
            _lib = lib
            _error = None
            return


def _threads(lib: ctypes.CDLL) -> None:
    """As many MKL threads as this process may use (its CPU affinity), unless the user set a
    count: MKL's own default may count physical cores only."""
    if any(os.environ.get(v) for v in ("MKL_NUM_THREADS", "OMP_NUM_THREADS")):
        return
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    lib.MKL_Set_Num_Threads(ctypes.c_int(n))


def available() -> bool:
    """Whether MKL's bf16 product and the compiled bf16 rounding can be used here."""
    _load()
    return _lib is not None and pair_moments.native() is not None


def unavailable_reason() -> str | None:
    _load()
    if _lib is None:
        return _error
    if pair_moments.native() is None:
        return "pylogmap.mapping._pairs " + (
            f"is not built ({pair_moments.native_error()})" if pair_moments.native_error()
            else "is switched off (PYLOGMAP_NATIVE_PAIRS=0)")
    return None


def cpu_has_amx_bf16() -> bool:
    """The CPU's flags (Linux /proc/cpuinfo) list amx_bf16."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


GEMM_MODES = ("auto", "bf16", "float32")


def gemm_mode() -> str:
    """PYLOGMAP_GEMM (auto by default), checked."""
    mode = os.environ.get("PYLOGMAP_GEMM", "auto").strip().lower() or "auto"
    if mode not in GEMM_MODES:
        raise PylogmapError(f"PYLOGMAP_GEMM={mode!r} is not one of auto, bf16, float32; unset it for auto.")
    return mode


def use_bf16(n_cols: int, max_sq: float, mode: str | None = None) -> bool:
    """Whether the neighbour search multiplies in bf16 (``mode`` None: PYLOGMAP_GEMM)."""
    mode = gemm_mode() if mode is None else mode
    if mode not in GEMM_MODES:
        raise PylogmapError(f"gemm={mode!r} is not one of auto, bf16, float32.")
    if mode == "float32":
        return False
    fits = n_cols * U32 < 0.5 and math.isfinite(max_sq) and max_sq < 2.0**100
    if mode == "bf16":
        if not available():
            raise PylogmapError(f"PYLOGMAP_GEMM=bf16 needs MKL and the compiled module: {unavailable_reason()}.")
        if not fits:
            raise PylogmapError("PYLOGMAP_GEMM=bf16: these rows are too long or too large for the bf16 bound.")
        return True
    return fits and cpu_has_amx_bf16() and available()


def describe() -> str:
    """One line for `pylogmap doctor`: which tiles a neighbour search without wide lists uses."""
    try:
        mode = gemm_mode()
    except PylogmapError as exc:
        return str(exc)
    amx = cpu_has_amx_bf16()
    if mode == "float32":
        return "float32 tiles (PYLOGMAP_GEMM=float32)"
    if available():
        if mode == "bf16":
            return "bf16 tiles, MKL (PYLOGMAP_GEMM=bf16" + ("" if amx else "; no AMX-BF16 here: slower than float32") + ")"
        return "bf16 tiles, MKL on AMX-BF16" if amx else "float32 tiles (no AMX-BF16 on this CPU)"
    if mode == "bf16":
        return f"PYLOGMAP_GEMM=bf16 cannot work here: {unavailable_reason()}"
    if amx:
        if _lib is None and not _mkl_paths():
            return 'float32 tiles (this CPU has AMX-BF16: pip install "pylogmap[mkl]" for bf16 tiles, x2 faster)'
        return f"float32 tiles (this CPU has AMX-BF16, but bf16 tiles are unavailable: {unavailable_reason()})"
    return "float32 tiles (no AMX-BF16 on this CPU)"


def gemm(A: np.ndarray, B: np.ndarray, C: np.ndarray, alpha: float) -> None:
    """``C = alpha A B^T`` for bf16 bit arrays A ``[m, k]``, B ``[n, k]`` (uint16, C-contiguous)
    into float32 C ``[m, n]`` (C-contiguous)."""
    _load()
    if _lib is None:
        raise PylogmapError(f"MKL's bf16 product is not available: {_error}")
    m, k = A.shape
    n = B.shape[0]
    if (A.dtype != np.uint16 or B.dtype != np.uint16 or C.dtype != np.float32 or B.shape[1] != k
            or C.shape != (m, n) or not (A.flags.c_contiguous and B.flags.c_contiguous and C.flags.c_contiguous)):
        raise ValueError("gemm needs C-contiguous uint16 A [m, k], B [n, k] and float32 C [m, n]")
    if max(m, n, k) >= 2**31:
        raise ValueError("gemm: a dimension over 2^31 - 1")
    _lib.cblas_gemm_bf16bf16f32(_ROW_MAJOR, _NO_TRANS, _TRANS, m, n, k, alpha, A.ctypes.data, k,
                                B.ctypes.data, k, 0.0, C.ctypes.data, n)


class Rounded:
    """A block of float32 rows rounded to bf16 (uint16 bits), in a buffer kept between blocks."""

    def __init__(self):
        self._buf: np.ndarray | None = None

    def of(self, block: np.ndarray) -> np.ndarray:
        n, n_cols = block.shape
        if self._buf is None or self._buf.shape[1] != n_cols or self._buf.shape[0] < n:
            self._buf = np.empty((n, n_cols), dtype=np.uint16)
        out = self._buf[:n]
        pair_moments.native().to_bf16(np.ascontiguousarray(block, dtype=np.float32), out)
        return out


class TileMakerBF16:
    """Lower-bound tiles from bf16 products, with gram_bound.TileMaker's interface.

    ``stats`` must carry this module's coefficient (gram_bound.row_stats(..., coefficient=...)).
    """

    def __init__(self, stats):
        self.stats = stats
        self._a, self._b = Rounded(), Rounded()
        self._out: np.ndarray | None = None

    def _tile(self, n_a: int, n_b: int) -> np.ndarray:
        if self._out is None or self._out.size < n_a * n_b:
            self._out = np.empty(n_a * n_b, dtype=np.float32)
        return self._out[: n_a * n_b].reshape(n_a, n_b)

    def query_operand(self, A: np.ndarray) -> np.ndarray:
        """What ``lower`` takes for the query block: its rows in bf16 (valid until the next call)."""
        return self._a.of(A)

    def lower(self, hA: np.ndarray, rows_a, B: np.ndarray, rows_b) -> np.ndarray:
        out = self._tile(hA.shape[0], B.shape[0])
        gemm(hA, self._b.of(B), out, -2.0)
        out += self.stats.alpha[rows_a][:, None]
        out += self.stats.alpha[rows_b][None, :]
        return out

    def lower_diagonal(self, A: np.ndarray, rows, op: np.ndarray | None = None) -> np.ndarray:
        hA = self._a.of(A) if op is None else op
        out = self._tile(hA.shape[0], hA.shape[0])
        gemm(hA, hA, out, -2.0)
        alpha = self.stats.alpha[rows]
        out += alpha[:, None]
        out += alpha[None, :]
        return out
