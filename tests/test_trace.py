"""Layer traces: z, a and delta per Dense layer, against independent oracles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import layers, losses, optim, train
from funcnet import trace as trace_lib


def textbook():
    """DESIGN.md's first layer (with the b1 that gives its z1), sigmoid."""
    net = layers.mlp([2, 2, 1], "sigmoid", output_activation="sigmoid")
    params = (
        {"W": jnp.array([[0.2, 0.4], [0.7, 0.1]]), "b": jnp.array([0.2, 0.2])},
        (),
        {"W": jnp.array([[0.8], [-0.4]]), "b": jnp.array([0.05])},
        (),
    )
    return net, params, jnp.array([[0.5, 0.8]]), jnp.array([[1.0]])


def test_textbook_numbers_by_hand():
    # z1 = [0.5 * 0.2 + 0.8 * 0.7 + 0.2, 0.5 * 0.4 + 0.8 * 0.1 + 0.2]
    #    = [0.86, 0.48]; a1 = sigmoid(z1) = [0.7027, 0.6177].
    # z2 = 0.7027 * 0.8 - 0.6177 * 0.4 + 0.05 = 0.36504, a2 = 0.5903;
    # delta2 = (a2 - 1) * a2 * (1 - a2) = -0.09907;
    # delta1 = delta2 * W2.T * a1 * (1 - a1) = [-0.01656, 0.00936].
    net, params, x, t = textbook()

    result = trace_lib.trace(net, losses.mse, params, None, x, t)

    assert result.full and result.names == ("Dense(2)", "Dense(1)")
    np.testing.assert_allclose(result.z[0][0], [0.86, 0.48], rtol=1e-6)
    np.testing.assert_allclose(result.a[0][0], [0.7027, 0.6177], atol=5e-5)
    np.testing.assert_allclose(result.z[1][0], [0.36504], atol=5e-5)
    np.testing.assert_allclose(result.a[1][0], [0.5903], atol=5e-5)
    np.testing.assert_allclose(result.delta[1][0], [-0.09907], atol=5e-5)
    np.testing.assert_allclose(result.delta[0][0], [-0.01656, 0.00936], atol=5e-5)
    table = str(result).splitlines()
    assert table[0].split() == ["layer", "unit", "z", "a", "delta"]
    assert table[1].split()[:4] == ["1", "0", "0.8600", "0.7027"]


def test_deltas_and_norms_match_jax_grad(key):
    # Oracle: delta_l = dL/dz_l by jax.grad with respect to an additive
    # perturbation of z_l, and dW by jax.grad of the loss.
    net = layers.mlp([5, 7, 6, 3], "tanh")
    init_key, x_key, t_key = jax.random.split(key, 3)
    _, params, state = net.init(init_key)
    x = jax.random.normal(x_key, (4, 5))
    t = jax.random.normal(t_key, (4, 3))

    result = trace_lib.trace(net, losses.mse, params, state, x, t, full=True)

    def loss_with(eps):
        h = x
        for i, layer in enumerate(net.sublayers):
            h = layer.forward(params[i], (), h)[0]
            if i in (0, 2, 4):
                h = h + eps[i // 2]
        return losses.mse(h, t)

    zeros = [jnp.zeros((4, n)) for n in (7, 6, 3)]
    expected = jax.grad(loss_with)(zeros)
    grads = jax.grad(lambda p: losses.mse(net.forward(p, state, x)[0], t))(params)
    for i in range(3):
        np.testing.assert_allclose(result.delta[i], expected[i], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(
            result.norms.delta[i], np.linalg.norm(expected[i]), rtol=1e-5
        )
        np.testing.assert_allclose(
            result.norms.grad_w[i], np.linalg.norm(grads[2 * i]["W"]), rtol=1e-5
        )
    np.testing.assert_allclose(result.a[-1], net.forward(params, state, x)[0])


def test_large_nets_keep_norms_only(key):
    net = layers.mlp([20, 32, 10], "relu")
    _, params, state = net.init(key)
    x, t = jnp.ones((8, 20)), jnp.zeros((8,), jnp.int32)

    result = trace_lib.trace(net, losses.softmax_cross_entropy, params, state, x, t)

    assert not result.full and result.z is None
    assert str(result).splitlines()[0].split()[:3] == ["layer", "name", "|z|"]
    assert len(str(result).splitlines()) == 3


def test_gradient_flow_jits_and_vmaps(key):
    net = layers.mlp([3, 4, 4, 2], "sigmoid")
    members = jax.vmap(lambda k: net.init(k)[1])(jax.random.split(key, 3))
    x, t = jnp.ones((6, 3)), jnp.zeros((6, 2))

    def flow(params):
        return trace_lib.gradient_flow(net, losses.mse, params, None, x, t)

    norms = jax.jit(jax.vmap(flow))(members)

    assert norms.delta.shape == (3, 3)
    one = flow(jax.tree.map(lambda leaf: leaf[1], members))
    np.testing.assert_allclose(norms.grad_w[1], one.grad_w, rtol=1e-6)


def test_dropout_uses_serials_keys(key):
    # The trace's per-layer forward must draw the masks serial draws.
    net = layers.mlp([4, 8, 2], "relu", dropout=0.5)
    _, params, state = net.init(key)
    x, t = jnp.ones((3, 4)), jnp.zeros((3, 2))
    forward_key = jax.random.key(5)

    result = trace_lib.trace(
        net, losses.mse, params, state, x, t, key=forward_key, full=True
    )

    y = net.forward(params, state, x, key=forward_key)[0]
    np.testing.assert_allclose(result.a[-1], y)


def test_flow_recorder_records_every_epoch_of_fit(key):
    net = layers.mlp([4, 6, 6, 3], "sigmoid")
    x = jax.random.normal(key, (40, 4))
    y = jax.random.randint(jax.random.key(1), (40,), 0, 3)
    recorder = trace_lib.FlowRecorder(net, losses.softmax_cross_entropy, x[:16], y[:16])

    result = train.fit(
        net,
        losses.softmax_cross_entropy,
        optim.sgd(0.1),
        (x, y),
        epochs=3,
        key=jax.random.key(0),
        batch_size=20,
        epoch_metrics=recorder,
    )

    history = result.history
    assert history["delta_norm"].shape == (3, 3)
    assert history["grad_w_norm"].shape == (3, 3)
    assert np.all(history["delta_norm"] > 0)
    # The last row is the flow of the final params (fit records, not recomputes).
    last = trace_lib.gradient_flow(
        net,
        losses.softmax_cross_entropy,
        result.train_state.params,
        result.train_state.state,
        x[:16],
        y[:16],
        train=False,
    )
    np.testing.assert_allclose(history["delta_norm"][-1], last.delta, rtol=1e-6)
    np.testing.assert_allclose(history["loss"].shape, (3,))


def test_network_without_dense_is_refused():
    with pytest.raises(ValueError, match="Dense layers among its own sublayers"):
        trace_lib.trace(
            layers.serial(layers.Activation("tanh")),
            losses.mse,
            ((),),
            None,
            jnp.ones((1, 2)),
            jnp.ones((1, 2)),
        )
