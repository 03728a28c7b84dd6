"""jax.grad through the custom_vjp bridge equals pure autodiff of the forward."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import bridge, layers
from tests._oracles import RTOL, assert_trees_close


def outer(y):
    """A function of the output that funcnet's losses do not know."""
    return jnp.sum(jnp.sin(y) * y**2) + jnp.max(y)


def setup(key, dtype, sizes=(3, 5, 4, 2), activation="tanh", batch=6, **kwargs):
    net = layers.mlp(list(sizes), activation, dtype=dtype, **kwargs)
    init_key, x_key = jax.random.split(key)
    _, params, state = net.init(init_key)
    x = jax.random.normal(x_key, (batch, sizes[0]), dtype)
    return net, params, state, x


def autodiff_grads(net, params, x, state=None, key=None):
    def objective(p, x):
        return outer(net.forward(p, state, x, key=key)[0])

    return jax.grad(objective, argnums=(0, 1))(params, x)


def test_grad_of_any_function_equals_autodiff(key, dtype):
    net, params, state, x = setup(key, dtype)
    f = bridge.as_function(net)

    grads = jax.grad(lambda p, x: outer(f(p, x)), argnums=(0, 1))(params, x)

    assert_trees_close(
        grads, autodiff_grads(net, params, x), RTOL[jnp.dtype(dtype).name]
    )


def test_under_jit(key, dtype):
    net, params, state, x = setup(key, dtype, activation="relu")
    f = bridge.as_function(net)

    grads = jax.jit(jax.grad(lambda p, x: outer(f(p, x)), argnums=(0, 1)))(params, x)

    assert_trees_close(
        grads, autodiff_grads(net, params, x), RTOL[jnp.dtype(dtype).name]
    )


def test_under_vmap_over_members_and_their_batches(key):
    net, _, _, _ = setup(key, jnp.float32)
    members = jax.vmap(lambda k: net.init(k)[1])(jax.random.split(key, 3))
    xs = jax.random.normal(jax.random.key(1), (3, 6, 3))
    f = bridge.as_function(net)

    grads = jax.vmap(jax.grad(lambda p, x: outer(f(p, x))))(members, xs)

    for m in range(3):
        params = jax.tree.map(lambda leaf, m=m: leaf[m], members)
        expected = autodiff_grads(net, params, xs[m])[0]
        assert_trees_close(
            jax.tree.map(lambda leaf, m=m: leaf[m], grads), expected, RTOL["float32"]
        )


def test_per_example_vmap(key):
    # vmap over single examples: each Dense sees x of shape (n_in,).
    net, params, _, x = setup(key, jnp.float32)
    f = bridge.as_function(net)

    per_example = jax.vmap(jax.grad(lambda p, xi: outer(f(p, xi[None]))), (None, 0))(
        params, x
    )

    expected = jax.vmap(lambda xi: autodiff_grads(net, params, xi[None])[0], in_axes=0)(
        x
    )
    assert_trees_close(per_example, expected, RTOL["float32"])


def test_it_runs_the_hand_written_backward(key):
    # A backward that doubles dx: the bridge's gradient follows it, autodiff
    # does not, so the hand-written backward is what runs.
    doubling = layers.Activation("identity")
    doubling = doubling._replace(backward=lambda params, residuals, dy: ((), 2 * dy))
    net = layers.serial(layers.Dense(2), doubling)
    _, params, _ = net.init(key, (3,))
    x = jnp.ones((4, 3))
    f = bridge.as_function(net)

    grads = jax.grad(lambda p: jnp.sum(f(p, x)))(params)
    auto = jax.grad(lambda p: jnp.sum(net.forward(p, None, x)[0]))(params)

    np.testing.assert_allclose(grads[0]["W"], 2 * auto[0]["W"], rtol=1e-6)


def test_state_and_key_with_batch_norm_and_dropout(key):
    with jax.enable_x64(True):
        net, params, state, x = setup(
            key, jnp.float64, batch=8, dropout=0.25, batch_norm=True
        )
        forward_key = jax.random.key(7)
        f = bridge.as_function(net, return_state=True)

        def objective(p, x):
            y, new_state = f(p, x, state, forward_key)
            return outer(y), new_state

        (value, new_state), grads = jax.value_and_grad(
            objective, argnums=(0, 1), has_aux=True
        )(params, x)
        expected = autodiff_grads(net, params, x, state, forward_key)
        _, expected_state, _ = net.forward(params, state, x, key=forward_key)

    assert_trees_close(grads, expected, RTOL["float64"])
    assert_trees_close(new_state, expected_state, RTOL["float64"])


def test_evaluation_mode_is_static(key):
    net, params, state, x = setup(key, jnp.float32, batch_norm=True)
    f = bridge.as_function(net, train=False)

    y = jax.jit(f)(params, x, state)

    np.testing.assert_allclose(
        y, net.forward(params, state, x, train=False)[0], rtol=1e-6
    )


def test_forward_mode_is_refused(key):
    net, params, _, x = setup(key, jnp.float32)
    f = bridge.as_function(net)

    with pytest.raises(TypeError):
        jax.jvp(lambda x: f(params, x), (x,), (x,))


def test_non_layer_is_refused():
    with pytest.raises(
        ValueError, match="network must be a funcnet Layer .* got function"
    ):
        bridge.as_function(lambda x: x)


def test_no_state_for_a_batch_norm_network_is_named(key):
    net, params, state, x = setup(key, jnp.float32, batch_norm=True)
    f = bridge.as_function(net)

    message = (
        "state must be the state that network.init returns; got None, but "
        "mlp([3, 5, 4, 2]) keeps 4 state arrays"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        f(params, x)
    with pytest.raises(ValueError, match=re.escape(message)):
        jax.jit(jax.grad(lambda p: jnp.sum(f(p, x))))(params)
    assert f(params, x, state).shape == (6, 2)


@pytest.mark.parametrize(
    "bad_key,got",
    [(3, "3 of type int"), (jnp.zeros(2), "an array of dtype float32 and shape (2,)")],
)
def test_a_key_that_is_no_prng_key_is_named(key, bad_key, got):
    net, params, _, x = setup(key, jnp.float32, dropout=0.5)
    f = bridge.as_function(net)

    with pytest.raises(
        ValueError,
        match=re.escape(
            "key must be one JAX PRNG key, such as jax.random.key(0), or None; "
            f"got {got}."
        ),
    ):
        f(params, x, None, bad_key)
    # A legacy raw key still works.
    assert f(params, x, None, jax.random.PRNGKey(0)).shape == (6, 2)
