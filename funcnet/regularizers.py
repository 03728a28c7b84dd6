"""L2 weight decay in the loss, with its hand-written gradient.

The penalty is added to the data loss and its gradient to the data gradient
(never replacing it):

.. math::

    L = L_{data} + \\frac{\\lambda}{2} \\sum_{W \\in mask} \\sum W^2, \\qquad
    \\frac{\\partial L}{\\partial W} = \\frac{\\partial L_{data}}{\\partial W}
    + \\lambda W

for the masked leaves; the others get no penalty and keep their data
gradient. By default the mask holds the leaves with two or more dimensions
(the dense kernels ``W``); biases and batch-norm scales and shifts are left
out, the same default as AdamW's in :mod:`funcnet.optim`.

This is *coupled* decay: the penalty is part of the loss, so an adaptive
optimizer rescales its gradient with the rest. Decoupled decay (AdamW's)
lives in the optimizer instead and is a different method; use one or the
other. :func:`funcnet.grad.manual_value_and_grad` takes ``l2=`` and
``l2_mask=`` and applies both functions below.

Example:
    >>> import jax.numpy as jnp
    >>> from funcnet import regularizers
    >>> params = {"W": jnp.array([[2.0]]), "b": jnp.array([5.0])}
    >>> round(float(regularizers.l2_penalty(params, 0.1)), 6)
    0.2
    >>> grads = regularizers.l2_grad(params, 0.1)
    >>> round(float(grads["W"][0, 0]), 6), float(grads["b"][0])
    (0.2, 0.0)
"""

from typing import Any

import jax
import jax.numpy as jnp

from funcnet._checks import check_range
from funcnet._typing import Array, Grads, Params, Scalar


def default_mask(params: Params) -> Any:
    """``True`` for the leaves with ``ndim >= 2`` (kernels), else ``False``.

    Args:
        params: a parameter pytree.

    Returns:
        A pytree of bools with the structure of ``params``.
    """
    return jax.tree.map(lambda leaf: jnp.ndim(leaf) >= 2, params)


def _resolve_mask(params, mask):
    if mask is None:
        return default_mask(params)
    if callable(mask):
        return mask(params)
    return mask


def _masked_leaves(params, mask):
    mask = _resolve_mask(params, mask)
    if jax.tree.structure(mask) != jax.tree.structure(params):
        raise ValueError(
            f"l2_mask must have the structure of params, one bool per leaf "
            f"(or be a callable params -> such a pytree); got "
            f"{jax.tree.structure(mask)} for params {jax.tree.structure(params)}."
        )
    return jax.tree.leaves(params), jax.tree.leaves(mask)


def l2_penalty(params: Params, strength: Scalar, mask: Any = None) -> Array:
    """``0.5 * strength * sum(W ** 2)`` over the masked leaves.

    Args:
        params: a parameter pytree.
        strength: ``lambda``, at least 0; may be an array or a tracer.
        mask: ``None`` (leaves with ``ndim >= 2``), a pytree of Python bools
            shaped like ``params``, or a callable ``params -> such a
            pytree``. The mask decides which leaves take part, so it must be
            known at trace time; sweep ``strength`` instead.

    Returns:
        A scalar; 0 when no leaf is masked.
    """
    check_range("l2", strength, 0.0)
    leaves, keep = _masked_leaves(params, mask)

    squares = [jnp.sum(leaf**2) for leaf, k in zip(leaves, keep) if k]
    if not squares:
        return jnp.zeros((), leaves[0].dtype if leaves else jnp.float32)
    total = sum(squares[1:], squares[0])
    return (0.5 * strength * total).astype(total.dtype)


def l2_grad(params: Params, strength: Scalar, mask: Any = None) -> Grads:
    """``strength * W`` for the masked leaves and zeros for the rest.

    The gradient of :func:`l2_penalty`, with the same arguments; add it to
    the data gradient:

    .. math::

        \\frac{\\partial}{\\partial W} \\frac{\\lambda}{2} \\sum W^2 = \\lambda W.

    Args:
        params: a parameter pytree.
        strength: ``lambda``, at least 0; may be an array or a tracer.
        mask: as for :func:`l2_penalty`.

    Returns:
        A pytree with the structure and dtypes of ``params``.
    """
    check_range("l2", strength, 0.0)
    leaves, keep = _masked_leaves(params, mask)

    grads = [
        (strength * leaf).astype(leaf.dtype) if k else jnp.zeros_like(leaf)
        for leaf, k in zip(leaves, keep)
    ]
    return jax.tree.unflatten(jax.tree.structure(params), grads)


__all__ = ["default_mask", "l2_grad", "l2_penalty"]
