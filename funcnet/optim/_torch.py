"""Presets that follow ``torch.optim``'s conventions, built from our transforms.

Argument names and defaults are PyTorch's (``lr``, ``alpha``, ``betas``,
``dampening``, ``weight_decay``). ``weight_decay`` means what it means in the
matching ``torch.optim`` class: coupled L2 (added to the gradient) in
:func:`sgd`, :func:`rmsprop` and :func:`adam`, decoupled in :func:`adamw`.
As in a single torch parameter group, it applies to every leaf unless a
``mask`` says otherwise. See ``funcnet.optim.torch`` for the table of every
difference from the optax-style optimizers.
"""

import functools
from typing import Any

import optax

from funcnet._checks import check_range, describe
from funcnet._typing import ScalarOrSchedule
from funcnet.optim import _transforms as transforms
from funcnet.optim._validation import TORCH_SCHEDULES, check_nesterov, is_literal_zero

__all__ = ["adam", "adamw", "rmsprop", "sgd"]


_check = functools.partial(check_range, schedule_hint=TORCH_SCHEDULES)


def _coupled_weight_decay(weight_decay, mask) -> optax.GradientTransformation:
    """torch's ``grad = grad + weight_decay * param``, or nothing when 0."""
    if is_literal_zero(weight_decay):
        return optax.identity()
    return transforms.add_decayed_weights(weight_decay, mask)


def _split_betas(betas) -> tuple[Any, Any]:
    """``betas`` as ``(b1, b2)``, each checked to lie in ``[0, 1)``."""
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(
            f"betas must be a pair (beta1, beta2); got {describe(betas)}. "
            "Pass, for example, betas=(0.9, 0.999)."
        ) from None
    _check("betas[0]", b1, 0.0, 1.0, high_inclusive=False)
    _check("betas[1]", b2, 0.0, 1.0, high_inclusive=False)
    return b1, b2


def sgd(
    lr: ScalarOrSchedule = 1e-3,
    momentum: Any = 0.0,
    dampening: Any = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    nesterov: bool = False,
    *,
    mask: Any = None,
) -> optax.GradientTransformation:
    r"""``torch.optim.SGD``: momentum buffer seeded with the first gradient.

    .. math::

        g_t \leftarrow g_t + \lambda w_{t-1}, \qquad
        b_1 = g_1, \quad b_t = \mu b_{t-1} + (1 - d) g_t, \\
        u_t = -\gamma b_t \ \text{or, with Nesterov,}\
        u_t = -\gamma (g_t + \mu b_t)

    With ``momentum=0`` no buffer is kept and :math:`u_t = -\gamma g_t`.

    Args:
        lr: :math:`\gamma`, at least 0, or a schedule of the step.
        momentum: :math:`\mu`, in ``[0, 1]``.
        dampening: :math:`d`, in ``[0, 1]``.
        weight_decay: :math:`\lambda`, coupled L2, at least 0.
        nesterov: Nesterov's lookahead; needs a momentum and zero dampening.
        mask: Which leaves ``weight_decay`` applies to (``None``: all).

    Returns:
        An ``optax.GradientTransformation``.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet.optim import torch as torch_optim
        >>> opt = torch_optim.sgd(lr=0.1, momentum=0.9, dampening=0.5)
        >>> state = opt.init(jnp.zeros(1))
        >>> _, state = opt.update(jnp.ones(1), state)
        >>> updates, state = opt.update(jnp.ones(1), state)
        >>> print(f"{float(updates[0]):.2f}")  # -0.1 * (0.9 + 0.5)
        -0.14
    """
    _check("lr", lr, 0.0, None, schedule=True)
    _check("momentum", momentum, 0.0, 1.0)
    _check("dampening", dampening, 0.0, 1.0)
    _check("weight_decay", weight_decay, 0.0, None, schedule=True)
    check_nesterov(nesterov, momentum, dampening)

    if is_literal_zero(momentum):
        buffer = optax.identity()
    else:
        buffer = transforms.dampened_trace(momentum, dampening, nesterov)
    return optax.chain(
        _coupled_weight_decay(weight_decay, mask),
        buffer,
        transforms.scale_by_learning_rate(lr),
    )


def rmsprop(
    lr: ScalarOrSchedule = 1e-2,
    alpha: Any = 0.99,
    eps: Any = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    momentum: Any = 0.0,
    centered: bool = False,
    *,
    mask: Any = None,
) -> optax.GradientTransformation:
    r"""``torch.optim.RMSprop``: eps outside the root, lr after the buffer.

    .. math::

        g_t \leftarrow g_t + \lambda w_{t-1}, \qquad
        v_t = \alpha v_{t-1} + (1 - \alpha) g_t^2, \qquad
        s_t = g_t / (\sqrt{v_t} + \epsilon), \\
        b_t = \mu b_{t-1} + s_t, \qquad u_t = -\gamma b_t

    with :math:`v_0 = b_0 = 0`. When ``centered``, :math:`v_t` is replaced by
    :math:`v_t - \bar g_t^2`, where :math:`\bar g_t = \alpha \bar g_{t-1} +
    (1 - \alpha) g_t`.

    Args:
        lr: :math:`\gamma`, at least 0, or a schedule of the step.
        alpha: The decay :math:`\alpha`, in ``[0, 1]``.
        eps: :math:`\epsilon`, at least 0.
        weight_decay: :math:`\lambda`, coupled L2, at least 0.
        momentum: :math:`\mu`, in ``[0, 1]``.
        centered: Whether to divide by a running standard deviation.
        mask: Which leaves ``weight_decay`` applies to (``None``: all).

    Returns:
        An ``optax.GradientTransformation``.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet.optim import torch as torch_optim
        >>> opt = torch_optim.rmsprop(lr=0.01, alpha=0.9, eps=1.0)
        >>> updates, _ = opt.update(jnp.ones(1), opt.init(jnp.zeros(1)))
        >>> print(f"{float(updates[0]):.7f}")  # -0.01 / (sqrt(0.1) + 1)
        -0.0075975
    """
    _check("lr", lr, 0.0, None, schedule=True)
    _check("alpha", alpha, 0.0, 1.0)
    _check("eps", eps, 0.0, None)
    _check("weight_decay", weight_decay, 0.0, None, schedule=True)
    _check("momentum", momentum, 0.0, 1.0)

    scale = transforms.scale_by_stddev if centered else transforms.scale_by_rms
    buffer = (
        optax.identity()
        if is_literal_zero(momentum)
        else transforms.trace(decay=momentum)
    )
    return optax.chain(
        _coupled_weight_decay(weight_decay, mask),
        scale(decay=alpha, eps=eps, eps_in_sqrt=False),
        buffer,
        transforms.scale_by_learning_rate(lr),
    )


def adam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    decoupled_weight_decay: bool = False,
    mask: Any = None,
) -> optax.GradientTransformation:
    r"""``torch.optim.Adam``: its ``weight_decay`` is coupled L2.

    .. math::

        g_t \leftarrow g_t + \lambda w_{t-1}, \qquad
        u_t = -\gamma \, \frac{m_t / (1 - \beta_1^t)}
        {\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}

    with :math:`m_t, v_t` Adam's moments of :math:`g_t`. The eps placement
    and bias correction are those of :func:`funcnet.optim.adam`
    (``eps_root=0``). With ``decoupled_weight_decay=True`` this is
    :func:`adamw`.

    Args:
        lr: :math:`\gamma`, at least 0, or a schedule of the step.
        betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
        eps: :math:`\epsilon`, at least 0.
        weight_decay: :math:`\lambda`, at least 0.
        decoupled_weight_decay: Decay the weights outside Adam (AdamW).
        mask: Which leaves ``weight_decay`` applies to (``None``: all).

    Returns:
        An ``optax.GradientTransformation``.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet.optim import torch as torch_optim
        >>> opt = torch_optim.adam(lr=0.1, eps=1e-3)
        >>> updates, _ = opt.update(jnp.full(1, 1e-3), opt.init(jnp.zeros(1)))
        >>> print(f"{float(updates[0]):.4f}")
        -0.0500
    """
    if decoupled_weight_decay:
        return adamw(lr, betas, eps, weight_decay, mask=mask)
    _check("lr", lr, 0.0, None, schedule=True)
    b1, b2 = _split_betas(betas)
    _check("eps", eps, 0.0, None)
    _check("weight_decay", weight_decay, 0.0, None, schedule=True)

    return optax.chain(
        _coupled_weight_decay(weight_decay, mask),
        transforms.scale_by_adam(b1=b1, b2=b2, eps=eps),
        transforms.scale_by_learning_rate(lr),
    )


def adamw(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-2,
    *,
    mask: Any = None,
) -> optax.GradientTransformation:
    r"""``torch.optim.AdamW``: decoupled decay, default ``1e-2``, every leaf.

    .. math::

        w_t = (1 - \gamma \lambda) w_{t-1} - \gamma \, \frac{m_t / (1 -
        \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}

    which is :func:`funcnet.optim.adamw`'s rule with its defaults replaced.

    Args:
        lr: :math:`\gamma`, at least 0, or a schedule of the step.
        betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
        eps: :math:`\epsilon`, at least 0.
        weight_decay: :math:`\lambda`, at least 0.
        mask: Which leaves are decayed (``None``: all, as torch).

    Returns:
        An ``optax.GradientTransformation``; ``update`` needs ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet import optim
        >>> w = jnp.ones(1)
        >>> opt = optim.torch.adamw(lr=0.01, weight_decay=0.1)
        >>> updates, _ = opt.update(jnp.zeros(1), opt.init(w), w)
        >>> print(f"{float(optim.apply_updates(w, updates)[0]):.4f}")
        0.9990
    """
    _check("lr", lr, 0.0, None, schedule=True)
    b1, b2 = _split_betas(betas)
    _check("eps", eps, 0.0, None)
    _check("weight_decay", weight_decay, 0.0, None, schedule=True)

    return optax.chain(
        transforms.scale_by_adam(b1=b1, b2=b2, eps=eps),
        transforms.add_decayed_weights(weight_decay, mask),
        transforms.scale_by_learning_rate(lr),
    )
