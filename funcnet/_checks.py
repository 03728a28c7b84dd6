"""Validation shared by every piece.

Checks run on concrete values only: a tracer (a learning rate swept under
``vmap``, say) passes unchecked, since its value is not known at trace time.
"""

import numbers

import jax
import numpy as np


def is_concrete(value) -> bool:
    """True when ``value`` holds a known number, not a tracer."""
    return not isinstance(value, jax.core.Tracer)


def concrete_values(value):
    """``value`` as a numpy array, or ``None`` when it is traced or callable."""
    if callable(value) or not is_concrete(value):
        return None
    return np.asarray(value)


def check_range(
    name: str,
    value,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise ``ValueError`` when a concrete ``value`` lies outside the range.

    Every element of an array is checked; tracers and schedules pass.
    """
    values = concrete_values(value)
    if values is None:
        return
    ok = np.ones(values.shape, bool)
    if low is not None:
        ok &= values >= low if low_inclusive else values > low
    if high is not None:
        ok &= values <= high if high_inclusive else values < high
    ok &= ~np.isnan(values)
    if not ok.all():
        left = "-inf" if low is None else f"{low}"
        right = "inf" if high is None else f"{high}"
        interval = (
            ("[" if low_inclusive and low is not None else "(")
            + f"{left}, {right}"
            + ("]" if high_inclusive and high is not None else ")")
        )
        bad = values if values.ndim == 0 else values[~ok]
        raise ValueError(f"{name} must lie in {interval}; got {bad.tolist()}.")


def positive_int(name: str, value, extra: str = "") -> int:
    """``value`` as a Python int, or a ``ValueError`` naming ``name``.

    Any integer type passes (``numpy.int64`` from ``y.max() + 1``, say);
    booleans and non-integers do not. ``extra`` completes the expectation
    (for example ``"or None for full batch"``).
    """
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        expected = "a positive integer" + (f" {extra}" if extra else "")
        raise ValueError(f"{name} must be {expected}; got {value!r}.")
    return int(value)
