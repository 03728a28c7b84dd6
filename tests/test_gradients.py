"""The hand-written backward pass equals jax.grad, for every combination."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from funcnet import activations, grad, layers, losses
from tests._oracles import RTOL, assert_trees_close

ACTIVATIONS = list(activations.NAMES)
ARCHITECTURES = {"one_hidden": [5, 7], "three_hidden": [5, 6, 4, 3]}

# (loss, output width, output activation, kind of targets)
HEADS = [
    ("mse", 1, None, "real"),
    ("mse", 10, None, "real"),
    ("mse", 1, "sigmoid", "real"),
    ("mse", 10, "tanh", "real"),
    ("sigmoid_binary_cross_entropy", 1, None, "binary"),
    ("sigmoid_binary_cross_entropy", 10, None, "binary"),
    ("softmax_cross_entropy", 10, None, "labels"),
    ("softmax_cross_entropy", 10, None, "probabilities"),
]


def make_targets(key, kind, batch, width, dtype):
    if kind == "real":
        return jax.random.normal(key, (batch, width), dtype)
    if kind == "binary":
        return jax.random.bernoulli(key, 0.5, (batch, width)).astype(dtype)
    if kind == "labels":
        return jax.random.randint(key, (batch,), 0, width)
    return jax.nn.softmax(jax.random.normal(key, (batch, width), dtype))


def both_gradients(net, loss, params, state, x, targets, **kwargs):
    manual = grad.manual_value_and_grad(net, loss)
    auto = grad.autodiff_value_and_grad(net, loss)
    return manual(params, state, x, targets, **kwargs), auto(
        params, state, x, targets, **kwargs
    )


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(
    "loss_name,width,output_activation,kind",
    HEADS,
    ids=[f"{h[0]}-{h[1]}-{h[2]}-{h[3]}" for h in HEADS],
)
def test_manual_equals_autodiff(
    key, dtype, architecture, activation, loss_name, width, output_activation, kind
):
    sizes = ARCHITECTURES[architecture] + [width]
    net = layers.mlp(
        sizes, activation, output_activation=output_activation, dtype=dtype
    )
    loss = losses.get(loss_name)
    init_key, x_key, t_key = jax.random.split(key, 3)
    _, params, state = net.init(init_key)
    x = jax.random.normal(x_key, (8, sizes[0]), dtype)
    targets = make_targets(t_key, kind, 8, width, dtype)

    (manual_value, manual_aux), manual = grad.manual_value_and_grad(net, loss)(
        params, state, x, targets
    )
    (auto_value, _), auto = grad.autodiff_value_and_grad(net, loss)(
        params, state, x, targets
    )

    rtol = RTOL[jnp.dtype(dtype).name]
    np.testing.assert_allclose(manual_value, auto_value, rtol=rtol)
    assert manual_aux.outputs.shape == (8, width)
    assert_trees_close(manual, auto, rtol)
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(manual))


# (mlp options, l2 strength, hidden activation, head): every new layer, alone
# and together, each run in training and in evaluation mode; the heads rotate,
# since the table above already crosses every head with every activation.
REGULARIZED = {
    "dropout": ({"dropout": 0.3}, 0.0, "relu", HEADS[1]),
    "batch_norm": ({"batch_norm": True}, 0.0, "tanh", HEADS[6]),
    "dropout_array_rate_batch_norm": (
        {"dropout": 0.25, "batch_norm": True},
        0.0,
        "sigmoid",
        HEADS[5],
    ),
    "l2": ({}, 0.05, "softplus", HEADS[7]),
    "all": ({"dropout": 0.2, "batch_norm": True}, 0.05, "leaky_relu", HEADS[6]),
}


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("variant", list(REGULARIZED))
def test_regularized_manual_equals_autodiff(key, dtype, variant, train):
    options, l2, activation, (loss_name, width, _, kind) = REGULARIZED[variant]
    if "array_rate" in variant:
        options = {**options, "dropout": jnp.asarray(options["dropout"], dtype)}
    sizes = ARCHITECTURES["three_hidden"] + [width]
    net = layers.mlp(sizes, activation, dtype=dtype, **options)
    loss = losses.get(loss_name)
    init_key, x_key, t_key, drop_key = jax.random.split(key, 4)
    _, params, state = net.init(init_key)
    x = jax.random.normal(x_key, (8, sizes[0]), dtype)
    targets = make_targets(t_key, kind, 8, width, dtype)
    if not train:
        # Evaluate with running statistics that one training step has moved.
        state = net.forward(params, state, 2 * x + 1, key=drop_key)[1]

    args = (params, state, x, targets)
    (manual_value, manual_aux), manual = grad.manual_value_and_grad(net, loss, l2=l2)(
        *args, key=drop_key, train=train
    )
    (auto_value, auto_aux), auto = grad.autodiff_value_and_grad(net, loss, l2=l2)(
        *args, key=drop_key, train=train
    )

    rtol = RTOL[jnp.dtype(dtype).name]
    np.testing.assert_allclose(manual_value, auto_value, rtol=rtol)
    assert_trees_close(manual_aux.state, auto_aux.state, rtol)
    assert_trees_close(manual, auto, rtol)
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(manual))
    if not train:
        assert_trees_close(manual_aux.state, state, 0.0)


def test_both_jit_and_agree_under_jit(key):
    net = layers.mlp([4, 8, 3], "tanh")
    loss = losses.softmax_cross_entropy
    _, params, state = net.init(key)
    x = jax.random.normal(key, (16, 4))
    labels = jnp.arange(16) % 3
    manual = jax.jit(grad.manual_value_and_grad(net, loss))
    auto = jax.jit(grad.autodiff_value_and_grad(net, loss))
    (_, _), gm = manual(params, state, x, labels)
    (_, _), ga = auto(params, state, x, labels)
    assert_trees_close(gm, ga, 1e-5)


def test_gradients_match_finite_differences_in_float64(key):
    with jax.enable_x64(True):
        net = layers.mlp([3, 4, 2], "softplus", dtype=jnp.float64)
        loss = losses.mse
        _, params, state = net.init(key)
        x = jax.random.normal(key, (5, 3), jnp.float64)
        t = jax.random.normal(jax.random.key(1), (5, 2), jnp.float64)
        (_, _), grads = grad.manual_value_and_grad(net, loss)(params, state, x, t)

        def value(p):
            return loss(net.forward(p, state, x)[0], t)

        flat, unravel = ravel_pytree(params)
        h = 1e-6
        numeric = np.array(
            [
                (value(unravel(flat.at[i].add(h))) - value(unravel(flat.at[i].add(-h))))
                / (2 * h)
                for i in range(flat.size)
            ]
        )
        analytic = np.asarray(ravel_pytree(grads)[0])
        np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


def test_relu_at_exactly_zero_has_derivative_zero(key):
    # x = 0 and b = 0 make every hidden pre-activation exactly 0.
    net = layers.mlp([3, 4, 2], "relu")
    _, params, state = net.init(key)
    x = jnp.zeros((2, 3))
    t = jnp.ones((2, 2))
    (_, _), manual = grad.manual_value_and_grad(net, losses.mse)(params, state, x, t)
    (_, _), auto = grad.autodiff_value_and_grad(net, losses.mse)(params, state, x, t)
    # Through relu'(0) = 0 nothing reaches the first layer's weights or biases.
    np.testing.assert_array_equal(manual[0]["b"], np.zeros(4))
    assert_trees_close(manual, auto, 1e-6)
    assert float(jax.grad(jax.nn.relu)(0.0)) == 0.0


def textbook_layer(b1):
    params = ({"W": jnp.array([[0.2, 0.4], [0.7, 0.1]]), "b": jnp.array(b1)}, ())
    net = layers.serial(layers.Dense(2), layers.Activation("sigmoid"))
    return net, params


def test_textbook_forward_numbers():
    # By hand, z = x @ W + b with W[i, j] from input i to unit j:
    #   z_0 = 0.5 * 0.2 + 0.8 * 0.7 + 0.1 = 0.76
    #   z_1 = 0.5 * 0.4 + 0.8 * 0.1 + 0.2 = 0.48
    # and sigmoid(0.76) = 0.6814, sigmoid(0.48) = 0.6177.
    x = jnp.array([[0.5, 0.8]])
    net, params = textbook_layer([0.1, 0.2])
    a1, _, (x_saved, a_saved) = net.forward(params, ((), ()), x)
    z1 = net.sublayers[0].forward(params[0], (), x)[0]
    np.testing.assert_allclose(z1, [[0.76, 0.48]], rtol=1e-6)
    np.testing.assert_allclose(a1, [[0.6814, 0.6177]], atol=5e-5)
    np.testing.assert_array_equal(x_saved, x)
    np.testing.assert_array_equal(a_saved, a1)


def test_design_example_numbers_need_bias_0_2():
    # DESIGN.md quotes z1 = [0.86, 0.48], a1 = [0.7027, 0.6177] for
    # b1 = [0.1, 0.2]; those figures are what b1 = [0.2, 0.2] gives
    # (z_0 = 0.1 + 0.56 + 0.2 = 0.86), so the design's first bias is a typo.
    x = jnp.array([[0.5, 0.8]])
    net, params = textbook_layer([0.2, 0.2])
    a1 = net.forward(params, ((), ()), x)[0]
    np.testing.assert_allclose(a1, [[0.7027, 0.6177]], atol=5e-5)


def test_cotangents_are_the_deltas(key):
    net = layers.mlp([3, 5, 2], "sigmoid")
    _, params, state = net.init(key)
    x = jax.random.normal(key, (4, 3))
    t = jnp.zeros((4, 2))
    y, _, residuals = net.forward(params, state, x)
    dy = losses.mse.grad(y, t)
    _, _, cotangents = net.backward(params, residuals, dy, return_cotangents=True)

    # cotangents[i] is dL/d(output of layer i); for the first Dense layer
    # that is delta_1 = dL/dz_1, here by autodiff with respect to z_1.
    def loss_of_z1(z1):
        a1 = jax.nn.sigmoid(z1)
        return losses.mse(a1 @ params[2]["W"] + params[2]["b"][None], t)

    z1 = x @ params[0]["W"] + params[0]["b"][None]
    np.testing.assert_allclose(cotangents[0], jax.grad(loss_of_z1)(z1), rtol=1e-5)
    np.testing.assert_allclose(cotangents[2], dy)


@settings(max_examples=12, deadline=None)
@given(
    hidden=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    n_in=st.integers(1, 5),
    width=st.integers(1, 4),
    batch=st.integers(1, 9),
    activation=st.sampled_from(ACTIVATIONS),
    loss_name=st.sampled_from(
        ["mse", "sigmoid_binary_cross_entropy", "softmax_cross_entropy"]
    ),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.1, 5.0),
)
def test_property_manual_equals_autodiff_float64(
    hidden, n_in, width, batch, activation, loss_name, seed, scale
):
    with jax.enable_x64(True):
        net = layers.mlp([n_in, *hidden, width], activation, dtype=jnp.float64)
        loss = losses.get(loss_name)
        k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
        _, params, state = net.init(k1)
        x = scale * jax.random.normal(k2, (batch, n_in), jnp.float64)
        kind = {"mse": "real", "sigmoid_binary_cross_entropy": "binary"}.get(
            loss_name, "labels"
        )
        targets = make_targets(k3, kind, batch, width, jnp.float64)
        (vm, _), gm = grad.manual_value_and_grad(net, loss)(params, state, x, targets)
        (va, _), ga = grad.autodiff_value_and_grad(net, loss)(params, state, x, targets)
        np.testing.assert_allclose(vm, va, rtol=1e-10)
        assert_trees_close(gm, ga, 1e-10)


def test_check_gradients_reports_every_leaf(key):
    net = layers.mlp([4, 6, 3], "relu")
    _, params, state = net.init(key)
    x = jax.random.normal(key, (10, 4))
    report = grad.check_gradients(
        net, losses.softmax_cross_entropy, params, state, x, jnp.arange(10) % 3
    )
    assert set(report) == {"[0]['W']", "[0]['b']", "[2]['W']", "[2]['b']"}
    assert max(r["max_rel"] for r in report.values()) < 1e-5


def test_value_and_grad_rejects_unknown_mode():
    net = layers.mlp([2, 1])
    with pytest.raises(
        ValueError, match="mode must be 'manual' or 'autodiff'; got 'fd'"
    ):
        grad.value_and_grad(net, losses.mse, mode="fd")
