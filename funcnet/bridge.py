"""A funcnet network as a JAX function whose VJP is the hand-written backward.

:func:`as_function` wraps a :class:`~funcnet.layers.Layer` in
``jax.custom_vjp``: the forward pass saves the layer's ``residuals``, and
reverse-mode autodiff of *any* function of the output (a loss funcnet does
not know, a penalty on the activations, a second network on top) calls the
layer's own ``backward``:

.. math::

    \\bar{\\theta}, \\bar{x} = \\mathrm{backward}(\\theta, r, \\bar{y}),
    \\qquad y, r = \\mathrm{forward}(\\theta, x)

so ``jax.grad(lambda p: g(f(p, x)))`` is ``g``'s autodiff chained into the
delta rule. It composes with ``jit`` and ``vmap`` (JAX batches the backward
as it batches the forward).

Note:
    Forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``) is not defined
    for a ``custom_vjp`` function; JAX raises a ``TypeError`` for it. Use the
    network's forward directly there.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from funcnet import bridge, layers
    >>> net = layers.mlp([2, 3, 1], "tanh")
    >>> _, params, _ = net.init(jax.random.key(0))
    >>> f = bridge.as_function(net)
    >>> x = jnp.ones((4, 2))
    >>> grads = jax.grad(lambda p: jnp.sum(f(p, x) ** 4))(params)
    >>> grads[0]["W"].shape
    (2, 3)
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from funcnet.layers import Layer


def as_function(
    network: Layer, *, train: bool = True, return_state: bool = False
) -> Callable:
    """Wraps ``network`` so that ``jax.grad`` runs its hand-written backward.

    Args:
        network: any :class:`~funcnet.layers.Layer`.
        train: the forward's mode (dropout on, batch statistics); static.
        return_state: whether the function also returns the new state (batch
            norm's running statistics), which carries no gradient.

    Returns:
        ``f(params, x, state=None, key=None) -> y`` (``(y, new_state)`` with
        ``return_state``), differentiable in ``params`` and ``x`` by the
        network's ``backward``. ``state`` and ``key`` get zero cotangents.
        ``state=None`` suits a stateless ``serial`` network; pass the state
        from ``init`` otherwise.

    Raises:
        ValueError: when ``network`` is not a ``Layer``; and, from ``f``, when
            ``key`` is not a PRNG key or ``state`` is ``None`` for a network
            that keeps state (batch norm).
    """
    if not isinstance(network, Layer):
        raise ValueError(
            f"network must be a funcnet Layer (init, forward, backward); got "
            f"{type(network).__name__}."
        )

    @jax.custom_vjp
    def apply(params, x, state, key):
        y, new_state, _ = network.forward(params, state, x, key=key, train=train)
        return y, new_state

    def apply_fwd(params, x, state, key):
        y, new_state, residuals = network.forward(
            params, state, x, key=key, train=train
        )
        return (y, new_state), (params, residuals)

    def apply_bwd(saved, cotangents):
        params, residuals = saved
        dy, _ = cotangents

        dparams, dx = network.backward(params, residuals, dy)
        return dparams, dx, None, None

    apply.defvjp(apply_fwd, apply_bwd)

    def f(params, x, state=None, key=None):
        _check_key("key", key)
        _check_state(network, state, x)
        y, new_state = apply(params, x, state, key)
        return (y, new_state) if return_state else y

    return f


def _check_key(name: str, key, *, required: bool = False) -> None:
    """Raise ``ValueError`` unless ``key`` is a PRNG key (or ``None``).

    A new-style key (``jax.random.key``, shape ``()``) or a legacy raw one
    (``jax.random.PRNGKey``, a ``uint32`` vector) passes, concrete or traced.
    """
    if key is None and not required:
        return
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return
    elif dtype == jnp.uint32 and shape is not None and len(shape) == 1:
        return
    if dtype is not None:
        got = f"an array of dtype {dtype} and shape {shape}"
    else:
        got = f"{key!r} of type {type(key).__name__}"
    also = "" if required else ", or None"
    raise ValueError(
        f"{name} must be one JAX PRNG key, such as jax.random.key(0){also}; got {got}."
    )


def _check_state(network: Layer, state, x) -> None:
    """Raise ``ValueError`` when ``state`` is ``None`` but ``network`` keeps state.

    ``None`` stands for "no state", which suits a ``serial`` network without
    batch norm. For one with, the forward would fail deep inside; this says
    what to pass instead. Only ``None`` is checked, by tracing ``init`` for
    the input shape of ``x``.
    """
    if state is not None:
        return
    count = _state_arrays(network, tuple(jnp.shape(x)[1:]))
    if count:
        raise ValueError(
            f"state must be the state that network.init returns; got None, but "
            f"{network.name} keeps {count} state arrays (such as batch norm's "
            f"running statistics). Pass it: _, params, state = "
            f"network.init(key, ...)."
        )


@functools.lru_cache(maxsize=64)
def _cached_state_arrays(network, input_shape):
    return _count_state(network, input_shape)


def _state_arrays(network, input_shape):
    try:
        return _cached_state_arrays(network, input_shape)
    except TypeError:  # a layer holding something unhashable
        return _count_state(network, input_shape)


def _count_state(network, input_shape):
    def init(key):
        return network.init(key, input_shape)[2]

    try:
        state = jax.eval_shape(init, jax.random.key(0))
    except Exception:  # an init that cannot be traced: nothing to say
        return 0
    return len(jax.tree.leaves(state))


__all__ = ["as_function"]
