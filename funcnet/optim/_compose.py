"""Composing transforms, applying updates, clipping: optax's own, documented here.

These hold no optimizer math of ours: each calls the optax function of the
same name and returns exactly what it returns, so every optimizer here stays
interchangeable with optax's.
"""

from typing import Any

import optax

from funcnet._typing import Params

__all__ = ["apply_updates", "chain", "clip_by_global_norm"]


def chain(*transforms: optax.GradientTransformation) -> optax.GradientTransformation:
    r"""Apply transforms one after another, as ``optax.chain``.

    .. math::

        u_t = T_k(\cdots T_2(T_1(g_t)))

    where each :math:`T_i` updates its own state; the chained state is the
    tuple of their states.

    Args:
        *transforms: ``optax.GradientTransformation``\ s, applied in order.

    Returns:
        The ``optax.GradientTransformation`` that ``optax.chain`` builds.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet import optim
        >>> opt = optim.chain(optim.add_decayed_weights(0.1), optim.sgd(1.0))
        >>> w = jnp.ones(1)
        >>> updates, _ = opt.update(jnp.zeros(1), opt.init(w), w)
        >>> print(f"{float(updates[0]):.2f}")  # -1.0 * (0 + 0.1 * 1)
        -0.10
    """
    return optax.chain(*transforms)


def apply_updates(params: Params, updates: Any) -> Params:
    r"""Add the updates to the params, leaf by leaf, as ``optax.apply_updates``.

    .. math::

        w_t = w_{t-1} + u_t

    Each new leaf keeps the dtype of its param.

    Args:
        params: The parameter pytree :math:`w_{t-1}`.
        updates: A pytree of the same structure, :math:`u_t` (an optimizer's
            ``update`` output, already negated and scaled).

    Returns:
        The new params :math:`w_t`, with the structure and dtypes of
        ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet import optim
        >>> optim.apply_updates({"w": jnp.ones(2)}, {"w": jnp.full(2, -0.5)})
        {'w': Array([0.5, 0.5], dtype=float32)}
    """
    return optax.apply_updates(params, updates)


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    r"""Rescale the updates so that their global norm is at most ``max_norm``.

    As ``optax.clip_by_global_norm``:

    .. math::

        \lVert g \rVert = \sqrt{\textstyle\sum_\ell \sum_i g_{\ell i}^2},
        \qquad u_t = g_t \min\!\left(1, c / \lVert g_t \rVert\right)

    where :math:`c` is ``max_norm`` and the sum runs over every leaf
    :math:`\ell`. Put it first in a :func:`chain` to clip the gradients.

    Args:
        max_norm: :math:`c`, the largest global norm let through.

    Returns:
        An ``optax.GradientTransformation`` with an empty state.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet import optim
        >>> tx = optim.clip_by_global_norm(1.0)
        >>> updates, _ = tx.update(jnp.array([3.0, 4.0]), tx.init(jnp.zeros(2)))
        >>> print([round(u, 4) for u in updates.tolist()])  # [3, 4] / 5
        [0.6, 0.8]
    """
    return optax.clip_by_global_norm(max_norm)
