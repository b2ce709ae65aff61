"""From a map file's scores to Q: rows in use, their hash, tau, clipping and double centring.

Two ways, with the same numbers (tests/test_map_cli.py checks it):

- in memory (Q up to ``memory_budget`` bytes): L is read once and clipped and centred in place
  (geometry.clip, geometry.double_center);
- out of core (larger Q): L is read from the file a block of rows at a time, in four passes
  (rows in use, mean log-likelihoods and a histogram of the values; the hash of the rows and the
  values around the clipping quantile; the clipped row means and column sums; Q itself, written
  to a rowstore.DiskRows). The clipping quantile is exact, equal to numpy's: the histogram
  counts float32 values by the top 16 bits of an order-preserving integer key, which locates
  the two order statistics numpy interpolates between; the second pass keeps only the values
  of those bins and partitions them. The centring uses the same blocks of used rows as
  geometry.double_center, so Q is bit-identical to the in-memory one.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from pylogmap.errors import MapFileError, PylogmapError
from pylogmap.mapping import geometry
from pylogmap.mapping.rowstore import DiskRows

MIN_MODELS = 3
# Q larger than this is kept on disk (rowstore); the in-memory path needs about twice Q.
DEFAULT_MEMORY_BUDGET = 2 * 2**30
_FILE_BLOCK = 4096  # file rows per read in the passes over L (geometry.mean_loglik's block)
_CENTRE_BLOCK = 2048  # used rows per block of the centring (geometry.double_center's block)
_HASH_BLOCK = 1024


def rows_hash(mf, rows: np.ndarray, L_used: np.ndarray | None = None, *, block_rows: int = _HASH_BLOCK) -> str:
    """Hash of the rows a map is computed from: text-set hash, labels, and the float32 bytes
    of their log-likelihoods (blake2b-128)."""
    h = _hash_head(mf, rows)
    if L_used is not None:
        for start in range(0, L_used.shape[0], block_rows):
            h.update(np.ascontiguousarray(L_used[start : start + block_rows], dtype=np.float32).tobytes())
    else:
        for start in range(0, rows.size, block_rows):
            h.update(np.ascontiguousarray(mf.loglik(rows[start : start + block_rows]), dtype=np.float32).tobytes())
    return "blake2b:" + h.hexdigest()


def _hash_head(mf, rows: np.ndarray):
    h = hashlib.blake2b(digest_size=16)
    h.update(mf.text_hash.encode())
    labels = mf.labels()
    h.update(json.dumps([labels[i] for i in rows]).encode())
    return h


def check_usable(mf, selection: geometry.RowSelection) -> None:
    """A map needs MIN_MODELS rows with complete scores; say which rows are missing otherwise."""
    if mf.n_models == 0:
        raise MapFileError(
            f"{mf.path.name} has no scored models yet; score some with 'pylogmap score' "
            "(or build a map from a matrix with 'pylogmap import')."
        )
    if selection.n_used < MIN_MODELS:
        why = selection.describe(mf.labels())
        raise MapFileError(
            f"{mf.path.name} has {selection.n_used} model(s) with complete scores; a map needs at least "
            f"{MIN_MODELS}. {why}. Score more models (or rerun failed ones with 'pylogmap score')."
        )


class MapRows:
    """The rows of a map file that enter the map, read in memory or out of core (module doc).

    ``MapRows(mf, tau=...)`` scans the file: ``selection``, ``rows``, ``digest`` (rows_hash),
    ``mean_loglik`` and ``tau`` (the given one, or the clipping quantile of the rows in use)
    are then known, which is all an up-to-date check needs. ``build()`` returns Q (an ndarray,
    or a DiskRows when ``out_of_core``) and the per-text variance; ``close()`` deletes the
    out-of-core file.
    """

    def __init__(self, mf, *, tau: float | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET, workdir=None,
                 steps=None):
        self.mf = mf
        self._run = steps.run if steps is not None else (lambda name, fn, *a, **kw: fn(*a, **kw))
        self._workdir = workdir
        self._L = None
        self.Q = None
        if mf.n_models == 0:
            check_usable(mf, geometry.RowSelection(used=np.zeros(0, dtype=bool)))
        self.out_of_core = mf.n_models * mf.n_texts * 4 > memory_budget
        if self.out_of_core:
            self._scan_out_of_core(tau)
        else:
            self._scan_in_memory(tau)

    def _scan_in_memory(self, tau) -> None:
        mf = self.mf
        L = self._run("read scores", mf.loglik)
        self.selection = geometry.select_rows(L, mf.status())
        check_usable(mf, self.selection)
        self.rows = np.flatnonzero(self.selection.used)
        Lu = L[self.rows] if self.rows.size != mf.n_models else L
        self.digest = self._run("hash rows", rows_hash, mf, self.rows, Lu)
        self.mean_loglik = self._run("mean log-likelihood", geometry.mean_loglik, L)
        # L was read from the file, so it is ours to clip and centre in place (one [M, N] copy)
        self._L = np.asarray(Lu, dtype=np.float32)
        self.tau = float(tau) if tau is not None else None

    def build(self):
        """``(Q, text_variance)``: the clipped, double-centred rows in use (float32)."""
        if self.out_of_core:
            return self._build_out_of_core()
        Lc, self.tau = self._run("clip", geometry.clip, self._L, self.tau, out=self._L)
        self._L = None
        self.Q = self._run("double centre", geometry.double_center, Lc, out=Lc, block_rows=_CENTRE_BLOCK)
        return self.Q, geometry.text_variance(self.Q)

    def _scan_out_of_core(self, tau) -> None:
        """Passes 1 and 2 over the file (module docstring)."""
        mf = self.mf
        M, N = mf.n_models, mf.n_texts
        status = mf.status()
        need_tau = tau is None

        def pass1():
            used = np.zeros(M, dtype=bool)
            excluded: dict[int, str] = {}
            mean_ll = np.empty(M, dtype=np.float64)
            hist = np.zeros(1 << 16, dtype=np.int64)
            for start in range(0, M, _FILE_BLOCK):
                stop = min(start + _FILE_BLOCK, M)
                blk = mf.loglik(slice(start, stop))
                sel = geometry.select_rows(blk, status[start:stop])
                used[start:stop] = sel.used
                excluded.update({start + r: why for r, why in sel.excluded.items()})
                mean_ll[start:stop] = geometry.mean_loglik(blk)
                if need_tau and sel.used.any():
                    hist += np.bincount((_keys(blk[sel.used]) >> np.uint32(16)).ravel(), minlength=1 << 16)
            return geometry.RowSelection(used=used, excluded=excluded), mean_ll, hist

        self.selection, self.mean_loglik, hist = self._run("read scores: rows in use", pass1)
        check_usable(mf, self.selection)
        rows = self.rows = np.flatnonzero(self.selection.used)

        def pass2():
            h = _hash_head(mf, rows)
            if need_tau:
                lo, hi, frac = _ranks(rows.size * N, geometry.CLIP_QUANTILE)
                cum = np.cumsum(hist)
                bins = np.searchsorted(cum, [lo, hi], side="right")  # the bin holding each order statistic
                below = int(cum[bins[0] - 1]) if bins[0] > 0 else 0
                keep = []
            for start in range(0, rows.size, _HASH_BLOCK):
                blk = np.ascontiguousarray(mf.loglik(rows[start : start + _HASH_BLOCK]), dtype=np.float32)
                h.update(blk.tobytes())
                if need_tau:
                    top = _keys(blk) >> np.uint32(16)
                    keep.append(blk[(top >= bins[0]) & (top <= bins[1])])
            digest = "blake2b:" + h.hexdigest()
            if not need_tau:
                return digest, float(tau)
            vals = np.concatenate(keep)
            r0, r1 = lo - below, hi - below
            part = np.partition(vals, [r0, r1]) if r1 != r0 else np.partition(vals, r0)
            return digest, _lerp(float(part[r0]), float(part[r1]), frac)

        self.digest, self.tau = self._run("hash rows + clipping quantile", pass2)


    def _build_out_of_core(self):
        """Passes 3 and 4: the clipped means, then Q written to a DiskRows."""
        mf, rows, N = self.mf, self.rows, self.mf.n_texts
        if not math.isfinite(self.tau):
            raise PylogmapError(f"the clipping threshold tau must be finite; got {self.tau}.")
        tau32 = np.float32(self.tau)

        def clipped(start: int, stop: int) -> np.ndarray:
            return np.maximum(mf.loglik(rows[start:stop]), tau32).astype(np.float64)

        def pass3():
            # geometry.double_center's first loop, over the same blocks of used rows
            row_mean = np.empty(rows.size, dtype=np.float64)
            col_sum = np.zeros(N, dtype=np.float64)
            for start in range(0, rows.size, _CENTRE_BLOCK):
                block = clipped(start, start + _CENTRE_BLOCK)
                row_mean[start : start + _CENTRE_BLOCK] = block.mean(axis=1)
                col_sum += block.sum(axis=0)
            return row_mean, col_sum / rows.size - row_mean.mean()

        row_mean, col_offset = self._run("clip + centre: means", pass3)
        Q = self.Q = DiskRows(rows.size, N, directory=self._workdir)

        def pass4():
            for start in range(0, rows.size, _CENTRE_BLOCK):
                stop = min(start + _CENTRE_BLOCK, rows.size)
                block = clipped(start, stop)
                block -= row_mean[start:stop, None]
                block -= col_offset[None, :]
                Q.write(start, block.astype(np.float32))

        self._run("clip + centre: write Q out of core", pass4)
        return Q, geometry.text_variance(Q)

    def close(self) -> None:
        self._L = None
        if isinstance(self.Q, DiskRows):
            self.Q.close()
        self.Q = None


# --------------------------------------------------------------------------------------------
# Out of core
# --------------------------------------------------------------------------------------------


def _keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving uint32 keys of float32 values (no NaN): ``a < b`` iff ``key(a) < key(b)``."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    neg = (bits >> np.uint32(31)).astype(bool)
    return np.where(neg, ~bits, bits | np.uint32(0x80000000))


def _ranks(n: int, q: float) -> tuple[int, int, float]:
    """The two order statistics numpy's "linear" quantile interpolates between, and the weight."""
    pos = q * (n - 1)
    lo = int(math.floor(pos))
    return lo, min(lo + 1, n - 1), pos - lo


def _lerp(a: float, b: float, frac: float) -> float:
    """numpy's interpolation (numpy._lerp), for bit-identical results with np.quantile."""
    diff = b - a
    value = a + diff * frac
    if frac >= 0.5:
        value = b - diff * (1.0 - frac)
    return float(value)
