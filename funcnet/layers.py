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

import numbers
import operator
from collections.abc import Callable, Sequence
from functools import reduce
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnet import activations as _activations
from funcnet import initializers as _initializers
from funcnet._checks import check_range, concrete_values, positive_int
from funcnet._typing import Shape


class Layer(NamedTuple):
    """The three pure functions of a layer, and its name.

    Attributes:
        init: ``init(key, input_shape) -> (output_shape, params, state)``;
            ``state`` holds non-trained values (batch-norm statistics).
        forward: ``forward(params, state, x, *, key, train) -> (y, new_state,
            residuals)``; ``residuals`` is what ``backward`` needs.
        backward: ``backward(params, residuals, dy) -> (dparams, dx)``,
            written by hand: ``dy = dL/dy`` in, ``dL/dparams`` and
            ``dL/dx`` out.
        name: a readable name, shown in reports and traces.
        sublayers: the children of a composite layer (``()`` for a leaf), so
            that tools such as traces can walk a network.
    """

    init: Callable[..., tuple[Shape, Any, Any]]
    forward: Callable[..., tuple[Any, Any, Any]]
    backward: Callable[..., tuple[Any, Any]]
    name: str = "layer"
    sublayers: tuple["Layer", ...] = ()


def _as_shape(input_shape) -> Shape:
    if isinstance(input_shape, numbers.Integral):
        return (int(input_shape),)
    return tuple(int(d) for d in input_shape)


def _positive_int(name: str, value) -> int:
    return positive_int(name, value)


# Dense


def Dense(
    n_out: int,
    *,
    W_init: str | Callable = "glorot_uniform",
    b_init: str | Callable = "zeros",
    dtype=jnp.float32,
    use_bias: bool = True,
) -> Layer:
    """A fully connected layer ``z = a_prev @ W + b``.

    Args:
        n_out: the number of output units.
        W_init: initializer (or its name) for ``W`` of shape ``(n_in, n_out)``.
        b_init: initializer (or its name) for ``b`` of shape ``(n_out,)``.
        dtype: the dtype of the parameters.
        use_bias: whether the layer has ``b``. Without it, ``z = a_prev @ W``;
            a :func:`BatchNorm` that follows makes ``b`` redundant, since its
            shift plays the same part and the batch mean cancels ``b``.

    Returns:
        A :class:`Layer` with params ``{"W": W, "b": b}`` (``{"W": W}``
        without a bias) and no state.
    """
    n_out = _positive_int("n_out", n_out)
    W_init = _initializers.get(W_init)
    b_init = _initializers.get(b_init)

    def init(key, input_shape):
        input_shape = _as_shape(input_shape)
        W_key, b_key = jax.random.split(key)
        n_in = input_shape[-1]
        params = {"W": W_init(W_key, (n_in, n_out), dtype)}
        if use_bias:
            params["b"] = b_init(b_key, (n_out,), dtype)
        return input_shape[:-1] + (n_out,), params, ()

    def forward(params, state, x, *, key=None, train=True):
        del key, train
        W = params["W"]
        if x.shape[-1] != W.shape[0]:
            raise ValueError(
                f"Dense layer with W of shape {W.shape} expects inputs whose "
                f"last axis has {W.shape[0]} features; got x of shape {x.shape}."
            )

        z = x @ W
        if use_bias:
            z = z + jnp.broadcast_to(params["b"], z.shape)
        return z, state, x

    def backward(params, residuals, delta):
        W = params["W"]
        a_prev = residuals

        flat_a = a_prev.reshape(-1, a_prev.shape[-1])
        flat_delta = delta.reshape(-1, delta.shape[-1])
        grads = {"W": flat_a.T @ flat_delta}
        if use_bias:
            grads["b"] = flat_delta.sum(axis=0)

        da_prev = delta @ W.T
        return grads, da_prev

    return Layer(init, forward, backward, name=f"Dense({n_out})")


# Activation


def Activation(activation: str | _activations.Activation) -> Layer:
    """An elementwise nonlinearity ``a = f(z)``, no params.

    Its backward is ``delta = dL/da * f'(z)``, with ``f'`` taken from the
    saved output ``a`` (sigmoid, tanh) or the saved input ``z`` (the others).

    Args:
        activation: an :class:`~funcnet.activations.Activation` or its name
            (``"relu"``, ``"tanh"``, ``"sigmoid"``, ...).

    Returns:
        A :class:`Layer` with no params and no state; its residuals are
        ``a`` or ``z``, whichever the derivative is computed from.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet import layers
        >>> relu = layers.Activation("relu")
        >>> y, _, z = relu.forward((), (), jnp.array([[-1.0, 2.0]]))
        >>> relu.backward((), z, jnp.ones_like(y))[1].tolist()
        [[0.0, 1.0]]
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


# Dropout


def Dropout(rate) -> Layer:
    """Inverted dropout: zeroes each unit with probability ``rate`` in training.

    In training, with a mask ``m`` drawn from ``Bernoulli(1 - rate)`` for every
    entry of ``x``:

    .. math::

        y = x \\cdot \\frac{m}{1 - rate}, \\qquad
        \\frac{\\partial L}{\\partial x} = \\frac{\\partial L}{\\partial y}
        \\cdot \\frac{m}{1 - rate}

    so that ``E[y] = x`` and evaluation (``train=False``) is the identity,
    with nothing to rescale at test time.

    The mask comes from the forward ``key`` and from nothing else. A
    :func:`serial` network splits its key into one per layer, and the
    training loop folds the step into its key (``jax.random.fold_in(key,
    step)``), so masks differ between layers, between steps and between the
    members of a vmapped sweep, each of which gets its own key. The same key
    gives the same mask: that is how the manual and autodiff gradients are
    compared.

    Args:
        rate: the probability of zeroing a unit, ``0 <= rate < 1``: a Python
            float, a scalar array, or a tracer (a swept hyperparameter under
            ``vmap``). It is checked when its value is known.

    Returns:
        A :class:`Layer` with no params and no state. Its forward raises
        ``ValueError`` in training mode without a ``key``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnet import layers
        >>> drop = layers.Dropout(0.5)
        >>> x = jnp.ones((1, 8))
        >>> y, _, _ = drop.forward((), (), x, key=jax.random.key(0))
        >>> sorted(set(y[0].tolist()))
        [0.0, 2.0]
        >>> drop.forward((), (), x, train=False)[0].tolist()
        [[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]
    """
    if jnp.ndim(rate) != 0:
        raise ValueError(
            f"rate must be a scalar; got an array of shape {jnp.shape(rate)}. "
            f"To sweep several rates, vmap over them."
        )
    check_range("rate", rate, 0.0, 1.0, high_inclusive=False)

    def init(key, input_shape):
        del key
        return _as_shape(input_shape), (), ()

    def forward(params, state, x, *, key=None, train=True):
        del params
        if not train:
            return x, state, ()
        if key is None:
            raise ValueError(
                "Dropout in training mode needs a PRNG key to draw its mask; "
                "got key=None. Pass key= to forward (a serial network splits "
                "it per layer), or train=False for evaluation."
            )

        keep_prob = 1 - jnp.asarray(rate, x.dtype)
        keep = jax.random.bernoulli(key, keep_prob, x.shape)
        multiplier = jnp.where(keep, 1 / keep_prob, jnp.zeros((), x.dtype))
        return x * multiplier, state, multiplier

    def backward(params, residuals, dy):
        del params
        if isinstance(residuals, tuple):
            return (), dy

        multiplier = residuals
        return (), dy * multiplier

    return Layer(init, forward, backward, name=f"Dropout({_describe(rate)})")


def _describe(value) -> str:
    values = concrete_values(value)
    return "traced" if values is None else f"{float(values):g}"


# BatchNorm


class _BatchStatistics(NamedTuple):
    """BatchNorm residuals of training mode, normalised by the batch."""

    x_hat: jax.Array
    inv_std: jax.Array


class _RunningStatistics(NamedTuple):
    """BatchNorm residuals of evaluation mode, normalised by the state."""

    x_hat: jax.Array
    inv_std: jax.Array


def BatchNorm(
    *,
    momentum=0.9,
    eps: float = 1e-5,
    axis_name: str | None = None,
    unbiased_running_var: bool = False,
    dtype=jnp.float32,
) -> Layer:
    """Batch normalisation over every axis but the last, with scale and shift.

    In training, with ``mu`` and ``sigma2`` the mean and the *biased*
    variance of ``x`` over the batch (every axis but the features):

    .. math::

        \\hat{x} = \\frac{x - \\mu}{\\sqrt{\\sigma^2 + \\epsilon}}, \\qquad
        y = \\gamma \\hat{x} + \\beta

    and the hand-derived backward, with ``g = dL/dx_hat = gamma * dL/dy``
    and means over the batch:

    .. math::

        \\frac{\\partial L}{\\partial x} = \\frac{1}{\\sqrt{\\sigma^2 +
        \\epsilon}} \\left(g - \\overline{g} - \\hat{x} \\,
        \\overline{g \\hat{x}}\\right), \\quad
        \\frac{\\partial L}{\\partial \\gamma} = \\sum g_y \\hat{x}, \\quad
        \\frac{\\partial L}{\\partial \\beta} = \\sum g_y

    (``g_y = dL/dy``). Training also returns the updated running statistics;
    evaluation (``train=False``) normalises with them instead, leaves them
    unchanged, and its backward is ``dL/dx = g / sqrt(var + eps)``.

    **Conventions.** The running averages follow flax and Keras:
    ``running = momentum * running + (1 - momentum) * batch_statistic``, so
    ``momentum`` is the weight kept by the old value (PyTorch's ``momentum``
    is the weight of the new one: its ``m`` is our ``1 - m``; the default 0.9
    here equals PyTorch's default 0.1). The running variance averages the
    biased batch variance, as flax does; ``unbiased_running_var=True``
    averages ``sigma2 * n / (n - 1)`` instead, as PyTorch does. So
    ``torch.nn.BatchNorm1d(n, momentum=m)`` is ``BatchNorm(momentum=1 - m,
    unbiased_running_var=True)``, and ``flax.linen.BatchNorm(momentum=m)`` is
    ``BatchNorm(momentum=m)``. Either way the normalisation in training uses
    the biased variance. The running mean starts at 0 and the variance at 1.

    Args:
        momentum: the weight of the old running value, in ``[0, 1]``; may be
            an array or a tracer.
        eps: added to the variance before the square root, ``> 0``.
        axis_name: inside a ``vmap`` (or ``pmap`` / ``shard_map``) over the
            examples with this axis name, the statistics and the backward's
            batch means are averaged across that axis too, so that a
            per-example map gives the batched result. The params' gradients
            stay per member; sum them over the axis, as for any layer.
        unbiased_running_var: average ``n / (n - 1)`` times the batch
            variance into the running variance (PyTorch) rather than the
            batch variance itself (flax).
        dtype: the dtype of the params and the running statistics.

    Returns:
        A :class:`Layer` with params ``{"scale": ones, "shift": zeros}`` and
        state ``{"mean": zeros, "var": ones}``, each of the feature width.
        Its forward raises ``ValueError`` for a batch of one in training.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnet import layers
        >>> bn = layers.BatchNorm()
        >>> _, params, state = bn.init(jax.random.key(0), (1,))
        >>> x = jnp.array([[1.0], [2.0], [3.0], [4.0]])
        >>> y, state, _ = bn.forward(params, state, x)
        >>> [round(v, 4) for v in y[:, 0].tolist()]
        [-1.3416, -0.4472, 0.4472, 1.3416]
        >>> [round(v, 4) for v in state["mean"].tolist() + state["var"].tolist()]
        [0.25, 1.025]
    """
    check_range("momentum", momentum, 0.0, 1.0)
    check_range("eps", eps, 0.0, low_inclusive=False)

    def init(key, input_shape):
        del key
        input_shape = _as_shape(input_shape)
        features = input_shape[-1:]
        params = {
            "scale": jnp.ones(features, dtype),
            "shift": jnp.zeros(features, dtype),
        }
        state = {"mean": jnp.zeros(features, dtype), "var": jnp.ones(features, dtype)}
        return input_shape, params, state

    def forward(params, state, x, *, key=None, train=True):
        del key
        scale, shift = params["scale"], params["shift"]
        if x.shape[-1:] != scale.shape:
            raise ValueError(
                f"BatchNorm over {scale.shape[0]} features expects inputs whose "
                f"last axis has {scale.shape[0]} entries; got x of shape "
                f"{x.shape}."
            )
        if not train:
            inv_std = jax.lax.rsqrt(state["var"] + eps)
            x_hat = (x - _across(state["mean"], x)) * _across(inv_std, x)
            y = _across(scale, x) * x_hat + _across(shift, x)
            return y, state, _RunningStatistics(x_hat, inv_std)
        n = _batch_size(x, axis_name)
        if n < 2:
            raise ValueError(
                f"BatchNorm in training mode needs at least two examples to "
                f"estimate a batch variance; got a batch of {n} (x of shape "
                f"{x.shape}). Use larger batches, or train=False to normalise "
                f"with the running statistics."
            )

        mean = _batch_mean(x, axis_name)
        centred = x - _across(mean, x)
        var = _batch_mean(centred**2, axis_name)
        inv_std = jax.lax.rsqrt(var + eps)
        x_hat = centred * _across(inv_std, x)
        y = _across(scale, x) * x_hat + _across(shift, x)

        running_var = var * (n / (n - 1)) if unbiased_running_var else var
        new_state = {
            "mean": momentum * state["mean"] + (1 - momentum) * mean,
            "var": momentum * state["var"] + (1 - momentum) * running_var,
        }
        new_state = jax.tree.map(
            lambda new, old: new.astype(old.dtype), new_state, state
        )
        return y, new_state, _BatchStatistics(x_hat, inv_std)

    def backward(params, residuals, dy):
        x_hat, inv_std = residuals
        axes = tuple(range(dy.ndim - 1))

        dscale = jnp.sum(dy * x_hat, axis=axes)
        dshift = jnp.sum(dy, axis=axes)
        dx_hat = dy * _across(params["scale"], dy)

        if isinstance(residuals, _RunningStatistics):
            dx = dx_hat * _across(inv_std, dy)
        else:
            mean_dx_hat = _batch_mean(dx_hat, axis_name)
            mean_dx_hat_x_hat = _batch_mean(dx_hat * x_hat, axis_name)
            dx = _across(inv_std, dy) * (
                dx_hat
                - _across(mean_dx_hat, dy)
                - x_hat * _across(mean_dx_hat_x_hat, dy)
            )
        return {"scale": dscale, "shift": dshift}, dx

    return Layer(init, forward, backward, name="BatchNorm")


def _across(features, like):
    """A per-feature vector broadcast explicitly against a batch ``like``."""
    return jnp.broadcast_to(features, like.shape)


def _batch_size(x, axis_name) -> int:
    n = reduce(operator.mul, x.shape[:-1], 1)
    return n * jax.lax.axis_size(axis_name) if axis_name is not None else n


def _batch_mean(values, axis_name):
    """The mean over every axis but the last, and across ``axis_name``."""
    mean = jnp.mean(values, axis=tuple(range(values.ndim - 1)))
    return mean if axis_name is None else jax.lax.pmean(mean, axis_name)


# serial


def serial(*layers: Layer, name: str = "serial") -> Layer:
    """Composes layers in order; the result is itself a :class:`Layer`.

    Params, state and residuals are tuples with one entry per layer
    (``state=None`` stands for a network whose layers keep no state). The
    forward ``key``, when given, is split into one key per layer.
    ``backward`` runs the layers in reverse; called with
    ``return_cotangents=True`` it also returns, per layer, the ``dL/dy`` it
    received (for a :func:`Dense` layer that is its ``delta = dL/dz``).

    Args:
        *layers: the :class:`Layer` values, input side first; at least one.
        name: the composite layer's name.

    Returns:
        A :class:`Layer` whose params, state and residuals are tuples with
        one entry per layer, and whose ``sublayers`` are ``layers``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnet import layers
        >>> net = layers.serial(layers.Dense(3), layers.Activation("tanh"))
        >>> shape, params, state = net.init(jax.random.key(0), (2,))
        >>> shape, len(params), [layer.name for layer in net.sublayers]
        ((3,), 2, ['Dense(3)', 'tanh'])
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
    dropout=None,
    batch_norm: bool = False,
) -> Layer:
    """A multilayer perceptron: ``Dense`` layers with activations between.

    ``mlp([n_in, h_1, ..., n_out], activation)`` is ``serial(Dense(h_1),
    Activation(activation), ..., Dense(n_out))``, with ``output_activation``
    appended when given. Leave it ``None`` for the cross-entropy losses,
    which take logits.

    Each hidden block is ``Dense``, then ``BatchNorm`` when ``batch_norm``
    (the ``Dense`` then has no bias, which the batch mean would cancel), then
    the activation, then ``Dropout(dropout)`` unless ``dropout`` is ``None``.
    The output block has neither. Whether the layers are there depends only
    on ``dropout is None`` and ``batch_norm``, never on the rate's value, so
    a sweep over rates (0 included) keeps one params structure.

    Args:
        sizes: layer widths, input first; at least two. Any 1-D sequence or
            array of integers (a list, a tuple, ``np.array([64, 128, 10])``).
        activation: the hidden activation (or its name).
        output_activation: an activation after the last layer, or ``None``.
        W_init: kernel initializer; by default He normal for relu-like
            activations and Glorot uniform otherwise.
        b_init: bias initializer.
        dtype: the dtype of the parameters.
        dropout: the rate of a :func:`Dropout` after every hidden activation
            (a float, an array or a tracer), or ``None`` for no dropout
            layers. With dropout, training needs a forward ``key``.
        batch_norm: whether a :func:`BatchNorm` comes before every hidden
            activation.

    Returns:
        A :class:`Layer`; its ``init`` checks the input shape against
        ``sizes[0]``.

    Example:
        >>> import jax
        >>> from funcnet import layers
        >>> net = layers.mlp([3, 4, 3, 1], "sigmoid", output_activation="sigmoid")
        >>> [layer.name for layer in net.sublayers]
        ['Dense(4)', 'sigmoid', 'Dense(3)', 'sigmoid', 'Dense(1)', 'sigmoid']
        >>> net = layers.mlp([3, 4, 1], "relu", dropout=0.2, batch_norm=True)
        >>> [layer.name for layer in net.sublayers]
        ['Dense(4)', 'BatchNorm', 'relu', 'Dropout(0.2)', 'Dense(1)']
    """
    sizes = _as_sizes(sizes)
    act = _activations.get(activation)
    out_act = None if output_activation is None else _activations.get(output_activation)
    if W_init is None:
        W_init = "he_normal" if act.name in _RELU_LIKE else "glorot_uniform"

    stack = []
    for i, n_out in enumerate(sizes[1:]):
        hidden = i < len(sizes) - 2
        use_bias = not (hidden and batch_norm)
        stack.append(
            Dense(n_out, W_init=W_init, b_init=b_init, dtype=dtype, use_bias=use_bias)
        )
        if hidden:
            if batch_norm:
                stack.append(BatchNorm(dtype=dtype))
            stack.append(Activation(act))
            if dropout is not None:
                stack.append(Dropout(dropout))
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


def _as_sizes(sizes) -> list[int]:
    """``sizes`` as a list of Python ints, from a sequence or a 1-D array."""
    if hasattr(sizes, "shape") and hasattr(sizes, "dtype"):
        if len(sizes.shape) != 1:
            raise ValueError(
                f"sizes must be a 1-D sequence of layer widths, the input width "
                f"first (e.g. [64, 128, 10]); got an array of shape {sizes.shape}."
            )
        sizes = np.asarray(sizes).tolist()
    elif isinstance(sizes, Sequence) and not isinstance(sizes, (str, bytes)):
        sizes = list(sizes)
    else:
        raise ValueError(
            f"sizes must be a sequence of layer widths, the input width first "
            f"(e.g. [64, 128, 10]); got {type(sizes).__name__}: {sizes!r}."
        )
    if len(sizes) < 2:
        raise ValueError(
            f"sizes must list at least two layer sizes, the input width first "
            f"and the output width last (e.g. [64, 128, 10]); got {sizes!r}."
        )
    return [_positive_int(f"sizes[{i}]", size) for i, size in enumerate(sizes)]


def count_params(params) -> int:
    """The number of trainable scalars in a params pytree.

    Args:
        params: a pytree of arrays, such as a network's ``init`` returns.

    Returns:
        The sum of the leaves' sizes, as a Python int.

    Example:
        >>> import jax
        >>> from funcnet import layers
        >>> _, params, _ = layers.mlp([3, 4, 2]).init(jax.random.key(0))
        >>> layers.count_params(params)  # 3 * 4 + 4 + 4 * 2 + 2
        26
    """
    return sum(reduce(operator.mul, p.shape, 1) for p in jax.tree.leaves(params))


__all__ = [
    "Activation",
    "BatchNorm",
    "Dense",
    "Dropout",
    "Layer",
    "count_params",
    "mlp",
    "serial",
]
