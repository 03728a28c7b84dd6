"""Losses against optax and jax.grad, at extreme logits, with masks, on bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnet import losses
from tests._oracles import RTOL

BATCH, WIDTH = 6, 4


def optax_mse(outputs, targets):
    # optax.l2_loss is 0.5 * (o - t) ** 2 per element; funcnet sums the units
    # of an example and averages the examples.
    return optax.l2_loss(outputs, targets).sum(axis=-1).mean()


def optax_bce(logits, targets):
    return optax.sigmoid_binary_cross_entropy(logits, targets).sum(axis=-1).mean()


def optax_softmax_ce(logits, targets):
    return optax.softmax_cross_entropy(logits, targets).mean()


def optax_softmax_ce_labels(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def make_case(name, key, dtype):
    """(funcnet loss, its optax reference, outputs, targets)."""
    out_key, t_key = jax.random.split(key)
    outputs = 3.0 * jax.random.normal(out_key, (BATCH, WIDTH), dtype)
    if name == "mse":
        targets = jax.random.normal(t_key, (BATCH, WIDTH), dtype)
        return losses.mse, optax_mse, outputs, targets
    if name == "bce":
        targets = jax.random.bernoulli(t_key, 0.5, (BATCH, WIDTH)).astype(dtype)
        return losses.sigmoid_binary_cross_entropy, optax_bce, outputs, targets
    if name == "softmax_probs":
        targets = jax.nn.softmax(jax.random.normal(t_key, (BATCH, WIDTH), dtype))
        return losses.softmax_cross_entropy, optax_softmax_ce, outputs, targets
    labels = jax.random.randint(t_key, (BATCH,), 0, WIDTH)
    return losses.softmax_cross_entropy, optax_softmax_ce_labels, outputs, labels


CASES = ["mse", "bce", "softmax_probs", "softmax_labels"]


@pytest.mark.parametrize("name", CASES)
def test_value_matches_optax(key, dtype, name):
    loss, reference, outputs, targets = make_case(name, key, dtype)
    value = loss(outputs, targets)
    assert value.shape == () and value.dtype == dtype
    np.testing.assert_allclose(
        value, reference(outputs, targets), rtol=RTOL[jnp.dtype(dtype).name]
    )


@pytest.mark.parametrize("name", CASES)
def test_grad_matches_jax_grad_of_optax(key, dtype, name):
    loss, reference, outputs, targets = make_case(name, key, dtype)
    manual = loss.grad(outputs, targets)
    expected = jax.grad(reference)(outputs, targets)
    assert manual.shape == outputs.shape and manual.dtype == dtype
    rtol = RTOL[jnp.dtype(dtype).name]
    scale = float(jnp.abs(expected).max())
    np.testing.assert_allclose(manual, expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("name", CASES)
def test_per_example_is_unaveraged(key, name):
    loss, reference, outputs, targets = make_case(name, key, jnp.float32)
    ell = loss.per_example(outputs, loss.prepare(outputs, targets))
    assert ell.shape == (BATCH,)
    # Each example on its own is a batch of one.
    each = [reference(outputs[i : i + 1], targets[i : i + 1]) for i in range(BATCH)]
    np.testing.assert_allclose(ell, each, rtol=1e-5)


# Extreme logits: finite values and gradients equal to the limits.


def value_and_grads(loss, logits, targets):
    """The value, the hand-written gradient and jax.grad of the loss."""
    return (
        loss(logits, targets),
        loss.grad(logits, targets),
        jax.grad(loss)(logits, targets),
    )


@pytest.mark.parametrize(
    "z,loss_limit,grad_limit",
    [
        # softplus(1000) - 1000 = 0 and sigmoid(1000) - 1 = 0.
        (1000.0, 0.0, 0.0),
        # softplus(-1000) + 1000 = 1000 and sigmoid(-1000) - 1 = -1.
        (-1000.0, 1000.0, -1.0),
    ],
)
def test_bce_at_saturated_logits(z, loss_limit, grad_limit):
    loss = losses.sigmoid_binary_cross_entropy
    value, manual, auto = value_and_grads(loss, jnp.array([[z]]), jnp.array([[1.0]]))
    assert float(value) == loss_limit
    np.testing.assert_array_equal(manual, [[grad_limit]])
    np.testing.assert_array_equal(auto, [[grad_limit]])


def test_softmax_ce_at_saturated_logits():
    # log_softmax([1000, 0, -1000]) = [0, -1000, -2000], so label 2 costs 2000;
    # softmax is [1, 0, 0], and the gradient softmax - one_hot is [1, 0, -1].
    logits = jnp.array([[1000.0, 0.0, -1000.0]])
    loss = losses.softmax_cross_entropy
    for targets in (jnp.array([2]), jnp.array([[0.0, 0.0, 1.0]])):
        value, manual, auto = value_and_grads(loss, logits, targets)
        assert float(value) == 2000.0
        np.testing.assert_array_equal(manual, [[1.0, 0.0, -1.0]])
        np.testing.assert_array_equal(auto, [[1.0, 0.0, -1.0]])


def test_integer_label_equals_one_hot():
    # By hand: log(e^2 + e^1 + e^0.1) - 2 = log(11.212509) - 2 = 0.417030.
    logits = jnp.array([[2.0, 1.0, 0.1]])
    loss = losses.softmax_cross_entropy
    from_label = loss(logits, jnp.array([0]))
    from_one_hot = loss(logits, jnp.array([[1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(from_label, 0.417030, atol=1e-6)
    np.testing.assert_allclose(from_one_hot, 0.417030, atol=1e-6)
    np.testing.assert_array_equal(
        loss.grad(logits, jnp.array([0])),
        loss.grad(logits, jnp.array([[1.0, 0.0, 0.0]])),
    )


# Masks: padded examples count for nothing; the mean is over the real ones.


@pytest.mark.parametrize("name", CASES)
def test_mask_drops_padding(key, name):
    loss, _, outputs, targets = make_case(name, key, jnp.float32)
    real = 4
    mask = jnp.array([1.0] * real + [0.0] * (BATCH - real))

    np.testing.assert_allclose(
        loss(outputs, targets, mask), loss(outputs[:real], targets[:real]), rtol=1e-6
    )
    grads = loss.grad(outputs, targets, mask)
    np.testing.assert_allclose(
        grads[:real], loss.grad(outputs[:real], targets[:real]), rtol=1e-6
    )
    np.testing.assert_array_equal(grads[real:], 0.0)
    auto = jax.grad(loss)(outputs, targets, mask)
    np.testing.assert_allclose(auto, grads, rtol=1e-5, atol=1e-7)


def test_mask_weights_give_a_weighted_mean(key):
    loss, reference, outputs, targets = make_case("mse", key, jnp.float32)
    weights = jnp.array([2.0, 1.0, 0.0, 0.5, 1.0, 0.0])
    each = jnp.stack(
        [reference(outputs[i : i + 1], targets[i : i + 1]) for i in range(BATCH)]
    )
    expected = jnp.sum(weights * each) / jnp.sum(weights)
    np.testing.assert_allclose(loss(outputs, targets, weights), expected, rtol=1e-6)


def test_mask_of_all_ones_is_no_mask(key):
    loss, _, outputs, targets = make_case("bce", key, jnp.float32)
    np.testing.assert_allclose(
        loss(outputs, targets, jnp.ones(BATCH)), loss(outputs, targets), rtol=1e-6
    )


# Accuracy.


def test_accuracy_by_hand():
    logits = jnp.array([[2.0, 1.0, 0.1], [0.0, 3.0, 1.0], [0.5, 0.1, 0.9]])
    # argmax per row: 0, 1, 2; against labels 0, 2, 2: right, wrong, right.
    np.testing.assert_array_equal(
        losses.accuracy(logits, jnp.array([0, 2, 2])), [1.0, 0.0, 1.0]
    )
    one_hot = jax.nn.one_hot(jnp.array([0, 2, 2]), 3)
    np.testing.assert_array_equal(losses.accuracy(logits, one_hot), [1.0, 0.0, 1.0])
    # One output: the logit's sign against a 0/1 target.
    binary = jnp.array([[1.5], [-0.5], [0.2]])
    np.testing.assert_array_equal(
        losses.accuracy(binary, jnp.array([[1.0], [1.0], [0.0]])), [1.0, 0.0, 0.0]
    )


# Bad input: a ValueError that names the argument.


@pytest.mark.parametrize(
    "loss", [losses.mse, losses.sigmoid_binary_cross_entropy], ids=["mse", "bce"]
)
def test_column_outputs_against_flat_targets_do_not_broadcast(loss):
    outputs, targets = jnp.zeros((5, 1)), jnp.zeros(5)
    with pytest.raises(
        ValueError, match=r"targets must have the shape of outputs \(5, 1\)"
    ):
        loss(outputs, targets)
    with pytest.raises(ValueError, match=r"targets\[:, None\]"):
        loss.grad(outputs, targets)


def test_probability_targets_of_the_wrong_shape():
    with pytest.raises(ValueError, match="targets must have the shape of outputs"):
        losses.softmax_cross_entropy(jnp.zeros((4, 3)), jnp.zeros((4, 2)))


def test_float_labels_are_named_as_labels_of_the_wrong_dtype():
    with pytest.raises(
        ValueError,
        match=r"targets of shape \(4,\) look like class labels, but have dtype "
        r"float32; labels must have an integer dtype",
    ):
        losses.softmax_cross_entropy(jnp.zeros((4, 3)), jnp.zeros(4, jnp.float32))


@pytest.mark.parametrize("labels,bad", [([0, 3, 1], r"\[3\]"), ([-1, 0, 2], r"\[-1\]")])
def test_integer_labels_outside_the_classes(labels, bad):
    with pytest.raises(
        ValueError,
        match=r"targets of integer labels must lie in \[0, 3\) for logits with 3 "
        r"classes; got " + bad,
    ):
        losses.softmax_cross_entropy(jnp.zeros((3, 3)), jnp.array(labels))


def test_integer_labels_of_the_wrong_shape():
    with pytest.raises(
        ValueError,
        match=r"targets of integer labels must have shape \(3,\) .*got shape \(3, 1\)",
    ):
        losses.softmax_cross_entropy(jnp.zeros((3, 4)), jnp.zeros((3, 1), jnp.int32))


@pytest.mark.parametrize("shape", [(3,), (5, 1), (4, 2)])
def test_mask_of_the_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"mask must have shape \(batch,\) = \(4,\)"):
        losses.mse(jnp.zeros((4, 2)), jnp.zeros((4, 2)), jnp.ones(shape))


def test_scalar_and_integer_outputs():
    with pytest.raises(ValueError, match="outputs must have a batch axis first"):
        losses.mse(jnp.array(1.0), jnp.array(1.0))
    with pytest.raises(TypeError, match="outputs must be floating point"):
        losses.mse(jnp.zeros((2, 1), jnp.int32), jnp.zeros((2, 1), jnp.int32))


def test_get_by_name_and_unknown_name():
    assert losses.get("mse") is losses.mse
    assert losses.get(losses.softmax_cross_entropy) is losses.softmax_cross_entropy
    with pytest.raises(ValueError, match="loss must be a Loss or one of .*got 'mae'"):
        losses.get("mae")
