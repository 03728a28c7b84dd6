"""Training on the digits learns, and manual and autodiff steps stay together."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import data, layers, losses, optim, train
from tests._oracles import RTOL, assert_trees_close


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def test_a_few_epochs_on_the_digits_beat_chance(digits):
    net = layers.mlp([64, 32, 10], "relu")
    loss = losses.softmax_cross_entropy
    optimizer = optim.adam(1e-2)
    train_state = train.init_train_state(net, optimizer, key=jax.random.key(0))
    before = train.evaluate(net, loss, train_state.params, digits.test.x, digits.test.y)
    # Ten classes: an untrained network scores near 10% and a loss near log 10.
    assert before["accuracy"] < 0.3
    assert before["loss"] > 1.5

    epoch = train.make_epoch(net, loss, optimizer, batch_size=64)
    x, y = jnp.asarray(digits.train.x), jnp.asarray(digits.train.y)
    epoch_losses = []
    for _ in range(3):
        train_state, metrics = epoch(train_state, x, y)
        epoch_losses.append(float(metrics["loss"]))
    after = train.evaluate(net, loss, train_state.params, digits.test.x, digits.test.y)

    assert after["accuracy"] > 0.85
    assert after["loss"] < 0.5 * before["loss"]
    assert epoch_losses[0] > epoch_losses[1] > epoch_losses[2]
    assert int(train_state.step) == 3 * 17  # ceil(1078 / 64) = 17 steps a epoch


def run_steps(mode, dtype, digits, steps=6, batch_size=50):
    net = layers.mlp([64, 16, 10], "tanh", dtype=dtype)
    loss = losses.softmax_cross_entropy
    optimizer = optim.sgd(0.1, momentum=0.9)
    _, params, _ = net.init(jax.random.key(0))
    opt_state = optimizer.init(params)
    step = jax.jit(train.make_train_step(net, loss, optimizer, mode=mode))
    x = jnp.asarray(digits.train.x, dtype)
    y = jnp.asarray(digits.train.y)
    values = []
    for i in range(steps):
        rows = slice(i * batch_size, (i + 1) * batch_size)
        params, opt_state, metrics = step(
            params, opt_state, train.Batch(x[rows], y[rows])
        )
        values.append(metrics["loss"])
    return params, opt_state, np.asarray(values)


def test_manual_and_autodiff_steps_give_the_same_params(digits, dtype):
    manual, manual_opt, manual_losses = run_steps("manual", dtype, digits)
    auto, auto_opt, auto_losses = run_steps("autodiff", dtype, digits)
    rtol = RTOL[jnp.dtype(dtype).name]
    assert_trees_close(manual, auto, rtol)
    assert_trees_close(manual_opt, auto_opt, rtol)
    np.testing.assert_allclose(manual_losses, auto_losses, rtol=rtol)
    # The steps did move the params and lower the loss.
    assert manual_losses[-1] < manual_losses[0]


def test_a_masked_padded_batch_steps_like_the_real_examples(digits):
    net = layers.mlp([64, 8, 10], "sigmoid")
    loss = losses.softmax_cross_entropy
    optimizer = optim.sgd(0.5)
    _, params, _ = net.init(jax.random.key(1))
    step = jax.jit(train.make_train_step(net, loss, optimizer))
    x, y = jnp.asarray(digits.train.x[:12]), jnp.asarray(digits.train.y[:12])
    # Rows 9..11 are padding: repeats of row 0 with weight 0.
    padded_x = x.at[9:].set(x[0])
    mask = jnp.array([1.0] * 9 + [0.0] * 3)

    real, _, real_metrics = step(params, optimizer.init(params), (x[:9], y[:9]))
    padded, _, padded_metrics = step(
        params, optimizer.init(params), train.Batch(padded_x, y, mask)
    )
    assert_trees_close(padded, real, 1e-5)
    np.testing.assert_allclose(padded_metrics["loss"], real_metrics["loss"], rtol=1e-6)
    assert float(padded_metrics["count"]) == 9.0
    np.testing.assert_allclose(
        padded_metrics["accuracy"], real_metrics["accuracy"], rtol=1e-6
    )
