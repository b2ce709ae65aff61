"""pair_moments.py and the compiled pylogmap.mapping._pairs: float64 moments of row differences.

The reference is numpy in float64 on the rows as given (``d = x_c - x_q - (mean_c - mean_q)``,
then ``sum d^2`` and ``sum d^4 / N``). Both sum the same float64 values in different orders, so
they agree to the summation error of N positive terms: below ``N 2^-53`` relative (1.1e-13 for
N = 1,000); the tests allow 1e-12.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from pylogmap.mapping import pair_moments
from pylogmap.mapping.rowstore import DiskRows

RTOL = 1e-12


def _reference(X, q, c, mean):
    X = np.asarray(X)
    d = X[c].astype(np.float64) - X[q][:, None, :].astype(np.float64) - (mean[c] - mean[q][:, None])[:, :, None]
    return np.einsum("abn,abn->ab", d, d), np.einsum("abn,abn->ab", d * d, d * d) / X.shape[1]


def _case(dtype, K=60, N=1000, width=7, seed=0):
    rng = np.random.default_rng(seed)
    X = (-300 + rng.normal(0, 5, size=(K, N)) + rng.normal(0, 20, size=(K, 1))).astype(dtype)
    q = rng.permutation(K)[:25]
    c = rng.integers(0, K, size=(25, width))
    return X, q, c, X.mean(axis=1, dtype=np.float64)


def test_the_compiled_module_is_built():
    assert pair_moments.native() is not None, (
        f"pylogmap.mapping._pairs is missing ({pair_moments.native_error()}): `pip install .` builds it"
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_moments_equal_float64_differences(dtype):
    X, q, c, mean = _case(dtype)
    sq, m4 = pair_moments.pair_moments(X, q, c, mean, fourth=True)
    ref_sq, ref_m4 = _reference(X, q, c, mean)
    assert np.allclose(sq, ref_sq, rtol=RTOL, atol=0) and np.allclose(m4, ref_m4, rtol=RTOL, atol=0)
    only, none = pair_moments.pair_moments(X, q, c, mean, fourth=False)
    assert none is None and np.array_equal(only, sq)


def test_float64_rows_are_not_rounded_through_float32():
    """Rows that differ only below float32's resolution: their distance is that difference."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=999)
    X = np.vstack([base, base + 1e-9 * rng.normal(size=999), base + 1e-9 * rng.normal(size=999)])
    mean = X.mean(axis=1)
    sq, _ = pair_moments.pair_moments(X, np.array([0]), np.array([[1, 2]]), mean, fourth=False)
    ref, _ = _reference(X, np.array([0]), np.array([[1, 2]]), mean)
    assert np.all(sq > 0) and np.allclose(sq, ref, rtol=1e-9)
    assert np.all(_reference(X.astype(np.float32), np.array([0]), np.array([[1, 2]]), mean)[0] != sq)


def test_out_of_core_and_non_contiguous_rows_give_the_same_bits(tmp_path, monkeypatch):
    X, q, c, mean = _case(np.float32, K=80, N=300, width=5, seed=2)
    want = pair_moments.pair_moments(X, q, c, mean, fourth=True)
    monkeypatch.setattr(pair_moments, "_CHUNK_BYTES", 4 * 300 * 5 * 3)  # three queries per chunk
    with DiskRows(80, 300, directory=tmp_path) as D:
        D.write(0, X)
        got = pair_moments.pair_moments(D, q, c, mean, fourth=True)
    wide = np.zeros((80, 600), dtype=np.float32)
    wide[:, ::2] = X
    strided = pair_moments.pair_moments(wide[:, ::2], q, c, mean, fourth=True)
    for other in (got, strided):
        assert np.array_equal(other[0], want[0]) and np.array_equal(other[1], want[1])


def test_same_bits_for_any_thread_count():
    code = (
        "import numpy as np, sys; sys.path.insert(0, %r); from test_pair_moments import _case;"
        "from pylogmap.mapping import pair_moments as p; X, q, c, m = _case(np.float32, K=200, N=4099, width=9);"
        "sq, m4 = p.pair_moments(X, q, c, m, fourth=True); sys.stdout.write(sq.tobytes().hex() + m4.tobytes().hex())"
    ) % os.path.dirname(__file__)
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "OMP_NUM_THREADS": str(n)}).stdout
        for n in (1, 2, 3)
    ]
    assert runs[0] and runs[0] == runs[1] == runs[2]


def test_bad_pairs_and_arrays_are_refused():
    mod = pair_moments.native()
    X, q, c, mean = _case(np.float32, K=10, N=50, width=2)
    sq = np.empty(2)
    with pytest.raises(IndexError, match="outside"):
        mod.pair_moments(X, X, mean, mean, np.array([0, 10]), np.array([1, 2]), sq)
    with pytest.raises(IndexError, match="outside"):
        mod.pair_moments(X, X, mean, mean, np.array([0, -1]), np.array([1, 2]), sq)
    with pytest.raises(ValueError, match="same length"):
        mod.pair_moments(X, X, mean, mean, np.array([0]), np.array([1, 2]), sq)
    with pytest.raises(TypeError, match="float64"):  # a converted copy would swallow the results
        mod.pair_moments(X, X, mean, mean, np.array([0, 1]), np.array([1, 2]), sq, np.empty(2, np.float32))
    with pytest.raises(TypeError):  # mixed dtypes are not converted behind the caller's back
        mod.pair_moments(X, X.astype(np.float64), mean, mean, np.array([0, 1]), np.array([1, 2]), sq)


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("PYLOGMAP_NATIVE_PAIRS", "0")
    assert pair_moments.native() is None
    X, q, c, mean = _case(np.float32, K=10, N=50, width=2)
    with pytest.raises(RuntimeError, match="switched off"):
        pair_moments.pair_moments(X, q[:3] % 10, c[:3], mean, fourth=False)
