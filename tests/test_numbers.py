"""The one number rule (pylogmap.numbers) and the commands' output that follows it."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from pylogmap.cli import main
from pylogmap.numbers import error_decimals, format_pm, format_value
from pylogmap.store import MapFile
from pylogmap.testing import synthetic_texts


@pytest.mark.parametrize("value, error, text", [
    (0.061643, 0.006412, "0.0616 ± 0.0064"),
    (1299.4, 618.2, "1300 ± 620"),
    (860.5, 110.3, "860 ± 110"),  # not '860.5 ± 1.1e+02'
    (2.04, 0.96, "2.04 ± 0.96"),
    (0.0996, 0.0996, "0.10 ± 0.10"),  # the error rounds up to 0.10: still 2 digits
    (6.864e-15, 0.0021, "0.0000 ± 0.0021"),  # a zero at the error's resolution, not '6.864e-15'
    (-1e-9, 0.3, "0.00 ± 0.30"),  # never '-0.00'
    (0.9999969, 9.2e-6, "0.9999969 ± 0.0000092"),
    (6.864e-15, 1.5e-15, "(6.9 ± 1.5)e-15"),  # both tiny: one power of ten
    (1.234e9, 3.4e7, "(1.234 ± 0.034)e+09"),
    (5.0, 0.0, "5.000"),  # no error: the value alone
    (12.5, None, "12.50"),
    (3.0, math.nan, "3.000"),
    (math.nan, 0.1, "nan"),
    (-math.inf, 0.1, "-inf"),
])
def test_value_with_error(value, error, text):
    assert format_pm(value, error) == text


def test_the_error_has_two_significant_digits_and_the_value_its_decimal_place():
    rng = np.random.default_rng(0)
    for _ in range(2000):  # the fixed-notation range: from 1e-4 to 1e9
        err = 10 ** rng.uniform(-3.9, 7.5)
        value = rng.normal() * 10 ** rng.uniform(-4, 8)
        text = format_pm(value, err)
        v, e = text.split(" ± ")
        assert len(e.replace(".", "").lstrip("0")) == 2 or e.endswith("0"), text
        assert len(v.split(".")[-1] if "." in v else "") == len(e.split(".")[-1] if "." in e else ""), text
        assert abs(float(v) - value) <= 0.5 * 10 ** -error_decimals(err) * 1.001, text
        assert abs(float(e) - err) <= 0.05 * err + 1e-12, text


@pytest.mark.parametrize("value, text", [
    (0.0, "0"), (0.8123, "0.8123"), (12.3456, "12.35"), (1299.4, "1299"), (9.99996, "10.00"),
    (-0.00012345, "-0.0001234"), (123456.7, "123457"), (3.1416e-5, "3.142e-05"), (1e12, "1.000e+12"),
    (math.inf, "inf"),
])
def test_value_alone(value, text):
    assert format_value(value) == text


def test_value_alone_trimmed_for_data():
    assert format_value(50.5, 6, trim=True) == "50.5"
    assert format_value(512.0, 6, trim=True) == "512"
    assert format_value(1.5e-7, 3, trim=True) == "1.5e-07"


# ------------------------------------------------------------------ commands

def _map_with_final_layer(path):
    """Four models; 'm0#L2' is m0's last logit-lens layer (the same numbers as m0)."""
    rng = np.random.default_rng(3)
    N = 60
    texts = synthetic_texts(rng.integers(300, 600, size=N))
    base = -np.abs(rng.normal(900, 60, size=N))
    L = np.stack([base, base - rng.normal(30, 5, size=N), base + rng.normal(0, 20, size=N), base])
    keys = [("m0", "", -1), ("m1", "", -1), ("m2", "", -1), ("m0", "", 2)]
    MapFile.create_with_rows(path, texts, keys, L.astype(np.float32)).close()
    return path


def test_neighbours_mark_the_model_itself_and_follow_the_rule(tmp_path, capsys):
    path = _map_with_final_layer(tmp_path / "m.h5")
    assert main(["neighbors", str(path), "m0", "-k", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert main(["neighbors", str(path), "m0", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = lines[2]
    assert "m0#L2" in first and "(identical: the model itself)" in first
    for line, n in zip(lines[3:5], res["neighbors"][1:]):
        assert "identical" not in line
        assert format_pm(n["kl_bits_per_byte"], n["se_bits_per_byte"]) in line
        assert format_pm(n["kl_nats"], n["se_nats"]) in line
    assert not re.search(r"\de[+-]\d", "\n".join(lines)), "no powers of ten for these numbers"


def test_kl_on_a_row_with_minus_inf_says_so(tmp_path, capsys):
    rng = np.random.default_rng(4)
    N = 40
    texts = synthetic_texts(rng.integers(300, 600, size=N))
    L = -np.abs(rng.normal(900, 60, size=(4, N)))
    L[2, 5] = -np.inf  # a text the model gave zero probability
    path = tmp_path / "m.h5"
    MapFile.create_with_rows(path, texts, ["a", "b", "c", "d"], L.astype(np.float32)).close()
    assert main(["kl", str(path), "a", "c"]) == 2
    err = capsys.readouterr().err
    assert "1 of 40 texts with log-likelihood -inf" in err and "zero probability" in err
    assert "NaN" not in err and "rescore" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["kl", str(path), "a", "b"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\d ± \d", out) and "e-" not in out
