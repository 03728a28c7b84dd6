"""The small vocabulary of type aliases used in every public signature."""

from collections.abc import Callable
from typing import Any

import jax

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
DType = Any
PRNGKey = jax.Array
Shape = tuple[int, ...]

Params = Any
"""A pytree of trainable arrays (for a network: one entry per layer)."""
Grads = Any
"""A pytree with the structure of ``Params``."""
State = Any
"""A pytree of non-trained values (batch-norm running statistics)."""
Residuals = Any
"""What a layer's ``forward`` saves for its ``backward``, and nothing more."""
OptState = Any
"""An optimizer's state, a pytree of NamedTuples."""

Scalar = float | int | jax.Array
Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = Scalar | Schedule

__all__ = [
    "Array",
    "ArrayLike",
    "DType",
    "Grads",
    "OptState",
    "Params",
    "PRNGKey",
    "Residuals",
    "Scalar",
    "ScalarOrSchedule",
    "Schedule",
    "Shape",
    "State",
]
