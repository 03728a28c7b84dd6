"""Dropout, batch norm, L2 decay and per-layer deltas, against hand values.

Expected figures come from hand calculations, sampling bounds, ``jax.grad``
or finite differences, never from the code under test. The gradient
equality of every new layer in every combination is in test_gradients.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import grad, layers, losses, regularizers
from tests._oracles import assert_trees_close

# Dropout


def dropout_mask(rate, key, shape=(100, 100)):
    return layers.Dropout(rate).forward((), (), jnp.ones(shape), key=key)[0]


def test_dropout_statistics_on_ten_thousand_ones(key):
    # Zeroed count ~ Binomial(10000, 0.2): sd 0.004, so +-0.012 is 3 sd.
    y = np.asarray(dropout_mask(0.2, key))
    zeroed = np.mean(y == 0)
    assert abs(zeroed - 0.20) <= 0.012
    np.testing.assert_array_equal(np.unique(y[y != 0]), [1.25])
    assert abs(y.mean() - 1.00) <= 0.015


def test_dropout_masks_of_two_steps_agree_on_about_half(key):
    # At rate 0.5 two independent masks agree on each unit with probability
    # 0.5; over 10000 units the sd of the fraction is 0.005.
    first = np.asarray(dropout_mask(0.5, jax.random.fold_in(key, 0))) > 0
    second = np.asarray(dropout_mask(0.5, jax.random.fold_in(key, 1))) > 0
    agree = np.mean(first == second)
    assert 0.47 <= agree <= 0.53


def test_dropout_masks_differ_between_layers_of_a_serial_network(key):
    net = layers.serial(layers.Dropout(0.5), layers.Dropout(0.5))
    _, params, state = net.init(key, (10_000,))
    _, _, (first, second) = net.forward(params, state, jnp.ones((1, 10_000)), key=key)
    agree = np.mean((np.asarray(first) > 0) == (np.asarray(second) > 0))
    assert 0.47 <= agree <= 0.53


def test_dropout_under_vmap_sweeps_rates_with_one_key_per_member(key):
    rates = jnp.array([0.1, 0.5, 0.5])
    keys = jax.random.split(key, 3)

    @jax.jit
    @jax.vmap
    def zeroed(rate, member_key):
        return dropout_mask(rate, member_key) == 0

    masks = np.asarray(zeroed(rates, keys))
    np.testing.assert_allclose(masks.mean(axis=(1, 2)), rates, atol=0.015)
    assert 0.47 <= np.mean(masks[1] == masks[2]) <= 0.53


def test_dropout_same_key_same_mask_and_evaluation_is_identity(key):
    np.testing.assert_array_equal(dropout_mask(0.3, key), dropout_mask(0.3, key))
    x = jax.random.normal(key, (4, 5))
    drop = layers.Dropout(0.3)
    y, state, residuals = drop.forward((), (), x, train=False)
    np.testing.assert_array_equal(y, x)
    dparams, dx = drop.backward((), residuals, 2 * x)
    np.testing.assert_array_equal(dx, 2 * x)
    assert dparams == () and state == ()


def test_dropout_backward_is_mask_times_cotangent(key):
    x = jax.random.normal(key, (6, 7))
    drop = layers.Dropout(0.4)
    sub = jax.random.key(3)
    y, _, residuals = drop.forward((), (), x, key=sub)
    dy = jax.random.normal(jax.random.key(4), x.shape)
    _, dx = drop.backward((), residuals, dy)
    _, vjp = jax.vjp(lambda v: drop.forward((), (), v, key=sub)[0], x)
    np.testing.assert_allclose(dx, vjp(dy)[0], rtol=1e-6)
    # The survivors keep x / (1 - rate); the rest are 0.
    kept = np.asarray(y) != 0
    np.testing.assert_allclose(np.asarray(y)[kept], np.asarray(x)[kept] / 0.6, 1e-6)


def test_dropout_rate_may_be_a_tracer():
    @jax.jit
    def mean_of(rate):
        return dropout_mask(rate, jax.random.key(0)).mean()

    assert abs(float(mean_of(0.2)) - 1.0) <= 0.015


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan")])
def test_dropout_rejects_rates_outside_zero_one(rate):
    with pytest.raises(ValueError, match=r"rate must lie in \[0.0, 1.0\)"):
        layers.Dropout(rate)


def test_dropout_rejects_a_vector_of_rates():
    with pytest.raises(ValueError, match="rate must be a scalar.*vmap"):
        layers.Dropout(jnp.array([0.1, 0.2]))


def test_dropout_in_training_without_a_key_says_what_to_pass():
    drop = layers.Dropout(0.1)
    with pytest.raises(ValueError, match=r"got key=None\. Pass key=.*train=False"):
        drop.forward((), (), jnp.ones((2, 3)))


# BatchNorm

X_COLUMN = [[1.0], [2.0], [3.0], [4.0]]


def test_batch_norm_hand_values(dtype):
    # mean 2.5, biased variance 1.25, so y = (x - 2.5) / sqrt(1.25 + 1e-5).
    bn = layers.BatchNorm()
    _, params, state = bn.init(jax.random.key(0), (1,))
    params = jax.tree.map(lambda p: p.astype(dtype), params)
    x = jnp.array(X_COLUMN, dtype)
    y, _, _ = bn.forward(params, state, x)
    expected = [-1.341635, -0.447212, 0.447212, 1.341635]
    np.testing.assert_allclose(y[:, 0], expected, atol=1e-6)


def test_batch_norm_gradient_hand_values():
    # With g = [1, 0, 0, 0]: mean(g) = 1/4, mean(g * x_hat) = x_hat_0 / 4, so
    # dx_i = (g_i - 1/4 - x_hat_i * x_hat_0 / 4) / sqrt(1.25 + 1e-5).
    expected = [0.268330, -0.357768, -0.089443, 0.178882]
    bn = layers.BatchNorm()
    _, params, state = bn.init(jax.random.key(0), (1,))
    x = jnp.array(X_COLUMN)
    weights = jnp.array([[1.0], [0.0], [0.0], [0.0]])

    _, _, residuals = bn.forward(params, state, x)
    _, dx = bn.backward(params, residuals, weights)
    np.testing.assert_allclose(dx[:, 0], expected, atol=1e-6)
    autodiff = jax.grad(lambda v: jnp.sum(bn.forward(params, state, v)[0] * weights))
    np.testing.assert_allclose(autodiff(x)[:, 0], expected, atol=1e-6)


@pytest.mark.parametrize(
    "momentum,unbiased,var",
    [
        (0.9, False, 0.9 + 0.1 * 1.25),  # flax: the biased batch variance
        (0.9, True, 0.9 + 0.1 * 5 / 3),  # PyTorch: 1.25 * 4 / 3
        (0.0, False, 1.25),
    ],
)
def test_batch_norm_running_statistics_hand_values(momentum, unbiased, var):
    bn = layers.BatchNorm(momentum=momentum, unbiased_running_var=unbiased)
    _, params, state = bn.init(jax.random.key(0), (1,))
    _, new_state, _ = bn.forward(params, state, jnp.array(X_COLUMN))
    np.testing.assert_allclose(new_state["mean"], [(1 - momentum) * 2.5], 1e-6)
    np.testing.assert_allclose(new_state["var"], [var], 1e-6)


def test_batch_norm_evaluation_uses_and_keeps_running_statistics(key):
    bn = layers.BatchNorm()
    _, params, _ = bn.init(key, (2,))
    params = {"scale": jnp.array([2.0, 1.0]), "shift": jnp.array([0.5, 0.0])}
    state = {"mean": jnp.array([1.0, -1.0]), "var": jnp.array([4.0, 0.25])}
    x = jax.random.normal(key, (5, 2))

    y, new_state, _ = jax.jit(lambda s, v: bn.forward(params, s, v, train=False))(
        state, x
    )
    jax.tree.map(np.testing.assert_array_equal, new_state, state)
    by_hand = np.asarray(x) - [1.0, -1.0]
    by_hand = by_hand / np.sqrt([4.0 + 1e-5, 0.25 + 1e-5]) * [2.0, 1.0] + [0.5, 0.0]
    np.testing.assert_allclose(y, by_hand, rtol=1e-5)
    # A batch of one is fine in evaluation.
    bn.forward(params, state, x[:1], train=False)


def test_batch_norm_per_example_vmap_with_axis_name_equals_batched(key):
    x_key, dy_key, p_key = jax.random.split(key, 3)
    x = jax.random.normal(x_key, (8, 3)) * 2 + 1
    dy = jax.random.normal(dy_key, (8, 3))
    params = {
        "scale": jax.random.normal(p_key, (3,)),
        "shift": jnp.array([0.1, 0.2, 0.3]),
    }
    state = {"mean": jnp.zeros(3), "var": jnp.ones(3)}

    def run(layer, x, dy):
        y, new_state, residuals = layer.forward(params, state, x)
        dparams, dx = layer.backward(params, residuals, dy)
        return y, new_state, dparams, dx

    y, new_state, dparams, dx = run(layers.BatchNorm(), x, dy)
    per_example = jax.vmap(
        lambda xi, dyi: run(layers.BatchNorm(axis_name="batch"), xi, dyi),
        axis_name="batch",
    )
    y_v, state_v, dparams_v, dx_v = per_example(x, dy)

    np.testing.assert_allclose(y_v, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx_v, dx, rtol=1e-5, atol=1e-6)
    assert_trees_close(jax.tree.map(lambda s: s[0], state_v), new_state, 1e-5)
    assert_trees_close(jax.tree.map(lambda g: g.sum(0), dparams_v), dparams, 1e-5)


@pytest.mark.parametrize("n", [0, 1])
def test_batch_norm_in_training_rejects_a_batch_of_one(n):
    bn = layers.BatchNorm()
    _, params, state = bn.init(jax.random.key(0), (3,))
    with pytest.raises(
        ValueError, match=rf"got a batch of {n} \(x of shape \({n}, 3\)\).*train=False"
    ):
        bn.forward(params, state, jnp.ones((n, 3)))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"momentum": 1.5}, r"momentum must lie in \[0.0, 1.0\]"),
        ({"eps": 0.0}, r"eps must lie in \(0.0, inf\)"),
    ],
)
def test_batch_norm_rejects_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.BatchNorm(**kwargs)


# L2


def one_weight(b=0.0):
    net = layers.Dense(1)
    params = {"W": jnp.array([[2.0]]), "b": jnp.array([b])}
    return net, params, jnp.array([[3.0]]), jnp.array([[1.0]])


@pytest.mark.parametrize(
    "make", [grad.manual_value_and_grad, grad.autodiff_value_and_grad]
)
def test_l2_hand_values(make):
    # L = 0.5 (2 * 3 - 1)^2 + 0.5 * 0.1 * 2^2 = 12.5 + 0.2 = 12.7,
    # dL/dw = (2 * 3 - 1) * 3 + 0.1 * 2 = 15.2; the bias is not penalised.
    net, params, x, t = one_weight()
    (value, _), grads = make(net, losses.mse, l2=0.1)(params, (), x, t)
    np.testing.assert_allclose(value, 12.7, rtol=1e-6)
    np.testing.assert_allclose(grads["W"], [[15.2]], rtol=1e-6)
    np.testing.assert_allclose(grads["b"], [5.0], rtol=1e-6)


@pytest.mark.parametrize(
    "make", [grad.manual_value_and_grad, grad.autodiff_value_and_grad]
)
def test_l2_with_a_mask_over_every_leaf(make):
    # With b = 0.5 penalised too: r = 6 + 0.5 - 1 = 5.5,
    # L = 0.5 * 5.5^2 + 0.05 * (4 + 0.25) = 15.3375,
    # dL/dw = 5.5 * 3 + 0.2 = 16.7, dL/db = 5.5 + 0.05 = 5.55.
    net, params, x, t = one_weight(b=0.5)
    every = {"W": True, "b": True}
    (value, _), grads = make(net, losses.mse, l2=0.1, l2_mask=every)(params, (), x, t)
    np.testing.assert_allclose(value, 15.3375, rtol=1e-6)
    np.testing.assert_allclose(grads["W"], [[16.7]], rtol=1e-6)
    np.testing.assert_allclose(grads["b"], [5.55], rtol=1e-6)


def test_l2_is_added_to_the_data_gradient_not_replacing_it(key):
    with jax.enable_x64(True):
        net = layers.mlp([3, 4, 2], "tanh", dtype=jnp.float64)
        _, params, state = net.init(key)
        x = jax.random.normal(key, (5, 3), jnp.float64)
        t = jax.random.normal(jax.random.key(1), (5, 2), jnp.float64)
        (v0, _), g0 = grad.manual_value_and_grad(net, losses.mse)(params, state, x, t)
        (v1, _), g1 = grad.manual_value_and_grad(net, losses.mse, l2=0.3)(
            params, state, x, t
        )
        for i in (0, 2):
            W, b = params[i]["W"], params[i]["b"]
            np.testing.assert_allclose(g1[i]["W"] - g0[i]["W"], 0.3 * W, rtol=1e-12)
            np.testing.assert_array_equal(g1[i]["b"], g0[i]["b"])
            assert b.ndim == 1
        squares = sum(float(jnp.sum(params[i]["W"] ** 2)) for i in (0, 2))
        np.testing.assert_allclose(v1 - v0, 0.15 * squares, rtol=1e-12)


def test_l2_strength_may_be_swept_under_vmap():
    net, params, x, t = one_weight()

    def dw(strength):
        fn = grad.manual_value_and_grad(net, losses.mse, l2=strength)
        return fn(params, (), x, t)[1]["W"][0, 0]

    np.testing.assert_allclose(
        jax.jit(jax.vmap(dw))(jnp.array([0.0, 0.1, 1.0])), [15.0, 15.2, 17.0], 1e-6
    )


def test_l2_default_mask_leaves_out_biases_and_batch_norm(key):
    net = layers.mlp([3, 4, 2], batch_norm=True)
    _, params, _ = net.init(key)
    assert regularizers.default_mask(params) == (
        {"W": True},
        {"scale": False, "shift": False},
        (),
        {"W": True, "b": False},
    )


def test_l2_rejects_a_negative_strength_and_a_mismatched_mask():
    net, params, x, t = one_weight()
    with pytest.raises(ValueError, match=r"l2 must lie in \[0.0, inf\); got -0.1"):
        grad.manual_value_and_grad(net, losses.mse, l2=-0.1)
    fn = grad.manual_value_and_grad(net, losses.mse, l2=0.1, l2_mask={"W": True})
    with pytest.raises(ValueError, match="l2_mask must have the structure of params"):
        fn(params, (), x, t)


# deltas


def test_deltas_equal_jax_grad_with_respect_to_pre_activations(key):
    # Oracle: add a zero offset e_l to each z_l = a @ W_l + b_l, written out
    # in jnp, and take jax.grad with respect to the offsets.
    with jax.enable_x64(True):
        net = layers.mlp([3, 5, 4, 2], "sigmoid", dtype=jnp.float64)
        _, params, state = net.init(key)
        x = jax.random.normal(key, (6, 3), jnp.float64)
        t = jax.random.normal(jax.random.key(1), (6, 2), jnp.float64)
        dense = [params[0], params[2], params[4]]

        def loss_of_offsets(offsets):
            a = x
            for i, (p, e) in enumerate(zip(dense, offsets)):
                z = a @ p["W"] + jnp.broadcast_to(p["b"], e.shape) + e
                a = jax.nn.sigmoid(z) if i < 2 else z
            return losses.mse(a, t)

        zeros = [jnp.zeros((6, p["W"].shape[1]), jnp.float64) for p in dense]
        expected = jax.grad(loss_of_offsets)(zeros)
        actual = grad.deltas(net, losses.mse)(params, state, x, t)
        assert len(actual) == 3
        for a, e in zip(actual, expected):
            np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-14)


def test_deltas_through_batch_norm_and_dropout_equal_jax_grad(key):
    with jax.enable_x64(True):
        net = layers.mlp(
            [3, 5, 2], "tanh", dropout=0.3, batch_norm=True, dtype=jnp.float64
        )
        _, params, state = net.init(key)
        x = jax.random.normal(key, (6, 3), jnp.float64)
        t = jnp.arange(6) % 2
        loss = losses.softmax_cross_entropy
        drop_key = jax.random.key(7)
        layer_keys = jax.random.split(drop_key, len(net.sublayers))
        dense = [
            i for i, layer in enumerate(net.sublayers) if layer.name[:5] == "Dense"
        ]

        def loss_of_offsets(offsets):
            a = x
            for i, layer in enumerate(net.sublayers):
                a = layer.forward(params[i], state[i], a, key=layer_keys[i])[0]
                if i in dense:
                    a = a + offsets[dense.index(i)]
            return loss(a, t)

        zeros = [jnp.zeros((6, 5), jnp.float64), jnp.zeros((6, 2), jnp.float64)]
        expected = jax.grad(loss_of_offsets)(zeros)
        actual = grad.deltas(net, loss)(params, state, x, t, key=drop_key)
        for a, e in zip(actual, expected):
            np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-14)


def test_deltas_need_dense_layers():
    with pytest.raises(ValueError, match="deltas needs a serial network with Dense"):
        grad.deltas(layers.serial(layers.Activation("tanh")), losses.mse)


# composition


def test_mlp_with_dropout_and_batch_norm_under_jit_and_vmap(key):
    # One jitted sweep over dropout rates, one key per member; manual equals
    # autodiff member by member.
    x = jax.random.normal(key, (16, 4))
    labels = jnp.arange(16) % 3
    net = layers.mlp([4, 8, 3], "relu", dropout=0.5, batch_norm=True)
    _, params, state = net.init(key)

    @jax.jit
    @jax.vmap
    def both(rate, member_key):
        swept = layers.mlp([4, 8, 3], "relu", dropout=rate, batch_norm=True)
        loss = losses.softmax_cross_entropy
        args = (params, state, x, labels)
        (_, aux), manual = grad.manual_value_and_grad(swept, loss)(
            *args, key=member_key
        )
        (_, _), auto = grad.autodiff_value_and_grad(swept, loss)(*args, key=member_key)
        return manual, auto, aux.state

    manual, auto, new_state = both(jnp.array([0.0, 0.2, 0.5]), jax.random.split(key, 3))
    assert_trees_close(manual, auto, 1e-5)
    assert jax.tree.structure(new_state) == jax.tree.structure(
        jax.tree.map(lambda s: jnp.stack([s] * 3), state)
    )
    assert not np.allclose(manual[0]["W"][1], manual[0]["W"][2])
