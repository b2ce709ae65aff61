"""How numbers are written for people: one rule for a value with its error, one for a value alone.

Every table a command prints and every panel of the viewer goes through these two functions, so
the same estimate reads the same everywhere (JSON output keeps full-precision numbers instead;
it is for programs).

- `format_pm(value, error)`: the error to 2 significant digits and the value to the same decimal
  place: `0.0616 ± 0.0064`, `1300 ± 620`, `860 ± 110`. A value smaller than the error's last
  digit reads as zero at that place (`0.0000 ± 0.0021`, never `6.864e-15 ± 0.0021`). When both
  are below 1e-4, or one is 1e9 or more, they share one power of ten: `(6.9 ± 1.5)e-15`.
- `format_value(value)`: 4 significant digits in fixed notation from 1e-4 to 1e9 (`0.8123`,
  `12.35`, `1299`), a power of ten outside (`3.142e-05`), `0` for zero; `trim=True` drops
  trailing zeros, for data a user typed (`50.5`, not `50.50`).
Non-finite numbers read `nan`, `inf`, `-inf`; a missing or non-finite error leaves the value
alone. Only the standard library is used, so anything may import this module.
"""

from __future__ import annotations

import math

PLUS_MINUS = "±"
#: Magnitude from which numbers are written with a power of ten.
LARGE = 1e9
#: Below this magnitude numbers are written with a power of ten.
SMALL = 1e-4


def _special(x: float) -> str | None:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return None


def _fixed(x: float, decimals: int) -> str:
    """`x` rounded to `decimals` places (negative: to tens, hundreds...), without a minus sign on
    a zero."""
    rounded = round(x, decimals)
    if rounded == 0:
        rounded = 0.0
    return f"{rounded:.{max(decimals, 0)}f}"


def error_decimals(error: float) -> int:
    """The decimal place that shows `error` (> 0, finite) to 2 significant digits: 2 for 0.64,
    4 for 0.0064, -1 for 618 (tens), taking the rounding up of 0.0996 to 0.10 into account."""
    decimals = 1 - math.floor(math.log10(error))
    if round(error, decimals) >= 10.0 ** (2 - decimals):
        decimals -= 1
    return decimals


def format_pm(value: float, error: float | None, *, sep: str = f" {PLUS_MINUS} ") -> str:
    """`value ± error` by the module's rule (see the module docstring)."""
    value = float(value)
    special = _special(value)
    if special is not None:
        return special
    if error is None or not math.isfinite(float(error)) or float(error) <= 0:
        return format_value(value)
    error = float(error)
    decimals = error_decimals(error)
    err_r = round(error, decimals)
    val_r = round(value, decimals)
    if SMALL <= max(abs(val_r), err_r) < LARGE:
        return f"{_fixed(value, decimals)}{sep}{_fixed(error, decimals)}"
    exponent = math.floor(math.log10(max(abs(val_r), err_r)))
    mantissa = exponent + decimals
    scale = 10.0**exponent
    return f"({_fixed(val_r / scale, mantissa)}{sep}{_fixed(err_r / scale, mantissa)})e{exponent:+03d}"


def format_value(value: float, digits: int = 4, *, trim: bool = False) -> str:
    """A number without an error, to `digits` significant digits (see the module docstring)."""
    value = float(value)
    special = _special(value)
    if special is not None:
        return special
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if SMALL <= abs(value) < LARGE:
        decimals = digits - 1 - magnitude
        if abs(round(value, decimals)) >= 10.0 ** (magnitude + 1):  # 9.9996 -> 10.00
            decimals -= 1
        text = _fixed(value, max(decimals, 0))
        return text.rstrip("0").rstrip(".") if trim and "." in text else text
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    if trim and "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{exponent}"
