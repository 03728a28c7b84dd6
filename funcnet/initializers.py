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
    """All zeros; ``key`` is unused and may be ``None``."""
    del key
    return jnp.zeros(shape, dtype)


def normal(stddev: float = 1e-2) -> Initializer:
    """Returns an initializer drawing from ``N(0, stddev ** 2)``."""

    def init(key, shape, dtype=jnp.float32):
        return stddev * jax.random.normal(key, shape, dtype)

    return init


def uniform(scale: float = 1e-2) -> Initializer:
    """Returns an initializer drawing from ``U(-scale, scale)``."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


def glorot_uniform(key: PRNGKey, shape: Sequence[int], dtype: DType = jnp.float32):
    """Glorot/Xavier uniform: ``U(-l, l)`` with ``l = sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(shape)
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return jax.random.uniform(key, shape, dtype, -limit, limit)


def glorot_normal(key: PRNGKey, shape: Sequence[int], dtype: DType = jnp.float32):
    """Glorot/Xavier normal: ``N(0, 2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(shape)
    stddev = (2.0 / (fan_in + fan_out)) ** 0.5
    return stddev * jax.random.normal(key, shape, dtype)


def he_uniform(key: PRNGKey, shape: Sequence[int], dtype: DType = jnp.float32):
    """He/Kaiming uniform: ``U(-l, l)`` with ``l = sqrt(6 / fan_in)``."""
    fan_in, _ = _fans(shape)
    limit = (6.0 / fan_in) ** 0.5
    return jax.random.uniform(key, shape, dtype, -limit, limit)


def he_normal(key: PRNGKey, shape: Sequence[int], dtype: DType = jnp.float32):
    """He/Kaiming normal: ``N(0, 2 / fan_in)``, for relu networks."""
    fan_in, _ = _fans(shape)
    stddev = (2.0 / fan_in) ** 0.5
    return stddev * jax.random.normal(key, shape, dtype)


def lecun_normal(key: PRNGKey, shape: Sequence[int], dtype: DType = jnp.float32):
    """LeCun normal: ``N(0, 1 / fan_in)``, for tanh and selu networks."""
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
    """Looks up an initializer by name; a callable is returned unchanged."""
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
