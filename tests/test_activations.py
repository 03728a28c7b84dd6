"""Each activation and its hand-written derivative against jax.nn and jax.grad."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import activations
from tests._oracles import RTOL

# name -> the jax reference for fn. leaky_relu is checked with its default
# slope 0.01, jax.nn.leaky_relu's default too.
REFERENCES = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "softplus": jax.nn.softplus,
    "identity": lambda z: z,
    "linear": lambda z: z,
}


def derivative_at(act, z):
    """``f'(z)`` from the hand-written derivative, fed ``a`` or ``z``."""
    return act.derivative(act.fn(z) if act.from_output else z)


def grid(dtype):
    # Avoids z = 0, where the relus' one-sided derivatives are pinned below.
    return jnp.linspace(-6.0, 6.0, 240, dtype=dtype) + 0.025


def tolerances(dtype):
    # a * (1 - a) and 1 - a ** 2 cancel where a nears 1: their absolute error
    # is a few ulps of a, so the check is relative plus a few epsilons.
    rtol = RTOL[jnp.dtype(dtype).name]
    return {"rtol": rtol, "atol": 8 * float(jnp.finfo(dtype).eps)}


def test_every_name_has_a_reference():
    assert set(activations.NAMES) == set(REFERENCES)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_fn_matches_jax_nn(dtype, name):
    act = activations.get(name)
    z = grid(dtype)
    a = act.fn(z)
    assert a.dtype == dtype and a.shape == z.shape
    np.testing.assert_allclose(a, REFERENCES[name](z), **tolerances(dtype))


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_derivative_matches_jax_grad_of_reference(dtype, name):
    act = activations.get(name)
    z = grid(dtype)
    manual = derivative_at(act, z)
    assert manual.dtype == dtype and manual.shape == z.shape
    expected = jax.vmap(jax.grad(REFERENCES[name]))(z)
    np.testing.assert_allclose(manual, expected, **tolerances(dtype))
    # and against autodiff of funcnet's own fn
    own = jax.vmap(jax.grad(act.fn))(z)
    np.testing.assert_allclose(manual, own, **tolerances(dtype))


def test_known_derivative_values():
    # sigmoid'(0) = 1/4, tanh'(0) = 1, softplus'(0) = sigmoid(0) = 1/2.
    zero = jnp.zeros(1)
    assert float(derivative_at(activations.sigmoid, zero)[0]) == 0.25
    assert float(derivative_at(activations.tanh, zero)[0]) == 1.0
    assert float(derivative_at(activations.softplus, zero)[0]) == 0.5
    # relu'(0) = 0 and leaky'(0) = the slope: the left derivative.
    assert float(derivative_at(activations.relu, zero)[0]) == 0.0
    assert derivative_at(activations.leaky_relu(), zero)[0] == np.float32(0.01)
    assert derivative_at(activations.leaky_relu(0.2), zero)[0] == np.float32(0.2)


def test_sigmoid_saturates_to_zero_derivative():
    z = jnp.array([-1000.0, 1000.0])
    a = activations.sigmoid.fn(z)
    np.testing.assert_array_equal(a, [0.0, 1.0])
    np.testing.assert_array_equal(activations.sigmoid.derivative(a), [0.0, 0.0])
    np.testing.assert_array_equal(jax.vmap(jax.grad(jax.nn.sigmoid))(z), [0.0, 0.0])


def test_softplus_is_finite_at_large_logits():
    z = jnp.array([-1000.0, 1000.0])
    np.testing.assert_array_equal(activations.softplus.fn(z), [0.0, 1000.0])
    np.testing.assert_array_equal(derivative_at(activations.softplus, z), [0.0, 1.0])


def test_leaky_relu_with_a_custom_slope(dtype):
    act = activations.leaky_relu(0.2)
    z = grid(dtype)
    np.testing.assert_allclose(act.fn(z), jax.nn.leaky_relu(z, 0.2), rtol=1e-6)
    expected = jax.vmap(jax.grad(lambda v: jax.nn.leaky_relu(v, 0.2)))(z)
    np.testing.assert_allclose(derivative_at(act, z), expected, rtol=1e-6)
    assert derivative_at(act, z).dtype == dtype


def test_get_passes_an_activation_through_and_rejects_unknown_names():
    assert activations.get(activations.tanh) is activations.tanh
    assert activations.get("linear").fn is activations.identity.fn
    with pytest.raises(
        ValueError, match="activation must be an Activation or one of .*got 'gelu'"
    ):
        activations.get("gelu")


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_relus_pass_nan_through_like_jax_nn(name):
    # A NaN pre-activation must stay NaN (jax.nn's behaviour), or a diverged
    # network's loss would look finite and training would not stop.
    z = jnp.array([jnp.nan, -1.0, 2.0])
    got = np.asarray(activations.get(name).fn(z))
    expected = np.asarray(REFERENCES[name](z))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got[0])
