"""SGD, RMSProp, Adam and AdamW with optax's defaults and formulas.

Each optimizer is a chain of the named transforms in ``_transforms`` and
returns an ``optax.GradientTransformation``; its trajectory equals the optax
optimizer of the same name, step for step.
"""

import functools
from typing import Any

import optax

from funcnet._checks import check_range
from funcnet._typing import ScalarOrSchedule
from funcnet.optim import _transforms as transforms
from funcnet.optim._validation import SCHEDULES, check_nesterov, is_literal_zero

__all__ = ["adam", "adamw", "rmsprop", "sgd"]


_check = functools.partial(check_range, schedule_hint=SCHEDULES)


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: Any = 0.0,
    nesterov: bool = False,
) -> optax.GradientTransformation:
    r"""Stochastic gradient descent, with optional (Nesterov) momentum.

    .. math::

        m_t = g_t + \mu m_{t-1}, \qquad
        u_t = -\alpha_t m_t \ \text{or, with Nesterov,}\
        u_t = -\alpha_t (g_t + \mu m_t)

    with :math:`m_0 = 0`; with :math:`\mu = 0` this is :math:`u_t = -\alpha_t
    g_t` and no buffer is kept. Built as ``chain(trace, scale_by_learning_rate)``,
    as ``optax.sgd``.

    Args:
        learning_rate: :math:`\alpha`, at least 0, or a schedule of the step.
        momentum: :math:`\mu`, in ``[0, 1]``.
        nesterov: Whether to use Nesterov's lookahead; needs a momentum.

    Returns:
        An ``optax.GradientTransformation``.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet import optim
        >>> params = jnp.zeros(1)
        >>> opt = optim.sgd(0.1, momentum=0.9)
        >>> opt_state = opt.init(params)
        >>> grads = params - 3.0  # of 0.5 (w - 3)^2
        >>> updates, opt_state = opt.update(grads, opt_state)
        >>> params = optim.apply_updates(params, updates)
        >>> print(f"{float(params[0]):.2f}")
        0.30
    """
    _check("learning_rate", learning_rate, 0.0, None, schedule=True)
    _check("momentum", momentum, 0.0, 1.0)
    check_nesterov(nesterov, momentum)

    if is_literal_zero(momentum):
        buffer = optax.identity()
    else:
        buffer = transforms.trace(decay=momentum, nesterov=nesterov)
    return optax.chain(buffer, transforms.scale_by_learning_rate(learning_rate))


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: Any = 0.9,
    eps: Any = 1e-8,
    *,
    eps_in_sqrt: bool = True,
    initial_scale: Any = 0.0,
    centered: bool = False,
    momentum: Any = 0.0,
    nesterov: bool = False,
) -> optax.GradientTransformation:
    r"""RMSProp: steps scaled by a running root mean square of the gradients.

    .. math::

        \nu_t = \rho \nu_{t-1} + (1 - \rho) g_t^2, \qquad
        s_t = g_t / \sqrt{\nu_t + \epsilon}
        \ \text{or}\ s_t = g_t / (\sqrt{\nu_t} + \epsilon), \\
        m_t = -\alpha_t s_t + \mu m_{t-1}, \qquad
        u_t = m_t \ \text{or, with Nesterov,}\ u_t = -\alpha_t s_t + \mu m_t

    with :math:`\nu_0` = ``initial_scale`` and :math:`m_0 = 0`. When
    ``centered``, :math:`\nu_t` is replaced by :math:`\nu_t - \bar g_t^2`,
    where :math:`\bar g_t = \rho \bar g_{t-1} + (1 - \rho) g_t`. As in optax,
    the learning rate is applied before the momentum buffer (PyTorch applies
    it after: see :func:`funcnet.optim.torch.rmsprop`).

    Args:
        learning_rate: :math:`\alpha`, at least 0, or a schedule of the step.
        decay: :math:`\rho`, in ``[0, 1]``.
        eps: :math:`\epsilon`, at least 0.
        eps_in_sqrt: Whether ``eps`` goes inside the square root (optax's
            default) or outside it (PyTorch's).
        initial_scale: :math:`\nu_0`, at least 0.
        centered: Whether to divide by a running standard deviation instead of
            the root mean square.
        momentum: :math:`\mu`, in ``[0, 1]``; 0 keeps no buffer.
        nesterov: Whether to use Nesterov's lookahead; needs a momentum.

    Returns:
        An ``optax.GradientTransformation``.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet import optim
        >>> opt = optim.rmsprop(0.01, decay=0.9, eps=1.0)
        >>> updates, _ = opt.update(jnp.ones(1), opt.init(jnp.zeros(1)))
        >>> print(f"{float(updates[0]):.7f}")  # -0.01 / sqrt(0.1 + 1)
        -0.0095346
    """
    _check("learning_rate", learning_rate, 0.0, None, schedule=True)
    _check("decay", decay, 0.0, 1.0)
    _check("eps", eps, 0.0, None)
    _check("initial_scale", initial_scale, 0.0, None)
    _check("momentum", momentum, 0.0, 1.0)
    check_nesterov(nesterov, momentum)

    scale = transforms.scale_by_stddev if centered else transforms.scale_by_rms
    if is_literal_zero(momentum):
        buffer = optax.identity()
    else:
        buffer = transforms.trace(decay=momentum, nesterov=nesterov)
    return optax.chain(
        scale(
            decay=decay, eps=eps, initial_scale=initial_scale, eps_in_sqrt=eps_in_sqrt
        ),
        transforms.scale_by_learning_rate(learning_rate),
        buffer,
    )


def adam(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
) -> optax.GradientTransformation:
    r"""Adam: steps scaled by bias-corrected first and second moments.

    .. math::

        \mu_t = \beta_1 \mu_{t-1} + (1 - \beta_1) g_t, \qquad
        \nu_t = \beta_2 \nu_{t-1} + (1 - \beta_2) g_t^2, \\
        u_t = -\alpha_t \, \frac{\mu_t / (1 - \beta_1^t)}
        {\sqrt{\nu_t / (1 - \beta_2^t) + \epsilon_{root}} + \epsilon}

    This is the optax and PyTorch convention (``eps`` added after the bias
    correction), not TensorFlow's (``eps`` added before it). For coupled L2
    regularisation put :func:`add_decayed_weights` in front; for decoupled
    weight decay use :func:`adamw`.

    Args:
        learning_rate: :math:`\alpha`, at least 0, or a schedule of the step.
        b1: :math:`\beta_1`, in ``[0, 1)``.
        b2: :math:`\beta_2`, in ``[0, 1)``.
        eps: :math:`\epsilon`, at least 0.
        eps_root: :math:`\epsilon_{root}`, at least 0.

    Returns:
        An ``optax.GradientTransformation``.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet import optim
        >>> opt = optim.adam(0.1, eps=1e-3)
        >>> updates, _ = opt.update(jnp.full(1, 1e-3), opt.init(jnp.zeros(1)))
        >>> print(f"{float(updates[0]):.4f}")
        -0.0500

        Coupled L2 (the penalty's gradient goes through Adam's rescaling):

        >>> opt = optim.chain(optim.add_decayed_weights(0.1), optim.adam(0.01))
        >>> w = jnp.ones(1)
        >>> updates, _ = opt.update(jnp.zeros(1), opt.init(w), w)
        >>> print(f"{float(optim.apply_updates(w, updates)[0]):.4f}")
        0.9900
    """
    _check("learning_rate", learning_rate, 0.0, None, schedule=True)
    _check("b1", b1, 0.0, 1.0, high_inclusive=False)
    _check("b2", b2, 0.0, 1.0, high_inclusive=False)
    _check("eps", eps, 0.0, None)
    _check("eps_root", eps_root, 0.0, None)

    return optax.chain(
        transforms.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root),
        transforms.scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
) -> optax.GradientTransformation:
    r"""AdamW: Adam with decoupled weight decay.

    .. math::

        u_t = -\alpha_t \left( \frac{\hat\mu_t}
        {\sqrt{\hat\nu_t + \epsilon_{root}} + \epsilon}
        + \lambda_t m \odot w_{t-1} \right)

    with :math:`\hat\mu_t, \hat\nu_t` as in :func:`adam` and :math:`m` the
    mask. The decay bypasses Adam's rescaling, unlike coupled L2
    (``chain(add_decayed_weights(l), adam(lr))``).

    The default mask (``mask=None``) decays only leaves with ``ndim >= 2``:
    dense kernels ``W`` are decayed; biases, batch-norm scales and shifts and
    other vectors and scalars are not (see :func:`default_weight_decay_mask`).
    This differs from ``optax.adamw(mask=None)``, which decays every leaf;
    pass ``mask=lambda p: jax.tree.map(lambda _: True, p)`` for that.

    Args:
        learning_rate: :math:`\alpha`, at least 0, or a schedule of the step.
        b1: :math:`\beta_1`, in ``[0, 1)``.
        b2: :math:`\beta_2`, in ``[0, 1)``.
        eps: :math:`\epsilon`, at least 0.
        eps_root: :math:`\epsilon_{root}`, at least 0.
        weight_decay: :math:`\lambda`, at least 0, or a schedule of the step.
        mask: ``None`` for the default above, a pytree of bools shaped like
            the params, or a callable ``params -> such a pytree``.

    Returns:
        An ``optax.GradientTransformation``; ``update`` needs ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet import optim
        >>> w = {"W": jnp.ones((1, 1))}
        >>> opt = optim.adamw(0.01, weight_decay=0.1)
        >>> grads = {"W": jnp.zeros((1, 1))}
        >>> updates, _ = opt.update(grads, opt.init(w), w)
        >>> print(f"{float(optim.apply_updates(w, updates)['W'][0, 0]):.4f}")
        0.9990
    """
    _check("learning_rate", learning_rate, 0.0, None, schedule=True)
    _check("b1", b1, 0.0, 1.0, high_inclusive=False)
    _check("b2", b2, 0.0, 1.0, high_inclusive=False)
    _check("eps", eps, 0.0, None)
    _check("eps_root", eps_root, 0.0, None)
    _check("weight_decay", weight_decay, 0.0, None, schedule=True)

    if mask is None:
        mask = transforms.default_weight_decay_mask
    return optax.chain(
        transforms.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root),
        transforms.add_decayed_weights(weight_decay, mask),
        transforms.scale_by_learning_rate(learning_rate),
    )
