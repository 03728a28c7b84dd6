"""The jit-compiled train step, and a loop over shuffled minibatches.

:func:`make_train_step` builds ``step(params, opt_state, batch) -> (params,
opt_state, metrics)`` for a network, a loss and an optimizer (any
``optax.GradientTransformation``), taking the gradient from the hand-written
backward pass (``mode="manual"``) or from ``jax.grad`` (``"autodiff"``).
A ``batch`` is a :class:`Batch` (or any tuple ``(x, y)`` / ``(x, y, mask)``).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from funcnet import layers, losses, optim, train
    >>> net = layers.mlp([2, 8, 1], "tanh")
    >>> _, params, _ = net.init(jax.random.key(0))
    >>> optimizer = optim.sgd(0.1)
    >>> step = jax.jit(train.make_train_step(net, losses.mse, optimizer))
    >>> batch = train.Batch(jnp.ones((4, 2)), jnp.zeros((4, 1)))
    >>> opt_state = optimizer.init(params)
    >>> params, opt_state, metrics = step(params, opt_state, batch)
    >>> sorted(metrics)
    ['count', 'loss']
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnet import grad as _grad
from funcnet import losses as _losses
from funcnet.data import batch_indices
from funcnet.layers import Layer


class Batch(NamedTuple):
    """One minibatch: inputs, targets, and optional per-example weights."""

    x: Any
    y: Any
    mask: Any = None


def make_train_step(
    network: Layer,
    loss: _losses.Loss,
    optimizer: optax.GradientTransformation,
    *,
    mode: str = "manual",
) -> Callable:
    """Builds ``step(params, opt_state, batch) -> (params, opt_state, metrics)``.

    For networks without state or randomness (no batch norm, no dropout); the
    training loop of :mod:`funcnet.train` carries those in a train state.

    Args:
        network: the network, a :class:`~funcnet.layers.Layer`.
        loss: the :class:`~funcnet.losses.Loss` to minimise.
        optimizer: an ``optax.GradientTransformation``.
        mode: ``"manual"`` for the hand-written gradient, ``"autodiff"`` for
            ``jax.grad``.

    Returns:
        A pure function to wrap in ``jax.jit``. ``metrics`` holds the batch's
        ``loss``, its ``count`` of real (unmasked) examples and, for the
        cross-entropy losses, its ``accuracy``.
    """
    value_and_grad = _grad.value_and_grad(network, loss, mode=mode)

    def step(params, opt_state, batch):
        x, y, mask = _unpack(batch)
        (value, aux), grads = value_and_grad(params, None, x, y, mask=mask)

        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, batch_metrics(loss, value, aux.outputs, y, mask)

    return step


def batch_metrics(loss, value, outputs, targets, mask=None) -> dict[str, jax.Array]:
    """One batch's ``loss``, ``count`` and, for classifiers, ``accuracy``."""
    weights = jnp.ones(outputs.shape[:1], outputs.dtype) if mask is None else mask
    count = jnp.sum(weights)
    metrics = {"loss": value, "count": count}
    if loss.classification:
        correct = _losses.accuracy(outputs, targets)
        metrics["accuracy"] = jnp.sum(weights * correct) / jnp.maximum(count, 1)
    return metrics


def _unpack(batch):
    if len(batch) == 2:
        return batch[0], batch[1], None
    if len(batch) == 3:
        return tuple(batch)
    raise ValueError(
        f"batch must be (x, y) or (x, y, mask); got a {type(batch).__name__} "
        f"of {len(batch)} entries."
    )


def train_epochs(
    network: Layer,
    loss: _losses.Loss,
    optimizer: optax.GradientTransformation,
    params,
    x,
    y,
    *,
    key,
    epochs: int,
    batch_size: int | None = 32,
    mode: str = "manual",
    opt_state=None,
    callback: Callable[[int, dict, Any], None] | None = None,
):
    """Trains for ``epochs`` passes over shuffled minibatches.

    Every epoch draws a new order from ``key``; the last, shorter batch is
    padded and masked so that the jitted step compiles once. Epoch metrics
    are averages weighted by each batch's example count.

    Args:
        callback: called as ``callback(epoch, metrics, params)`` after each
            epoch (to evaluate or print; the library itself prints nothing).

    Returns:
        ``(params, opt_state, history)`` where ``history`` maps each metric
        name to a numpy array with one entry per epoch.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer; got {epochs!r}.")
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same number of rows; got {x.shape[0]} and "
            f"{y.shape[0]}."
        )
    step = jax.jit(make_train_step(network, loss, optimizer, mode=mode))
    if opt_state is None:
        opt_state = optimizer.init(params)

    history: dict[str, list[float]] = {}
    for epoch in range(epochs):
        indices, masks = batch_indices(
            jax.random.fold_in(key, epoch), len(x), batch_size
        )
        totals: dict[str, float] = {}
        for idx, mask in zip(indices, masks):
            params, opt_state, metrics = step(
                params, opt_state, Batch(x[idx], y[idx], mask)
            )
            count = float(metrics["count"])
            for name, value in metrics.items():
                if name != "count":
                    totals[name] = totals.get(name, 0.0) + count * float(value)
            totals["count"] = totals.get("count", 0.0) + count
        epoch_metrics = {
            k: v / totals["count"] for k, v in totals.items() if k != "count"
        }
        for name, value in epoch_metrics.items():
            history.setdefault(name, []).append(value)
        if callback is not None:
            callback(epoch, epoch_metrics, params)
    return params, opt_state, {k: np.asarray(v) for k, v in history.items()}


def evaluate(network: Layer, loss: _losses.Loss, params, x, y, *, state=None) -> dict:
    """Loss and (for classifiers) accuracy on a whole data set, in evaluation mode."""
    outputs, _, _ = network.forward(params, state, jnp.asarray(x), train=False)
    value = loss(outputs, y)
    metrics = batch_metrics(loss, value, outputs, jnp.asarray(y))
    return {k: float(v) for k, v in metrics.items() if k != "count"}


__all__ = ["Batch", "batch_metrics", "evaluate", "make_train_step", "train_epochs"]
