"""Activations, each with its derivative written by hand.

An :class:`Activation` holds ``fn`` and ``derivative``. When
``from_output`` is true the derivative takes the activation's output
``a = fn(z)`` (cheaper: sigmoid's ``a * (1 - a)``, tanh's ``1 - a ** 2``);
otherwise it takes the pre-activation ``z``. The :func:`funcnet.layers.Activation`
layer saves whichever of the two the derivative needs, so its backward pass
is ``dz = da * derivative(saved)``.

Where implementations disagree, funcnet pins the choice:

* ``relu'(0) = 0``, matching ``jax.nn.relu`` and PyTorch, and
  ``leaky_relu'(0) = negative_slope`` (the left derivative), matching
  PyTorch; ``jax.grad(jax.nn.leaky_relu)(0.0)`` is 1 (the right one);
* ``relu`` and ``leaky_relu`` pass a NaN through, as ``jax.nn`` does;
* ``sigmoid`` and ``softplus`` stay finite for every finite ``z``; a
  saturated sigmoid has derivative exactly 0, not NaN.

Example:
    >>> import jax.numpy as jnp
    >>> from funcnet import activations
    >>> a = activations.sigmoid.fn(jnp.array([0.76, 0.48]))
    >>> [round(float(v), 4) for v in a]
    [0.6814, 0.6177]
    >>> [round(float(v), 4) for v in activations.sigmoid.derivative(a)]
    [0.2171, 0.2361]
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from funcnet._typing import Array


class Activation(NamedTuple):
    """An elementwise nonlinearity and its hand-written derivative.

    Attributes:
        name: the name :func:`get` knows it by.
        fn: ``z -> a``.
        derivative: ``a -> f'(z)`` when ``from_output``, else ``z -> f'(z)``.
        from_output: whether ``derivative`` takes the output ``a``.
    """

    name: str
    fn: Callable[[Array], Array]
    derivative: Callable[[Array], Array]
    from_output: bool


def _relu(z):
    # maximum, not where(z > 0, z, 0): a NaN stays NaN, so a diverged
    # network shows up in its loss instead of being silently zeroed.
    return jnp.maximum(z, jnp.zeros_like(z))


def _relu_derivative(z):
    return (z > 0).astype(z.dtype)


def _sigmoid_derivative(a):
    return a * (1 - a)


def _tanh_derivative(a):
    return 1 - a * a


def _identity(z):
    return z


def _ones(z):
    return jnp.ones_like(z)


sigmoid = Activation("sigmoid", jax.nn.sigmoid, _sigmoid_derivative, True)
"""``1 / (1 + exp(-z))``; derivative ``a * (1 - a)`` from the output."""

tanh = Activation("tanh", jnp.tanh, _tanh_derivative, True)
"""``tanh(z)``; derivative ``1 - a ** 2`` from the output."""

relu = Activation("relu", _relu, _relu_derivative, False)
"""``max(z, 0)``; derivative ``1`` for ``z > 0`` and ``0`` for ``z <= 0``."""

softplus = Activation("softplus", jax.nn.softplus, jax.nn.sigmoid, False)
"""``log(1 + exp(z))``, computed stably; derivative ``sigmoid(z)``."""

identity = Activation("identity", _identity, _ones, False)
"""``z``; derivative ``1``."""


def leaky_relu(negative_slope: float = 0.01) -> Activation:
    """Returns ``z`` for ``z > 0`` and ``negative_slope * z`` otherwise.

    The derivative is ``1`` for ``z > 0`` and ``negative_slope`` for
    ``z <= 0``. ``negative_slope`` may be an array.
    """

    def fn(z):
        return jnp.where(z > 0, z, negative_slope * z)

    def derivative(z):
        return jnp.where(z > 0, 1.0, negative_slope).astype(z.dtype)

    return Activation("leaky_relu", fn, derivative, False)


_BY_NAME = {
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu(),
    "softplus": softplus,
    "identity": identity,
    "linear": identity,
}

NAMES = tuple(sorted(_BY_NAME))


def get(activation: str | Activation) -> Activation:
    """Looks up an activation by name; an :class:`Activation` passes through."""
    if isinstance(activation, Activation):
        return activation
    try:
        return _BY_NAME[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"activation must be an Activation or one of {list(NAMES)}; "
            f"got {activation!r}."
        ) from None


__all__ = [
    "NAMES",
    "Activation",
    "get",
    "identity",
    "leaky_relu",
    "relu",
    "sigmoid",
    "softplus",
    "tanh",
]
