"""Layers: pure ``init``, ``forward`` and a hand-written ``backward``.

The contract every layer keeps (a network built by :func:`serial` is itself
a layer, so it keeps it too):

``init(key, input_shape) -> (output_shape, params, state)``
    ``input_shape`` is the shape of one example, without the batch axis.
    ``params`` is a pytree of trainable arrays; ``state`` holds non-trained
    values such as batch-norm running statistics (``()`` when there are
    none).

``forward(params, state, x, *, key=None, train=True) -> (y, new_state, residuals)``
    ``x`` has the batch on its first axis. ``residuals`` is what
    ``backward`` needs and nothing more. Randomness comes only from ``key``.

``backward(params, residuals, dy) -> (dparams, dx)``
    ``dy = dL/dy``; returns ``dL/dparams`` with the structure of ``params``
    and ``dL/dx``. Written by hand, never by autodiff.

In the notation of the design (row-major batches): a :func:`Dense` layer
computes ``z = a_prev @ W + b`` with ``W`` of shape ``(n_in, n_out)``; its
backward receives ``delta = dL/dz`` and returns ``dW = a_prev.T @ delta``,
``db = delta.sum(0)`` and ``delta @ W.T``; an :func:`Activation` layer turns
``dL/da`` into ``delta = dL/da * f'(z)``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from funcnet import layers
    >>> net = layers.mlp([2, 2, 2, 1], "sigmoid")
    >>> out_shape, params, state = net.init(jax.random.key(0), (2,))
    >>> y, _, residuals = net.forward(params, state, jnp.ones((4, 2)))
    >>> grads, dx = net.backward(params, residuals, jnp.ones_like(y))
    >>> out_shape, y.shape, grads[0]["W"].shape
    ((1,), (4, 1), (2, 2))
"""

import operator
from collections.abc import Callable, Sequence
from functools import reduce
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnet import activations as _activations
from funcnet import initializers as _initializers
from funcnet._typing import Shape


class Layer(NamedTuple):
    """The three pure functions of a layer, and its name.

    ``sublayers`` lists the children of a composite layer (``()`` for a
    leaf), so that tools such as traces can walk a network.
    """

    init: Callable[..., tuple[Shape, Any, Any]]
    forward: Callable[..., tuple[Any, Any, Any]]
    backward: Callable[..., tuple[Any, Any]]
    name: str = "layer"
    sublayers: tuple["Layer", ...] = ()


def _as_shape(input_shape) -> Shape:
    if isinstance(input_shape, int):
        return (input_shape,)
    return tuple(int(d) for d in input_shape)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return value


# Dense


def Dense(
    n_out: int,
    *,
    W_init: str | Callable = "glorot_uniform",
    b_init: str | Callable = "zeros",
    dtype=jnp.float32,
) -> Layer:
    """A fully connected layer ``z = a_prev @ W + b``.

    Args:
        n_out: the number of output units.
        W_init: initializer (or its name) for ``W`` of shape ``(n_in, n_out)``.
        b_init: initializer (or its name) for ``b`` of shape ``(n_out,)``.
        dtype: the dtype of the parameters.

    Returns:
        A :class:`Layer` with params ``{"W": W, "b": b}`` and no state.
    """
    n_out = _positive_int("n_out", n_out)
    W_init = _initializers.get(W_init)
    b_init = _initializers.get(b_init)

    def init(key, input_shape):
        input_shape = _as_shape(input_shape)
        W_key, b_key = jax.random.split(key)
        n_in = input_shape[-1]
        params = {
            "W": W_init(W_key, (n_in, n_out), dtype),
            "b": b_init(b_key, (n_out,), dtype),
        }
        return input_shape[:-1] + (n_out,), params, ()

    def forward(params, state, x, *, key=None, train=True):
        del key, train
        W, b = params["W"], params["b"]
        if x.shape[-1] != W.shape[0]:
            raise ValueError(
                f"Dense layer with W of shape {W.shape} expects inputs whose "
                f"last axis has {W.shape[0]} features; got x of shape {x.shape}."
            )

        z = x @ W + jnp.broadcast_to(b, x.shape[:-1] + b.shape)
        return z, state, x

    def backward(params, residuals, delta):
        W = params["W"]
        a_prev = residuals

        flat_a = a_prev.reshape(-1, a_prev.shape[-1])
        flat_delta = delta.reshape(-1, delta.shape[-1])
        dW = flat_a.T @ flat_delta
        db = flat_delta.sum(axis=0)

        da_prev = delta @ W.T
        return {"W": dW, "b": db}, da_prev

    return Layer(init, forward, backward, name=f"Dense({n_out})")


# Activation


def Activation(activation: str | _activations.Activation) -> Layer:
    """An elementwise nonlinearity ``a = f(z)``, no params.

    Its backward is ``delta = dL/da * f'(z)``, with ``f'`` taken from the
    saved output ``a`` (sigmoid, tanh) or the saved input ``z`` (the others).
    """
    act = _activations.get(activation)

    def init(key, input_shape):
        del key
        return _as_shape(input_shape), (), ()

    def forward(params, state, z, *, key=None, train=True):
        del params, key, train
        a = act.fn(z)
        return a, state, (a if act.from_output else z)

    def backward(params, residuals, da):
        del params
        local = act.derivative(residuals)
        return (), da * local

    return Layer(init, forward, backward, name=act.name)


# serial


def serial(*layers: Layer, name: str = "serial") -> Layer:
    """Composes layers in order; the result is itself a :class:`Layer`.

    Params, state and residuals are tuples with one entry per layer
    (``state=None`` stands for a network whose layers keep no state). The
    forward ``key``, when given, is split into one key per layer.
    ``backward`` runs the layers in reverse; called with
    ``return_cotangents=True`` it also returns, per layer, the ``dL/dy`` it
    received (for a :func:`Dense` layer that is its ``delta = dL/dz``).
    """
    if not layers:
        raise ValueError("serial needs at least one layer; got none.")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(
                f"serial takes Layer values; argument {i} is "
                f"{type(layer).__name__}: {layer!r}."
            )

    def init(key, input_shape):
        shape = _as_shape(input_shape)
        params, state = [], []
        for layer, layer_key in zip(layers, jax.random.split(key, len(layers))):
            shape, layer_params, layer_state = layer.init(layer_key, shape)
            params.append(layer_params)
            state.append(layer_state)
        return shape, tuple(params), tuple(state)

    def forward(params, state, x, *, key=None, train=True):
        _check_entries("params", params, layers)
        if state is None:
            state = ((),) * len(layers)
        _check_entries("state", state, layers)
        keys = [None] * len(layers)
        if key is not None:
            keys = list(jax.random.split(key, len(layers)))
        new_state, residuals = [], []
        for layer, p, s, k in zip(layers, params, state, keys):
            x, s, r = layer.forward(p, s, x, key=k, train=train)
            new_state.append(s)
            residuals.append(r)
        return x, tuple(new_state), tuple(residuals)

    def backward(params, residuals, dy, *, return_cotangents=False):
        grads, cotangents = [None] * len(layers), [None] * len(layers)
        for i in reversed(range(len(layers))):
            cotangents[i] = dy
            grads[i], dy = layers[i].backward(params[i], residuals[i], dy)
        if return_cotangents:
            return tuple(grads), dy, tuple(cotangents)
        return tuple(grads), dy

    return Layer(init, forward, backward, name=name, sublayers=tuple(layers))


def _check_entries(what, tree, layers):
    if not isinstance(tree, tuple) or len(tree) != len(layers):
        got = (
            f"{type(tree).__name__} of length {len(tree)}"
            if isinstance(tree, (tuple, list))
            else type(tree).__name__
        )
        raise ValueError(
            f"{what} of a serial network of {len(layers)} layers must be a "
            f"tuple with one entry per layer, as its init returns; got {got}."
        )


# mlp


_RELU_LIKE = ("relu", "leaky_relu", "softplus")


def mlp(
    sizes: Sequence[int],
    activation: str | _activations.Activation = "relu",
    *,
    output_activation: str | _activations.Activation | None = None,
    W_init: str | Callable | None = None,
    b_init: str | Callable = "zeros",
    dtype=jnp.float32,
) -> Layer:
    """A multilayer perceptron: ``Dense`` layers with activations between.

    ``mlp([n_in, h_1, ..., n_out], activation)`` is ``serial(Dense(h_1),
    Activation(activation), ..., Dense(n_out))``, with ``output_activation``
    appended when given. Leave it ``None`` for the cross-entropy losses,
    which take logits.

    Args:
        sizes: layer widths, input first; at least two.
        activation: the hidden activation (or its name).
        output_activation: an activation after the last layer, or ``None``.
        W_init: kernel initializer; by default He normal for relu-like
            activations and Glorot uniform otherwise.
        b_init: bias initializer.
        dtype: the dtype of the parameters.

    Returns:
        A :class:`Layer`; its ``init`` checks the input shape against
        ``sizes[0]``.

    Example:
        >>> import jax
        >>> from funcnet import layers
        >>> net = layers.mlp([3, 4, 3, 1], "sigmoid", output_activation="sigmoid")
        >>> [layer.name for layer in net.sublayers]
        ['Dense(4)', 'sigmoid', 'Dense(3)', 'sigmoid', 'Dense(1)', 'sigmoid']
    """
    sizes = list(sizes) if isinstance(sizes, (list, tuple)) else sizes
    if not isinstance(sizes, list) or len(sizes) < 2:
        raise ValueError(
            f"sizes must list at least two layer sizes, the input width first "
            f"and the output width last (e.g. [64, 128, 10]); got {sizes!r}."
        )
    for i, size in enumerate(sizes):
        _positive_int(f"sizes[{i}]", size)
    act = _activations.get(activation)
    out_act = None if output_activation is None else _activations.get(output_activation)
    if W_init is None:
        W_init = "he_normal" if act.name in _RELU_LIKE else "glorot_uniform"

    stack = []
    for i, n_out in enumerate(sizes[1:]):
        stack.append(Dense(n_out, W_init=W_init, b_init=b_init, dtype=dtype))
        if i < len(sizes) - 2:
            stack.append(Activation(act))
    if out_act is not None:
        stack.append(Activation(out_act))
    net = serial(*stack, name=f"mlp({sizes})")

    def init(key, input_shape=(sizes[0],)):
        input_shape = _as_shape(input_shape)
        if input_shape[-1:] != (sizes[0],):
            raise ValueError(
                f"mlp({sizes}) expects inputs of {sizes[0]} features; got "
                f"input_shape {input_shape}."
            )
        return net.init(key, input_shape)

    return net._replace(init=init)


def count_params(params) -> int:
    """The number of trainable scalars in a params pytree."""
    return sum(reduce(operator.mul, p.shape, 1) for p in jax.tree.leaves(params))


__all__ = [
    "Activation",
    "Dense",
    "Layer",
    "count_params",
    "mlp",
    "serial",
]
