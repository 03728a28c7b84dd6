"""Initializers follow the textbook formulas, checked by statistics on big draws."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import initializers

# A (n_in, n_out) kernel with fan_in != fan_out, so that Glorot, He and LeCun
# give scales at least 10% apart: sqrt(2/800) = 0.050, sqrt(2/500) = 0.063,
# sqrt(1/500) = 0.045.
FAN_IN, FAN_OUT = 500, 300
N = FAN_IN * FAN_OUT

# With N = 150,000 draws the sampling errors are (one standard deviation):
#   normal  variance: relative sqrt(2 / N)                = 0.37%
#   uniform variance: relative sqrt(4/45) / (1/3) / sqrt(N) = 0.23%
#   mean: std / sqrt(N)                                    = 0.26% of std
#   a fraction p of the draws: sqrt(p (1 - p) / N)         <= 0.13%
# The tolerances below are 5 to 10 of those, so a wrong formula (10% off or
# more) fails and a right one passes for any key.
VAR_RTOL = 0.025
MEAN_ATOL = 0.02  # in units of the expected standard deviation
FRACTION_ATOL = 0.01

NORMALS = {
    "glorot_normal": math.sqrt(2 / (FAN_IN + FAN_OUT)),
    "he_normal": math.sqrt(2 / FAN_IN),
    "lecun_normal": math.sqrt(1 / FAN_IN),
}
UNIFORMS = {
    "glorot_uniform": math.sqrt(6 / (FAN_IN + FAN_OUT)),
    "he_uniform": math.sqrt(6 / FAN_IN),
}


def draw(name, key, shape=(FAN_IN, FAN_OUT), dtype=jnp.float32):
    return np.asarray(initializers.get(name)(key, shape, dtype), np.float64)


@pytest.mark.parametrize("name", sorted(NORMALS))
def test_normal_initializers_have_the_textbook_std(key, name):
    std = NORMALS[name]
    W = draw(name, key)
    assert abs(W.mean()) < MEAN_ATOL * std
    np.testing.assert_allclose(W.var(), std**2, rtol=VAR_RTOL)
    # Untruncated normal: 68.27% within one std, 4.55% beyond two.
    np.testing.assert_allclose(np.mean(np.abs(W) < std), 0.6827, atol=FRACTION_ATOL)
    np.testing.assert_allclose(np.mean(np.abs(W) > 2 * std), 0.0455, atol=FRACTION_ATOL)


@pytest.mark.parametrize("name", sorted(UNIFORMS))
def test_uniform_initializers_have_the_textbook_bound(key, name):
    limit = UNIFORMS[name]
    W = draw(name, key)
    assert np.abs(W).max() <= limit
    # The largest of N uniform draws lies within limit * 1e-4 of the bound
    # but for a chance of (1 - 1e-4) ** N ~ e^-15.
    assert np.abs(W).max() > limit * (1 - 1e-4)
    assert abs(W.mean()) < MEAN_ATOL * limit / math.sqrt(3)
    np.testing.assert_allclose(W.var(), limit**2 / 3, rtol=VAR_RTOL)
    # Flat: half the draws within half the bound (a normal of this variance
    # would put 61% there).
    np.testing.assert_allclose(np.mean(np.abs(W) < limit / 2), 0.5, atol=FRACTION_ATOL)


def test_aliases_draw_the_same_arrays(key):
    for alias, name in [
        ("xavier_uniform", "glorot_uniform"),
        ("xavier_normal", "glorot_normal"),
        ("kaiming_uniform", "he_uniform"),
        ("kaiming_normal", "he_normal"),
    ]:
        np.testing.assert_array_equal(draw(alias, key, (4, 3)), draw(name, key, (4, 3)))


def test_convolution_kernel_fans_include_the_receptive_field(key):
    # (3, 3, 64, 32): fan_in = 9 * 64 = 576; std sqrt(2 / 576) = 0.0589.
    # 18,432 draws: the variance's relative sampling error is 1.0%.
    W = draw("he_normal", key, (3, 3, 64, 32))
    np.testing.assert_allclose(W.var(), 2 / 576, rtol=0.06)


def test_normal_and_uniform_factories(key):
    W = draw_factory(initializers.normal(0.5), key)
    np.testing.assert_allclose(W.var(), 0.25, rtol=VAR_RTOL)
    U = draw_factory(initializers.uniform(0.3), key)
    assert np.abs(U).max() <= 0.3
    np.testing.assert_allclose(U.var(), 0.09 / 3, rtol=VAR_RTOL)


def draw_factory(init, key):
    return np.asarray(init(key, (FAN_IN, FAN_OUT)), np.float64)


def test_zeros(key):
    np.testing.assert_array_equal(initializers.zeros(key, (3, 2)), np.zeros((3, 2)))
    np.testing.assert_array_equal(initializers.zeros(None, (5,)), np.zeros(5))


@pytest.mark.parametrize("name", sorted(NORMALS) + sorted(UNIFORMS) + ["zeros"])
def test_dtype_and_shape_are_respected(key, dtype, name):
    W = initializers.get(name)(key, (7, 5), dtype)
    assert W.shape == (7, 5) and W.dtype == dtype


@pytest.mark.parametrize("name", sorted(NORMALS) + sorted(UNIFORMS))
def test_same_key_same_draw_other_key_other_draw(key, name):
    init = initializers.get(name)
    first, again = init(key, (6, 4)), init(key, (6, 4))
    other = init(jax.random.key(1), (6, 4))
    np.testing.assert_array_equal(first, again)
    assert not np.any(np.asarray(first) == np.asarray(other))


@pytest.mark.parametrize("name", sorted(NORMALS) + sorted(UNIFORMS))
@pytest.mark.parametrize("shape", [(10,), ()])
def test_fans_need_two_dimensions(key, name, shape):
    with pytest.raises(ValueError, match="shape must have at least 2 dimensions"):
        initializers.get(name)(key, shape)


def test_get_rejects_unknown_names():
    assert initializers.get(initializers.he_normal) is initializers.he_normal
    with pytest.raises(
        ValueError, match="initializer must be a callable or one of .*got 'orthogonal'"
    ):
        initializers.get("orthogonal")
