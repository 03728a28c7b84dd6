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

Both take ``l2=`` (L2 weight decay in the loss, see
:mod:`funcnet.regularizers`): the manual one adds ``l2 * W`` to the data
gradient by hand, the autodiff one differentiates ``loss + 0.5 * l2 *
sum(W ** 2)``. :func:`deltas` returns the delta ``dL/dz`` of every
``Dense`` layer, for traces and diagnostics.

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

from funcnet import regularizers
from funcnet._checks import check_range, concrete_values
from funcnet.layers import Layer
from funcnet.losses import Loss


class Aux(NamedTuple):
    """What a value-and-grad function returns beside the loss.

    Attributes:
        outputs: the network's outputs on the batch (logits for the
            cross-entropies).
        state: the network's new state (batch norm's running statistics
            after a training step; the given state otherwise).
    """

    outputs: Any
    state: Any


def manual_value_and_grad(
    network: Layer, loss: Loss, *, l2=0.0, l2_mask: Any = None
) -> Callable:
    """Loss and gradient by the hand-written backward pass (the delta rule).

    With ``l2 = lambda > 0`` the returned loss is ``L_data + 0.5 * lambda *
    sum(W ** 2)`` and ``lambda * W`` is summed into the data gradient of
    each masked leaf (:func:`funcnet.regularizers.l2_grad`).

    Args:
        network: a :class:`~funcnet.layers.Layer`, usually from ``mlp``.
        loss: a :class:`~funcnet.losses.Loss`; its ``grad`` gives the output
            delta.
        l2: the L2 strength ``lambda``, at least 0; may be an array or a
            tracer (a swept hyperparameter). A concrete 0 adds nothing.
        l2_mask: which leaves are penalised: ``None`` for those with
            ``ndim >= 2`` (kernels, not biases or batch-norm scale and
            shift), a pytree of bools shaped like ``params``, or a callable
            ``params -> such a pytree``.

    Returns:
        ``fn(params, state, x, targets, *, key=None, train=True, mask=None)
        -> ((loss, Aux(outputs, state)), grads)``.
    """
    check_range("l2", l2, 0.0)
    penalised = _uses_l2(l2)

    def value_and_grad(params, state, x, targets, *, key=None, train=True, mask=None):
        outputs, new_state, residuals = network.forward(
            params, state, x, key=key, train=train
        )
        value = loss(outputs, targets, mask)

        delta = loss.grad(outputs, targets, mask)
        grads, _ = network.backward(params, residuals, delta)
        if penalised:
            value = value + regularizers.l2_penalty(params, l2, l2_mask)
            decay = regularizers.l2_grad(params, l2, l2_mask)
            grads = jax.tree.map(lambda g, d: g + d, grads, decay)
        return (value, Aux(outputs, new_state)), grads

    return value_and_grad


def autodiff_value_and_grad(
    network: Layer, loss: Loss, *, l2=0.0, l2_mask: Any = None
) -> Callable:
    """The autodiff twin of :func:`manual_value_and_grad`, by ``jax.value_and_grad``.

    The same forward pass and loss, differentiated by JAX: the returned
    function has the same signature and returns the same values (up to
    rounding) as the manual one. With ``l2 = lambda > 0`` the differentiated
    objective is ``L_data + 0.5 * lambda * sum(W ** 2)`` over the masked
    leaves, so the L2 gradient ``lambda * W`` comes from ``jax.grad`` too.

    Args:
        network: a :class:`~funcnet.layers.Layer`; only its ``forward`` is
            used.
        loss: a :class:`~funcnet.losses.Loss`; only its value is used.
        l2: the L2 strength ``lambda``, at least 0; may be an array or a
            tracer. A concrete 0 adds nothing.
        l2_mask: which leaves are penalised, as for
            :func:`manual_value_and_grad`.

    Returns:
        ``fn(params, state, x, targets, *, key=None, train=True, mask=None)
        -> ((loss, Aux(outputs, state)), grads)``, with ``grads`` structured
        like ``params``.

    Raises:
        ValueError: for a concrete ``l2`` below 0.
    """
    check_range("l2", l2, 0.0)
    penalised = _uses_l2(l2)

    def objective(params, state, x, targets, key, train, mask):
        outputs, new_state, _ = network.forward(params, state, x, key=key, train=train)
        value = loss(outputs, targets, mask)
        if penalised:
            value = value + regularizers.l2_penalty(params, l2, l2_mask)
        return value, Aux(outputs, new_state)

    objective_and_grad = jax.value_and_grad(objective, has_aux=True)

    def value_and_grad(params, state, x, targets, *, key=None, train=True, mask=None):
        return objective_and_grad(params, state, x, targets, key, train, mask)

    return value_and_grad


def _uses_l2(l2) -> bool:
    """False only for a concrete strength of exactly 0."""
    values = concrete_values(l2)
    return values is None or bool(np.any(values != 0))


def value_and_grad(
    network: Layer,
    loss: Loss,
    *,
    mode: str = "manual",
    l2=0.0,
    l2_mask: Any = None,
) -> Callable:
    """:func:`manual_value_and_grad` or :func:`autodiff_value_and_grad` by name.

    Args:
        network: a :class:`~funcnet.layers.Layer`.
        loss: a :class:`~funcnet.losses.Loss`.
        mode: ``"manual"`` (the hand-written backward) or ``"autodiff"``.
        l2: the L2 strength, passed on.
        l2_mask: the L2 mask, passed on.

    Returns:
        The chosen function, ``fn(params, state, x, targets, *, key=None,
        train=True, mask=None) -> ((loss, Aux(outputs, state)), grads)``.

    Raises:
        ValueError: for a ``mode`` other than the two names.
    """
    if mode == "manual":
        return manual_value_and_grad(network, loss, l2=l2, l2_mask=l2_mask)
    if mode == "autodiff":
        return autodiff_value_and_grad(network, loss, l2=l2, l2_mask=l2_mask)
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
    l2=0.0,
    l2_mask: Any = None,
) -> dict[str, dict[str, float]]:
    """Compares the manual gradient with ``jax.grad``, leaf by leaf.

    Both gradients come from one jitted program, on one batch, in the
    params' dtype. For a report with tolerances, cosines and finite
    differences use :func:`funcnet.audit.audit`.

    Args:
        network: a :class:`~funcnet.layers.Layer`.
        loss: a :class:`~funcnet.losses.Loss`.
        params: the network's params.
        state: its state (``None`` for a stateless ``serial`` network).
        x: a batch of inputs.
        targets: the batch's targets.
        key: the forward key, the same on both sides (one dropout mask).
        train: the forward's mode, on both sides.
        l2: the L2 strength, passed to both value-and-grad functions.
        l2_mask: the L2 mask, likewise.

    Returns:
        A dict from each parameter leaf's path (such as ``"[0]['W']"``) to
        ``{"max_abs": ..., "max_rel": ...}``: the largest absolute difference
        ``max |m - a|``, and the same divided by the leaf's scale
        ``max |a|`` (so that entries that are zero in both, such as the
        weights of a dead relu unit, do not divide by zero).
    """
    args = (params, state, x, targets)
    options = {"l2": l2, "l2_mask": l2_mask}
    manual_fn = manual_value_and_grad(network, loss, **options)
    auto_fn = autodiff_value_and_grad(network, loss, **options)

    @jax.jit
    def both(params, state, x, targets, key):
        _, manual = manual_fn(params, state, x, targets, key=key, train=train)
        _, auto = auto_fn(params, state, x, targets, key=key, train=train)
        return manual, auto

    # One compiled program, not hundreds of op-by-op dispatches.
    manual, auto = both(*args, key)

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


def deltas(network: Layer, loss: Loss) -> Callable:
    """The delta ``dL/dz`` of every ``Dense`` layer, from the manual backward.

    ``z = a_prev @ W + b`` is a Dense layer's output, so its delta is the
    ``dL/dy`` that :func:`~funcnet.layers.serial`'s backward hands it
    (``return_cotangents=True``): ``delta_L = dL/dz_L`` at the output and
    ``delta_l = (delta_{l+1} @ W_{l+1}.T) * f'(z_l)`` below it (with
    batch norm or dropout in between, their backward sits in the chain).
    L2 decay adds to ``dW``, not to ``z``, so it does not change the deltas.

    Args:
        network: a :func:`~funcnet.layers.serial` network such as ``mlp``'s;
            only its own layers are searched, not nested ``serial`` ones.
        loss: the :class:`~funcnet.losses.Loss` whose gradient starts the
            backward pass.

    Returns:
        ``fn(params, state, x, targets, *, key=None, train=True, mask=None)
        -> tuple`` of one ``(batch, n_out)`` array per Dense layer, input
        side first.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnet import grad, layers, losses
        >>> net = layers.mlp([2, 3, 1], "tanh")
        >>> _, params, state = net.init(jax.random.key(0))
        >>> d = grad.deltas(net, losses.mse)(
        ...     params, state, jnp.ones((4, 2)), jnp.zeros((4, 1)))
        >>> [delta.shape for delta in d]
        [(4, 3), (4, 1)]
    """
    dense = [
        i
        for i, layer in enumerate(network.sublayers)
        if layer.name.startswith("Dense(")
    ]
    if not dense:
        raise ValueError(
            f"deltas needs a serial network with Dense layers (such as mlp's); "
            f"{network.name!r} has none among its sublayers."
        )

    def delta_fn(params, state, x, targets, *, key=None, train=True, mask=None):
        outputs, _, residuals = network.forward(params, state, x, key=key, train=train)
        dy = loss.grad(outputs, targets, mask)
        _, _, cotangents = network.backward(
            params, residuals, dy, return_cotangents=True
        )
        return tuple(cotangents[i] for i in dense)

    return delta_fn


__all__ = [
    "Aux",
    "autodiff_value_and_grad",
    "check_gradients",
    "deltas",
    "manual_value_and_grad",
    "value_and_grad",
]
