"""Validation shared by every piece.

Types are checked always: a hyperparameter is a real number, an array or a
tracer of a real (integer or floating) dtype, or, where the argument takes
one, a schedule (a callable of the step count). Strings, ``None``, booleans,
complex values and other callables are rejected with a ``ValueError`` naming
the argument. Ranges are checked on concrete values only: a tracer (a
learning rate swept under ``vmap``, say) passes, since its value is not known
at trace time, and so does a schedule.
"""

import inspect
import numbers
import reprlib

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(value) -> bool:
    """True when ``value`` holds a known number, not a tracer."""
    return not isinstance(value, jax.core.Tracer)


def concrete_values(value):
    """``value`` as a numpy array, or ``None`` when it is traced or callable."""
    if callable(value) or not is_concrete(value):
        return None
    return np.asarray(value)


def describe(value) -> str:
    """A short description of ``value`` for an error message."""
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    if callable(value):
        return f"the callable {getattr(value, '__qualname__', type(value).__name__)}"
    return f"{reprlib.repr(value)} of type {type(value).__name__}"


def _dtype(value):
    """The dtype ``value`` would have as an array, or ``None`` if it has none."""
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        return value.dtype
    if isinstance(value, numbers.Number):
        return np.asarray(value).dtype
    return None


def check_number(
    name: str, value, *, schedule: bool = False, schedule_hint: str = ""
) -> None:
    """Raise ``ValueError`` unless ``value`` is a real number, array or tracer.

    With ``schedule=True`` a callable (a schedule of the step count) passes
    too; otherwise it is rejected, and ``schedule_hint`` (a sentence such as
    "Only learning_rate and weight_decay take schedules.") ends the message.
    Booleans, complex values, strings, ``None`` and lists are rejected: a
    bool is not taken for a number, and a list must become an array first.
    """
    if callable(value):
        if schedule:
            _check_schedule(name, value)
            return
        hint = f" {schedule_hint}" if schedule_hint else ""
        raise ValueError(
            f"{name} takes no schedule: it must be a number, array or tracer; "
            f"got {describe(value)}.{hint}"
        )
    dtype = _dtype(value)
    if dtype is not None and (
        jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
    ):
        return
    if schedule:
        expected = "a number, array, tracer or schedule"
    else:
        expected = "a number, array or tracer"
    if dtype is not None:
        fix = " Its dtype must be real: integer or floating, not bool or complex."
    elif isinstance(value, (list, tuple)):
        fix = " Pass an array (jnp.asarray) instead of a sequence."
    else:
        fix = ""
    raise ValueError(f"{name} must be {expected}; got {describe(value)}.{fix}")


def _check_schedule(name: str, value) -> None:
    """Raise ``ValueError`` unless ``value`` can be called with one step count."""
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):  # no signature to read: trust the caller
        return
    try:
        signature.bind(0)
    except TypeError:
        raise ValueError(
            f"{name} as a schedule must take one argument, the step count; got "
            f"{describe(value)} with signature {signature}."
        ) from None


def check_range(
    name: str,
    value,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    schedule: bool = False,
    schedule_hint: str = "",
) -> None:
    """Raise ``ValueError`` when ``value`` is no number or lies outside the range.

    The type is checked first (:func:`check_number`, with ``schedule`` and
    ``schedule_hint``); then every element of a concrete array is checked
    against the range. Tracers and schedules pass the range check.
    """
    check_number(name, value, schedule=schedule, schedule_hint=schedule_hint)
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
