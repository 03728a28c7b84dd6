"""funcnet._checks: the type and range checks every piece shares."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnet import optim
from funcnet._checks import check_number, check_range

NUMBERS = [
    0.5,
    1,
    np.float32(0.5),
    np.int64(1),
    np.array([0.1, 0.2]),
    jnp.asarray(0.5),
    jnp.asarray(0.5, jnp.bfloat16),
    jnp.arange(3),
]


@pytest.mark.parametrize("value", NUMBERS, ids=range(len(NUMBERS)))
def test_real_numbers_and_arrays_pass(value):
    check_range("h", value, 0.0, None)
    check_range("h", value, 0.0, None, schedule=True)


NOT_NUMBERS = [
    ("0.1", r"got '0\.1' of type str\.$"),
    (None, r"got None of type NoneType\.$"),
    (True, r"got True of type bool\. Its dtype must be real"),
    (np.bool_(False), r"got an array of dtype bool and shape \(\)\. Its dtype"),
    (jnp.array([True, False]), r"got an array of dtype bool and shape \(2,\)\."),
    (0.1 + 0j, r"got \(0\.1\+0j\) of type complex\. Its dtype must be real"),
    (np.array([0.1j]), r"got an array of dtype complex128 and shape \(1,\)\."),
    ([0.1, 0.2], r"got \[0\.1, 0\.2\] of type list\. Pass an array \(jnp\.asarray\)"),
    ({"h": 0.1}, r"got \{'h': 0\.1\} of type dict\.$"),
]


@pytest.mark.parametrize("value, message", NOT_NUMBERS, ids=range(len(NOT_NUMBERS)))
def test_values_that_are_not_real_numbers_raise_naming_the_argument(value, message):
    with pytest.raises(ValueError, match=r"^h must be a number, array or tracer; "):
        check_range("h", value, 0.0, 1.0)
    with pytest.raises(ValueError, match=message):
        check_range("h", value, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^h must be a number, array, tracer or sch"):
        check_number("h", value, schedule=True)


@pytest.mark.parametrize(
    "schedule",
    [lambda count: 0.9, optax.constant_schedule(0.9)],
    ids=["lambda", "optax"],
)
def test_a_schedule_passes_only_where_one_is_taken(schedule):
    check_range("h", schedule, 0.0, None, schedule=True)
    with pytest.raises(
        ValueError,
        match=r"^h takes no schedule: it must be a number, array or tracer; got the "
        r"callable .*\. Only g takes schedules\.$",
    ):
        check_range("h", schedule, 0.0, None, schedule_hint="Only g takes schedules.")


def test_tracers_pass_the_range_but_not_a_complex_dtype():
    # A negative tracer is unknown at trace time; its dtype is known.
    jax.jit(lambda h: check_range("h", h, 0.0, 1.0))(-1.0)
    with pytest.raises(
        ValueError, match=r"h must be .*; got an array of dtype complex"
    ):
        jax.jit(lambda h: check_range("h", h, 0.0, 1.0))(jnp.asarray(0.5j))


def test_out_of_range_message_echoes_the_bad_members():
    with pytest.raises(
        ValueError, match=r"^h must lie in \[0.0, 1.0\); got \[1.5\]\.$"
    ):
        check_range("h", np.array([0.5, 1.5]), 0.0, 1.0, high_inclusive=False)


@pytest.mark.parametrize("schedule", [lambda: 1e-3, lambda count, total: 1e-3])
def test_a_schedule_must_take_one_step_count(schedule):
    with pytest.raises(ValueError, match="learning_rate as a schedule must take one"):
        optim.adam(schedule)


def test_a_schedule_with_defaults_or_varargs_passes():
    optim.adam(lambda count, scale=1.0: 1e-3 * scale)
    optim.adam(lambda *args: 1e-3)
