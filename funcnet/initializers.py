"""Weight initializers, each ``(key, shape, dtype) -> array``.

For a dense kernel of shape ``(n_in, n_out)`` the fans are ``fan_in = n_in``
and ``fan_out = n_out``. Kernels of higher rank (a convolution's
``(*receptive_field, n_in, n_out)``) multiply both fans by the receptive
field size, as in flax and PyTorch.

===================  ==========================================
initializer          distribution
===================  ==========================================
``glorot_uniform``   ``U(-l, l)``, ``l = sqrt(6 / (fan_in + fan_out))``
``glorot_normal``    ``N(0, 2 / (fan_in + fan_out))``
``he_uniform``       ``U(-l, l)``, ``l = sqrt(6 / fan_in)``
``he_normal``        ``N(0, 2 / fan_in)``
``lecun_normal``     ``N(0, 1 / fan_in)``
``normal(stddev)``   ``N(0, stddev ** 2)``
``uniform(scale)``   ``U(-scale, scale)``
``zeros``            all zeros
===================  ==========================================

The normal initializers draw from the untruncated normal, as the textbooks
(Glorot & Bengio 2010; He et al. 2015) define them. ``xavier_*`` and
``kaiming_*`` are aliases of ``glorot_*`` and ``he_*``.

Example:
    >>> import jax
    >>> from funcnet import initializers
    >>> W = initializers.he_normal(jax.random.key(0), (64, 128))
    >>> W.shape, W.dtype
    ((64, 128), dtype('float32'))
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from funcnet._typing import Array, DType, PRNGKey

Initializer = Callable[[PRNGKey, Sequence[int], DType], Array]
"""The signature every initializer has, ``init(key, shape, dtype=float32) -> array``.

Every function of this module is one (``normal`` and ``uniform`` return
one), and so is any callable of that signature: ``layers.Dense`` and ``mlp``
take either a name known to :func:`get` or such a callable.
"""


def _fans(shape: Sequence[int]) -> tuple[int, int]:
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(
            f"shape must have at least 2 dimensions (n_in, n_out) to define "
            f"fan_in and fan_out; got {shape}. Use zeros, normal or uniform "
            f"for vectors such as biases."
        )
    receptive = 1
    for size in shape[:-2]:
        receptive *= size
    return shape[-2] * receptive, shape[-1] * receptive


def zeros(key: PRNGKey, shape: Sequence[int], dtype: DType = jnp.float32) -> Array:
    """All zeros: the default for biases.

    Args:
        key: unused (an initializer's signature); may be ``None``.
        shape: the array's shape, of any rank.
        dtype: its dtype.

    Returns:
        ``jnp.zeros(shape, dtype)``.
    """
    del key
    return jnp.zeros(shape, dtype)


def normal(stddev: float = 1e-2) -> Initializer:
    r"""An initializer drawing from a normal of fixed scale, :math:`N(0, \sigma^2)`.

    The scale does not depend on the fans, so it suits biases and small
    experiments rather than deep nets (see :func:`he_normal`).

    Args:
        stddev: the standard deviation :math:`\sigma`.

    Returns:
        An :data:`Initializer` ``init(key, shape, dtype=float32)`` for any
        ``shape``, each entry drawn from :math:`N(0, \sigma^2)`.
    """

    def init(key, shape, dtype=jnp.float32):
        return stddev * jax.random.normal(key, shape, dtype)

    return init


def uniform(scale: float = 1e-2) -> Initializer:
    r"""An initializer drawing from a uniform of fixed width, :math:`U(-s, s)`.

    Args:
        scale: the half-width :math:`s`; the variance is :math:`s^2 / 3`.

    Returns:
        An :data:`Initializer` ``init(key, shape, dtype=float32)`` for any
        ``shape``, each entry drawn from :math:`U(-s, s)`.
    """

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


def glorot_uniform(
    key: PRNGKey, shape: Sequence[int], dtype: DType = jnp.float32
) -> Array:
    r"""Glorot/Xavier uniform (Glorot & Bengio, 2010), for tanh and sigmoid nets.

    For an ``(n_in, n_out)`` kernel, with :math:`\text{fan}_\text{in} =
    n_\text{in}` and :math:`\text{fan}_\text{out} = n_\text{out}`:

    .. math::

        W_{ij} \sim U(-l, l), \qquad
        l = \sqrt{\frac{6}{\text{fan}_\text{in} + \text{fan}_\text{out}}},
        \qquad \operatorname{Var}(W_{ij}) = \frac{l^2}{3}
        = \frac{2}{\text{fan}_\text{in} + \text{fan}_\text{out}},

    a compromise between keeping the forward signal's variance
    (:math:`1 / \text{fan}_\text{in}`) and the backward deltas' variance
    (:math:`1 / \text{fan}_\text{out}`) constant from layer to layer.
    ``xavier_uniform`` is the same function.

    Args:
        key: the PRNG key of the draw.
        shape: the kernel's shape, with at least two dimensions: ``(n_in,
            n_out)``, or ``(*receptive_field, n_in, n_out)``.
        dtype: a floating-point dtype.

    Returns:
        An array of ``shape`` and ``dtype``, entries drawn independently.

    Raises:
        ValueError: when ``shape`` has fewer than two dimensions (a bias:
            use :func:`zeros`, :func:`normal` or :func:`uniform`).
    """
    fan_in, fan_out = _fans(shape)
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return jax.random.uniform(key, shape, dtype, -limit, limit)


def glorot_normal(
    key: PRNGKey, shape: Sequence[int], dtype: DType = jnp.float32
) -> Array:
    r"""Glorot/Xavier normal (Glorot & Bengio, 2010), for tanh and sigmoid nets.

    For an ``(n_in, n_out)`` kernel, with :math:`\text{fan}_\text{in} =
    n_\text{in}` and :math:`\text{fan}_\text{out} = n_\text{out}`:

    .. math::

        W_{ij} \sim N(0, \sigma^2), \qquad
        \sigma = \sqrt{\frac{2}{\text{fan}_\text{in} + \text{fan}_\text{out}}},

    from the untruncated normal. ``xavier_normal`` is the same function.

    Args:
        key: the PRNG key of the draw.
        shape: the kernel's shape, with at least two dimensions: ``(n_in,
            n_out)``, or ``(*receptive_field, n_in, n_out)``.
        dtype: a floating-point dtype.

    Returns:
        An array of ``shape`` and ``dtype``, entries drawn independently.

    Raises:
        ValueError: when ``shape`` has fewer than two dimensions (a bias:
            use :func:`zeros`, :func:`normal` or :func:`uniform`).
    """
    fan_in, fan_out = _fans(shape)
    stddev = (2.0 / (fan_in + fan_out)) ** 0.5
    return stddev * jax.random.normal(key, shape, dtype)


def he_uniform(key: PRNGKey, shape: Sequence[int], dtype: DType = jnp.float32) -> Array:
    r"""He/Kaiming uniform (He et al., 2015), for relu nets.

    For an ``(n_in, n_out)`` kernel, with :math:`\text{fan}_\text{in} =
    n_\text{in}`:

    .. math::

        W_{ij} \sim U(-l, l), \qquad
        l = \sqrt{\frac{6}{\text{fan}_\text{in}}},
        \qquad \operatorname{Var}(W_{ij}) = \frac{2}{\text{fan}_\text{in}},

    twice LeCun's variance, since a relu passes on half of its input's
    second moment. ``kaiming_uniform`` is the same function.

    Args:
        key: the PRNG key of the draw.
        shape: the kernel's shape, with at least two dimensions: ``(n_in,
            n_out)``, or ``(*receptive_field, n_in, n_out)``.
        dtype: a floating-point dtype.

    Returns:
        An array of ``shape`` and ``dtype``, entries drawn independently.

    Raises:
        ValueError: when ``shape`` has fewer than two dimensions (a bias:
            use :func:`zeros`, :func:`normal` or :func:`uniform`).
    """
    fan_in, _ = _fans(shape)
    limit = (6.0 / fan_in) ** 0.5
    return jax.random.uniform(key, shape, dtype, -limit, limit)


def he_normal(key: PRNGKey, shape: Sequence[int], dtype: DType = jnp.float32) -> Array:
    r"""He/Kaiming normal (He et al., 2015), for relu nets.

    For an ``(n_in, n_out)`` kernel, with :math:`\text{fan}_\text{in} =
    n_\text{in}`:

    .. math::

        W_{ij} \sim N(0, \sigma^2), \qquad
        \sigma = \sqrt{\frac{2}{\text{fan}_\text{in}}},

    from the untruncated normal. ``kaiming_normal`` is the same function.

    Args:
        key: the PRNG key of the draw.
        shape: the kernel's shape, with at least two dimensions: ``(n_in,
            n_out)``, or ``(*receptive_field, n_in, n_out)``.
        dtype: a floating-point dtype.

    Returns:
        An array of ``shape`` and ``dtype``, entries drawn independently.

    Raises:
        ValueError: when ``shape`` has fewer than two dimensions (a bias:
            use :func:`zeros`, :func:`normal` or :func:`uniform`).
    """
    fan_in, _ = _fans(shape)
    stddev = (2.0 / fan_in) ** 0.5
    return stddev * jax.random.normal(key, shape, dtype)


def lecun_normal(
    key: PRNGKey, shape: Sequence[int], dtype: DType = jnp.float32
) -> Array:
    r"""LeCun normal (LeCun et al., 1998), for tanh and selu nets.

    For an ``(n_in, n_out)`` kernel, with :math:`\text{fan}_\text{in} =
    n_\text{in}`:

    .. math::

        W_{ij} \sim N(0, \sigma^2), \qquad
        \sigma = \sqrt{\frac{1}{\text{fan}_\text{in}}},

    so that :math:`z = a W` has unit variance for inputs of unit variance.

    Args:
        key: the PRNG key of the draw.
        shape: the kernel's shape, with at least two dimensions: ``(n_in,
            n_out)``, or ``(*receptive_field, n_in, n_out)``.
        dtype: a floating-point dtype.

    Returns:
        An array of ``shape`` and ``dtype``, entries drawn independently.

    Raises:
        ValueError: when ``shape`` has fewer than two dimensions (a bias:
            use :func:`zeros`, :func:`normal` or :func:`uniform`).
    """
    fan_in, _ = _fans(shape)
    stddev = (1.0 / fan_in) ** 0.5
    return stddev * jax.random.normal(key, shape, dtype)


xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
kaiming_uniform = he_uniform
kaiming_normal = he_normal

_BY_NAME = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "xavier_uniform": glorot_uniform,
    "xavier_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "lecun_normal": lecun_normal,
    "zeros": zeros,
}


def get(initializer: str | Initializer) -> Initializer:
    """Looks up an initializer by name; a callable is returned unchanged.

    Args:
        initializer: one of ``"glorot_uniform"``, ``"glorot_normal"``,
            ``"xavier_uniform"``, ``"xavier_normal"``, ``"he_uniform"``,
            ``"he_normal"``, ``"kaiming_uniform"``, ``"kaiming_normal"``,
            ``"lecun_normal"``, ``"zeros"``, or an :data:`Initializer`.

    Returns:
        The :data:`Initializer`.

    Raises:
        ValueError: for an unknown name or a value that is not callable.
    """
    if callable(initializer):
        return initializer
    try:
        return _BY_NAME[initializer]
    except (KeyError, TypeError):
        raise ValueError(
            f"initializer must be a callable or one of {sorted(_BY_NAME)}; "
            f"got {initializer!r}."
        ) from None


__all__ = [
    "Initializer",
    "get",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "normal",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]
