"""Small named gradient transformations, the bricks every optimizer is built of.

Each transform is a factory returning an ``optax.GradientTransformation``: a
pair ``init(params) -> state`` and ``update(updates, state, params=None) ->
(updates, state)``. Its state is a NamedTuple named after the transform, with
fields named after the math (``count``, ``mu``, ``nu``, ``trace``).

Hyperparameters may be Python floats, arrays or tracers (a learning rate swept
under ``vmap``); ``learning_rate`` and ``weight_decay`` may also be schedules,
callables of the integer step count. Concrete values are range-checked when the
transform is built; tracers and schedules pass unchecked. Every state leaf
keeps the dtype it was initialised with, so ``lax.scan`` over steps works and a
jitted second call does not recompile.
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from funcnet._checks import check_range
from funcnet._typing import Params, ScalarOrSchedule
from funcnet.optim._validation import SCHEDULES

__all__ = [
    "AddDecayedWeightsState",
    "DampenedTraceState",
    "ScaleByAdamState",
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "ScaleByScheduleState",
    "TraceState",
    "add_decayed_weights",
    "dampened_trace",
    "default_weight_decay_mask",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "scale_by_stddev",
    "trace",
]


_check = functools.partial(check_range, schedule_hint=SCHEDULES)


def _value_at(hyperparameter, count):
    """The hyperparameter's value at step ``count`` (schedules are called)."""
    return hyperparameter(count) if callable(hyperparameter) else hyperparameter


def _cast_like(tree, like):
    """``tree`` with each leaf cast to the dtype of the matching leaf of ``like``."""
    return jax.tree.map(lambda t, s: jnp.asarray(t, jnp.result_type(s)), tree, like)


def _full_like(params, value):
    """A tree shaped like ``params`` filled with ``value`` in each leaf's dtype."""
    return jax.tree.map(lambda p: jnp.full_like(p, value), params)


class ScaleByRmsState(NamedTuple):
    """State of :func:`scale_by_rms`."""

    nu: Params
    """Running average of the squared updates."""


def scale_by_rms(
    decay: Any = 0.9,
    eps: Any = 1e-8,
    initial_scale: Any = 0.0,
    eps_in_sqrt: bool = True,
) -> optax.GradientTransformation:
    r"""Divide updates by the root of a running average of their squares.

    .. math::

        \nu_t = \rho \nu_{t-1} + (1 - \rho) g_t^2, \qquad
        u_t = g_t / \sqrt{\nu_t + \epsilon} \ \text{(eps in sqrt)}
        \ \text{or}\ g_t / (\sqrt{\nu_t} + \epsilon)

    with :math:`\nu_0` = ``initial_scale``.

    Args:
        decay: :math:`\rho`, in ``[0, 1]``.
        eps: :math:`\epsilon`, at least 0.
        initial_scale: :math:`\nu_0`, at least 0.
        eps_in_sqrt: Whether ``eps`` goes inside the square root (optax) or
            outside it (PyTorch).

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByRmsState`.

    Example:
        >>> import jax.numpy as jnp
        >>> tx = scale_by_rms(decay=0.9, eps=1.0)
        >>> u, _ = tx.update(jnp.ones(1), tx.init(jnp.zeros(1)))
        >>> print(f"{float(u[0]):.6f}")  # 1 / sqrt(0.1 + 1)
        0.953463
    """
    _check("decay", decay, 0.0, 1.0)
    _check("eps", eps, 0.0, None)
    _check("initial_scale", initial_scale, 0.0, None)

    def init(params):
        return ScaleByRmsState(nu=_full_like(params, initial_scale))

    def update(updates, state, params=None):
        del params
        nu = jax.tree.map(
            lambda g, n: (1 - decay) * (g**2) + decay * n, updates, state.nu
        )
        if eps_in_sqrt:
            scale = jax.tree.map(lambda n: jax.lax.rsqrt(n + eps), nu)
        else:
            scale = jax.tree.map(lambda n: 1 / (jnp.sqrt(n) + eps), nu)
        new_updates = jax.tree.map(lambda s, g: s * g, scale, updates)
        return _cast_like(new_updates, updates), ScaleByRmsState(
            nu=_cast_like(nu, state.nu)
        )

    return optax.GradientTransformation(init, update)


class ScaleByRStdDevState(NamedTuple):
    """State of :func:`scale_by_stddev` (the reciprocal standard deviation)."""

    mu: Params
    """Running average of the updates."""
    nu: Params
    """Running average of the squared updates."""


def scale_by_stddev(
    decay: Any = 0.9,
    eps: Any = 1e-8,
    initial_scale: Any = 0.0,
    eps_in_sqrt: bool = True,
) -> optax.GradientTransformation:
    r"""Divide updates by a running estimate of their standard deviation.

    The centered variant of :func:`scale_by_rms`:

    .. math::

        \mu_t = \rho \mu_{t-1} + (1 - \rho) g_t, \qquad
        \nu_t = \rho \nu_{t-1} + (1 - \rho) g_t^2, \\
        u_t = g_t / \sqrt{\nu_t - \mu_t^2 + \epsilon} \ \text{(eps in sqrt)}
        \ \text{or}\ g_t / (\sqrt{\nu_t - \mu_t^2} + \epsilon)

    with :math:`\mu_0 = 0` and :math:`\nu_0` = ``initial_scale``.

    Args:
        decay: :math:`\rho`, in ``[0, 1]``.
        eps: :math:`\epsilon`, at least 0.
        initial_scale: :math:`\nu_0`, at least 0.
        eps_in_sqrt: Whether ``eps`` goes inside the square root (optax) or
            outside it (PyTorch).

    Returns:
        An ``optax.GradientTransformation`` with state
        :class:`ScaleByRStdDevState`.

    Example:
        >>> import jax.numpy as jnp
        >>> tx = scale_by_stddev(decay=0.9, eps=1.0)
        >>> u, _ = tx.update(jnp.ones(1), tx.init(jnp.zeros(1)))
        >>> print(f"{float(u[0]):.6f}")  # 1 / sqrt(0.1 - 0.01 + 1)
        0.957826
    """
    _check("decay", decay, 0.0, 1.0)
    _check("eps", eps, 0.0, None)
    _check("initial_scale", initial_scale, 0.0, None)

    def init(params):
        return ScaleByRStdDevState(
            mu=_full_like(params, 0.0), nu=_full_like(params, initial_scale)
        )

    def update(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: (1 - decay) * g + decay * m, updates, state.mu)
        nu = jax.tree.map(
            lambda g, n: (1 - decay) * (g**2) + decay * n, updates, state.nu
        )
        if eps_in_sqrt:
            scale = jax.tree.map(lambda m, n: jax.lax.rsqrt(n - m**2 + eps), mu, nu)
        else:
            scale = jax.tree.map(lambda m, n: 1 / (jnp.sqrt(n - m**2) + eps), mu, nu)
        new_updates = jax.tree.map(lambda s, g: s * g, scale, updates)
        new_state = ScaleByRStdDevState(
            mu=_cast_like(mu, state.mu), nu=_cast_like(nu, state.nu)
        )
        return _cast_like(new_updates, updates), new_state

    return optax.GradientTransformation(init, update)


class ScaleByAdamState(NamedTuple):
    """State of :func:`scale_by_adam`."""

    count: jax.Array
    """Steps taken so far, an int32 scalar."""
    mu: Params
    """Running average of the updates (first moment)."""
    nu: Params
    """Running average of the squared updates (second moment)."""


def scale_by_adam(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
) -> optax.GradientTransformation:
    r"""Rescale updates by Adam's bias-corrected moment estimates.

    .. math::

        \mu_t = \beta_1 \mu_{t-1} + (1 - \beta_1) g_t, \qquad
        \nu_t = \beta_2 \nu_{t-1} + (1 - \beta_2) g_t^2, \\
        \hat\mu_t = \mu_t / (1 - \beta_1^t), \qquad
        \hat\nu_t = \nu_t / (1 - \beta_2^t), \qquad
        u_t = \hat\mu_t / (\sqrt{\hat\nu_t + \epsilon_{root}} + \epsilon)

    Args:
        b1: :math:`\beta_1`, in ``[0, 1)``.
        b2: :math:`\beta_2`, in ``[0, 1)``.
        eps: :math:`\epsilon`, outside the square root, at least 0.
        eps_root: :math:`\epsilon_{root}`, inside the square root, at least 0.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByAdamState`.

    Example:
        >>> import jax.numpy as jnp
        >>> tx = scale_by_adam(eps=1e-3)
        >>> u, _ = tx.update(jnp.full(1, 1e-3), tx.init(jnp.zeros(1)))
        >>> print(f"{float(u[0]):.4f}")  # 1e-3 / (1e-3 + 1e-3)
        0.5000
    """
    _check("b1", b1, 0.0, 1.0, high_inclusive=False)
    _check("b2", b2, 0.0, 1.0, high_inclusive=False)
    _check("eps", eps, 0.0, None)
    _check("eps_root", eps_root, 0.0, None)

    def init(params):
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=_full_like(params, 0.0),
            nu=_full_like(params, 0.0),
        )

    def update(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
        nu = jax.tree.map(lambda g, n: (1 - b2) * (g**2) + b2 * n, updates, state.nu)
        count = optax.safe_increment(state.count)
        correction1 = 1 - b1**count
        correction2 = 1 - b2**count
        mu_hat = jax.tree.map(lambda m: m / correction1.astype(m.dtype), mu)
        nu_hat = jax.tree.map(lambda n: n / correction2.astype(n.dtype), nu)
        new_updates = jax.tree.map(
            lambda m, n: m / (jnp.sqrt(n + eps_root) + eps), mu_hat, nu_hat
        )
        new_state = ScaleByAdamState(
            count=count, mu=_cast_like(mu, state.mu), nu=_cast_like(nu, state.nu)
        )
        return _cast_like(new_updates, updates), new_state

    return optax.GradientTransformation(init, update)


class TraceState(NamedTuple):
    """State of :func:`trace`."""

    trace: Params
    """The momentum buffer."""


def trace(decay: Any, nesterov: bool = False) -> optax.GradientTransformation:
    r"""Accumulate updates in a momentum buffer (heavy ball or Nesterov).

    .. math::

        m_t = g_t + \mu m_{t-1}, \qquad
        u_t = m_t \ \text{or, with Nesterov,}\ u_t = g_t + \mu m_t

    with :math:`m_0 = 0`.

    Args:
        decay: The momentum :math:`\mu`, in ``[0, 1]``.
        nesterov: Whether to use Nesterov's lookahead form.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`TraceState`.

    Example:
        >>> import jax.numpy as jnp
        >>> tx = trace(decay=0.9)
        >>> state = tx.init(jnp.zeros(1))
        >>> _, state = tx.update(jnp.ones(1), state)
        >>> u, state = tx.update(jnp.ones(1), state)
        >>> print(f"{float(u[0]):.2f}")  # 1 + 0.9 * 1
        1.90
    """
    _check("decay", decay, 0.0, 1.0)

    def init(params):
        return TraceState(trace=_full_like(params, 0.0))

    def update(updates, state, params=None):
        del params
        new_trace = jax.tree.map(lambda g, t: g + decay * t, updates, state.trace)
        if nesterov:
            new_updates = jax.tree.map(lambda g, t: g + decay * t, updates, new_trace)
        else:
            new_updates = new_trace
        new_state = TraceState(trace=_cast_like(new_trace, state.trace))
        return _cast_like(new_updates, updates), new_state

    return optax.GradientTransformation(init, update)


class DampenedTraceState(NamedTuple):
    """State of :func:`dampened_trace`."""

    count: jax.Array
    """Steps taken so far, an int32 scalar."""
    trace: Params
    """The momentum buffer."""


def dampened_trace(
    decay: Any, dampening: Any = 0.0, nesterov: bool = False
) -> optax.GradientTransformation:
    r"""PyTorch's SGD momentum buffer: seeded with the first update, dampened.

    .. math::

        m_1 = g_1, \qquad m_t = \mu m_{t-1} + (1 - d) g_t \ (t > 1), \qquad
        u_t = m_t \ \text{or, with Nesterov,}\ u_t = g_t + \mu m_t

    With :math:`d = 0` this equals :func:`trace`. With :math:`\mu = 0` the
    update is :math:`g_t` whatever :math:`d` (torch keeps no buffer then).

    Args:
        decay: The momentum :math:`\mu`, in ``[0, 1]``.
        dampening: :math:`d`, in ``[0, 1]``.
        nesterov: Whether to use Nesterov's lookahead form.

    Returns:
        An ``optax.GradientTransformation`` with state
        :class:`DampenedTraceState`.

    Example:
        >>> import jax.numpy as jnp
        >>> tx = dampened_trace(decay=0.9, dampening=0.5)
        >>> state = tx.init(jnp.zeros(1))
        >>> _, state = tx.update(jnp.ones(1), state)
        >>> u, state = tx.update(jnp.ones(1), state)
        >>> print(f"{float(u[0]):.2f}")  # 0.9 * 1 + 0.5 * 1
        1.40
    """
    _check("decay", decay, 0.0, 1.0)
    _check("dampening", dampening, 0.0, 1.0)

    def init(params):
        return DampenedTraceState(
            count=jnp.zeros([], jnp.int32), trace=_full_like(params, 0.0)
        )

    def update(updates, state, params=None):
        del params
        first = (state.count == 0) | (jnp.asarray(decay) == 0)
        new_trace = jax.tree.map(
            lambda g, t: jnp.where(first, g, decay * t + (1 - dampening) * g),
            updates,
            state.trace,
        )
        if nesterov:
            new_updates = jax.tree.map(lambda g, t: g + decay * t, updates, new_trace)
        else:
            new_updates = new_trace
        new_state = DampenedTraceState(
            count=optax.safe_increment(state.count),
            trace=_cast_like(new_trace, state.trace),
        )
        return _cast_like(new_updates, updates), new_state

    return optax.GradientTransformation(init, update)


class ScaleByScheduleState(NamedTuple):
    """State of :func:`scale_by_learning_rate` when it follows a schedule."""

    count: jax.Array
    """Steps taken so far, an int32 scalar: the schedule's argument."""


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule, flip_sign: bool = True
) -> optax.GradientTransformation:
    r"""Multiply updates by the (negated) learning rate.

    .. math::

        u_t = -\alpha_t g_t

    where :math:`\alpha_t` is ``learning_rate``, or ``learning_rate(t)`` for a
    schedule (``t`` counts from 0). A constant learning rate keeps an empty
    state; a schedule keeps :class:`ScaleByScheduleState`.

    Args:
        learning_rate: :math:`\alpha`, at least 0: a float, an array, a tracer
            or a callable of the int32 step count (optax schedules included).
        flip_sign: Negate, so that adding the update descends.

    Returns:
        An ``optax.GradientTransformation``.

    Example:
        >>> import jax.numpy as jnp
        >>> tx = scale_by_learning_rate(0.1)
        >>> u, _ = tx.update(jnp.ones(1), tx.init(jnp.zeros(1)))
        >>> print(f"{float(u[0]):.2f}")
        -0.10
    """
    _check("learning_rate", learning_rate, 0.0, None, schedule=True)
    sign = -1 if flip_sign else 1

    def init(params):
        del params
        if callable(learning_rate):
            return ScaleByScheduleState(count=jnp.zeros([], jnp.int32))
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        step_size = sign * _value_at(learning_rate, getattr(state, "count", 0))
        new_updates = jax.tree.map(
            lambda g: jnp.asarray(step_size, g.dtype) * g, updates
        )
        if callable(learning_rate):
            state = ScaleByScheduleState(count=optax.safe_increment(state.count))
        return new_updates, state

    return optax.GradientTransformation(init, update)


class AddDecayedWeightsState(NamedTuple):
    """State of :func:`add_decayed_weights` when the decay follows a schedule."""

    count: jax.Array
    """Steps taken so far, an int32 scalar: the schedule's argument."""


def default_weight_decay_mask(params: Params) -> Params:
    r"""The default AdamW mask: decay only leaves with two or more dimensions.

    .. math::

        m_\ell = [\operatorname{ndim}(w_\ell) \ge 2]

    for each leaf :math:`w_\ell`. Dense kernels ``W`` are decayed; biases,
    batch-norm scales and shifts and any other vector or scalar leaf are not.

    Args:
        params: The parameter pytree.

    Returns:
        A pytree of bools with the structure of ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> default_weight_decay_mask({"W": jnp.ones((2, 3)), "b": jnp.ones(3)})
        {'W': True, 'b': False}
    """
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0, mask: Any = None
) -> optax.GradientTransformation:
    r"""Add the weights, times ``weight_decay``, to the updates.

    .. math::

        u_t = g_t + \lambda_t w_{t-1}

    Placed before the rescaling (``chain(add_decayed_weights(l), adam(lr))``)
    this is coupled L2 regularisation: the gradient of
    :math:`\tfrac{\lambda}{2} \lVert w \rVert^2` joins the data gradient and is
    rescaled with it. Placed after it, as in :func:`funcnet.optim.adamw`, it is
    decoupled weight decay.

    Args:
        weight_decay: :math:`\lambda`, at least 0, or a schedule.
        mask: ``None`` (every leaf is decayed), a pytree of bools shaped like
            the params, or a callable ``params -> such a pytree``; leaves
            marked ``False`` pass through unchanged.

    Returns:
        An ``optax.GradientTransformation``; ``update`` needs ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> tx = add_decayed_weights(0.1)
        >>> w = jnp.ones(1)
        >>> u, _ = tx.update(jnp.zeros(1), tx.init(w), w)
        >>> print(f"{float(u[0]):.2f}")
        0.10
    """
    _check("weight_decay", weight_decay, 0.0, None, schedule=True)

    def init(params):
        del params
        if callable(weight_decay):
            return AddDecayedWeightsState(count=jnp.zeros([], jnp.int32))
        return optax.EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError(
                "add_decayed_weights needs the params: call "
                "update(grads, opt_state, params)."
            )
        decay = _value_at(weight_decay, getattr(state, "count", 0))
        new_updates = jax.tree.map(lambda g, w: g + decay * w, updates, params)
        if callable(weight_decay):
            state = AddDecayedWeightsState(count=optax.safe_increment(state.count))
        return _cast_like(new_updates, updates), state

    transform = optax.GradientTransformation(init, update)
    if mask is None:
        return transform
    return optax.masked(transform, mask)
