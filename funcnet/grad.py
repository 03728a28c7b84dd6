"""The gradient of (network, loss), computed twice on purpose.

:func:`manual_value_and_grad` runs the delta rule by hand: the forward pass,
the output delta from the loss's hand-written gradient, then the network's
hand-written ``backward``. :func:`autodiff_value_and_grad` differentiates
the same forward and loss with ``jax.value_and_grad``. Both return a
function with one signature::

    fn(params, state, x, targets, *, key=None, train=True, mask=None)
        -> ((loss, Aux(outputs, state)), grads)

the shape of ``jax.value_and_grad(..., has_aux=True)``, with ``grads``
structured like ``params``. Both are pure and jit-able, and
:func:`check_gradients` compares them leaf by leaf.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from funcnet import grad, layers, losses
    >>> net = layers.mlp([2, 3, 1], "tanh")
    >>> _, params, state = net.init(jax.random.key(0))
    >>> x, t = jnp.ones((4, 2)), jnp.zeros((4, 1))
    >>> (loss, aux), grads = grad.manual_value_and_grad(net, losses.mse)(
    ...     params, state, x, t)
    >>> (_, _), auto = grad.autodiff_value_and_grad(net, losses.mse)(
    ...     params, state, x, t)
    >>> bool(jnp.allclose(grads[0]["W"], auto[0]["W"], rtol=1e-5))
    True
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnet.layers import Layer
from funcnet.losses import Loss


class Aux(NamedTuple):
    """What a value-and-grad function returns beside the loss."""

    outputs: Any
    state: Any


def manual_value_and_grad(network: Layer, loss: Loss) -> Callable:
    """Loss and gradient by the hand-written backward pass (the delta rule).

    Args:
        network: a :class:`~funcnet.layers.Layer`, usually from ``mlp``.
        loss: a :class:`~funcnet.losses.Loss`; its ``grad`` gives the output
            delta.

    Returns:
        ``fn(params, state, x, targets, *, key=None, train=True, mask=None)
        -> ((loss, Aux(outputs, state)), grads)``.
    """

    def value_and_grad(params, state, x, targets, *, key=None, train=True, mask=None):
        outputs, new_state, residuals = network.forward(
            params, state, x, key=key, train=train
        )
        value = loss(outputs, targets, mask)

        delta = loss.grad(outputs, targets, mask)
        grads, _ = network.backward(params, residuals, delta)
        return (value, Aux(outputs, new_state)), grads

    return value_and_grad


def autodiff_value_and_grad(network: Layer, loss: Loss) -> Callable:
    """The autodiff twin of :func:`manual_value_and_grad`, by ``jax.value_and_grad``.

    Same arguments and return value; the backward pass is JAX's.
    """

    def objective(params, state, x, targets, key, train, mask):
        outputs, new_state, _ = network.forward(params, state, x, key=key, train=train)
        return loss(outputs, targets, mask), Aux(outputs, new_state)

    objective_and_grad = jax.value_and_grad(objective, has_aux=True)

    def value_and_grad(params, state, x, targets, *, key=None, train=True, mask=None):
        return objective_and_grad(params, state, x, targets, key, train, mask)

    return value_and_grad


def value_and_grad(network: Layer, loss: Loss, *, mode: str = "manual") -> Callable:
    """:func:`manual_value_and_grad` or :func:`autodiff_value_and_grad` by name.

    Args:
        mode: ``"manual"`` (the hand-written backward) or ``"autodiff"``.
    """
    if mode == "manual":
        return manual_value_and_grad(network, loss)
    if mode == "autodiff":
        return autodiff_value_and_grad(network, loss)
    raise ValueError(f"mode must be 'manual' or 'autodiff'; got {mode!r}.")


def check_gradients(
    network: Layer,
    loss: Loss,
    params,
    state,
    x,
    targets,
    *,
    key=None,
    train=True,
) -> dict[str, dict[str, float]]:
    """Compares the manual gradient with ``jax.grad``, leaf by leaf.

    Returns:
        A dict from each parameter leaf's path (such as ``"[0]['W']"``) to
        ``{"max_abs": ..., "max_rel": ...}``: the largest absolute difference
        ``max |m - a|``, and the same divided by the leaf's scale
        ``max |a|`` (so that entries that are zero in both, such as the
        weights of a dead relu unit, do not divide by zero).
    """
    args = (params, state, x, targets)
    _, manual = manual_value_and_grad(network, loss)(*args, key=key, train=train)
    _, auto = autodiff_value_and_grad(network, loss)(*args, key=key, train=train)

    report = {}
    flat_manual = jax.tree_util.tree_flatten_with_path(manual)[0]
    for (path, m), a in zip(flat_manual, jax.tree.leaves(auto)):
        m, a = np.asarray(m, np.float64), np.asarray(a, np.float64)
        max_abs = float(np.abs(m - a).max(initial=0.0))
        scale = float(np.abs(a).max(initial=0.0))
        report[jax.tree_util.keystr(path)] = {
            "max_abs": max_abs,
            "max_rel": max_abs / scale if scale > 0 else max_abs,
        }
    return report


__all__ = [
    "Aux",
    "autodiff_value_and_grad",
    "check_gradients",
    "manual_value_and_grad",
    "value_and_grad",
]
