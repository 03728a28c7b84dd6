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


# sigmoid


def _sigmoid_derivative(a):
    return a * (1 - a)


sigmoid = Activation("sigmoid", jax.nn.sigmoid, _sigmoid_derivative, True)
r"""The logistic sigmoid, with its derivative taken from the output.

.. math::

    a = \sigma(z) = \frac{1}{1 + e^{-z}}, \qquad
    \sigma'(z) = \sigma(z) \big(1 - \sigma(z)\big) = a (1 - a).

``fn`` is ``jax.nn.sigmoid``, finite for every finite ``z``; ``derivative``
takes ``a`` (``from_output``) and is exactly 0 where the sigmoid saturates.
Under :data:`~funcnet.losses.mse` the output delta is
:math:`\frac{1}{B}(a_L - t) \odot a_L \odot (1 - a_L)`; for classification
prefer logits and :data:`~funcnet.losses.sigmoid_binary_cross_entropy`.
"""


# tanh


def _tanh_derivative(a):
    return 1 - a * a


tanh = Activation("tanh", jnp.tanh, _tanh_derivative, True)
r"""The hyperbolic tangent, with its derivative taken from the output.

.. math::

    a = \tanh(z) = \frac{e^{z} - e^{-z}}{e^{z} + e^{-z}}, \qquad
    \tanh'(z) = 1 - \tanh^2(z) = 1 - a^2.
"""


# relu


def _relu_derivative(z):
    return (z > 0).astype(z.dtype)


# jax.nn.relu is maximum(z, 0), so a NaN stays NaN and a diverged network
# shows up in its loss; its custom JVP gives jax.grad relu'(0) = 0, as the
# hand-written derivative does (a bare jnp.maximum would give 0.5 there).
relu = Activation("relu", jax.nn.relu, _relu_derivative, False)
r"""The rectified linear unit, with its derivative taken from the input.

.. math::

    a = \max(z, 0), \qquad
    \operatorname{relu}'(z) = [z > 0] =
    \begin{cases} 1 & z > 0 \\ 0 & z \le 0 \end{cases}

so :math:`\operatorname{relu}'(0) = 0`, as in ``jax.nn.relu`` and PyTorch.
A NaN input stays NaN.
"""


# softplus


softplus = Activation("softplus", jax.nn.softplus, jax.nn.sigmoid, False)
r"""The softplus, a smooth relu, with its derivative taken from the input.

.. math::

    a = \operatorname{softplus}(z) = \log(1 + e^{z}), \qquad
    \operatorname{softplus}'(z) = \sigma(z) = \frac{1}{1 + e^{-z}}.

``fn`` is ``jax.nn.softplus`` (computed as ``logaddexp(z, 0)``, finite for
every finite ``z``) and ``derivative`` is ``jax.nn.sigmoid``.
"""


# identity


def _identity(z):
    return z


def _ones(z):
    return jnp.ones_like(z)


identity = Activation("identity", _identity, _ones, False)
r"""No nonlinearity, the output layer of a regression.

.. math::

    a = z, \qquad f'(z) = 1,

so under :data:`~funcnet.losses.mse` the output delta is
:math:`\frac{1}{B}(a_L - t)`. :func:`get` also knows it as ``"linear"``.
"""


# leaky relu


def leaky_relu(negative_slope: float = 0.01) -> Activation:
    r"""A relu with slope ``negative_slope`` for negative inputs.

    .. math::

        a = \begin{cases} z & z > 0 \\ \alpha z & z \le 0 \end{cases},
        \qquad
        f'(z) = \begin{cases} 1 & z > 0 \\ \alpha & z \le 0 \end{cases}

    with :math:`\alpha` = ``negative_slope``. The derivative at 0 is
    :math:`\alpha` (the left derivative, as in PyTorch;
    ``jax.grad(jax.nn.leaky_relu)(0.0)`` is 1). It is taken from the input
    ``z``. ``get("leaky_relu")`` is ``leaky_relu()``.

    Args:
        negative_slope: :math:`\alpha`; a float or an array (a swept
            hyperparameter).

    Returns:
        The :class:`Activation`, named ``"leaky_relu"``.
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
"""The names :func:`get` knows, sorted; ``"linear"`` is :data:`identity`."""


def get(activation: str | Activation) -> Activation:
    """Looks up an activation by name; an :class:`Activation` passes through.

    Args:
        activation: one of :data:`NAMES` or an :class:`Activation`.

    Returns:
        The :class:`Activation`; ``"leaky_relu"`` has the default slope
        0.01.

    Raises:
        ValueError: for an unknown name or a value that is not an Activation.
    """
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
