r"""Optimizers with ``torch.optim``'s conventions, argument names and defaults.

No JAX library offers these: use them to reproduce a PyTorch run. Each returns
an ``optax.GradientTransformation`` built from ``funcnet.optim``'s transforms,
and its trajectory matches ``torch.optim`` (tested against recorded float64
trajectories in ``tests/golden/``).

Every difference from the optax-style optimizers in ``funcnet.optim``
(left: ``funcnet.optim``, as optax; right: ``funcnet.optim.torch``, as torch):

- All: ``learning_rate`` (required) vs ``lr`` (torch's default);
  ``weight_decay`` absent (chain ``add_decayed_weights``) vs coupled L2,
  ``g + weight_decay * w`` on every leaf (AdamW: decoupled).
- SGD: no default learning rate vs ``lr=1e-3``; buffer ``m_t = g_t + mu m_{t-1}``
  from ``m_0 = 0`` vs buffer seeded with ``b_1 = g_1`` then
  ``b_t = mu b_{t-1} + (1 - dampening) g_t`` (the same when ``dampening=0``);
  Nesterov ``g + mu m`` in both, torch's needs ``dampening=0``.
- RMSProp: ``decay=0.9`` vs ``alpha=0.99``; ``eps`` inside the square root
  (``eps_in_sqrt=True``) vs outside; learning rate applied before the momentum
  buffer (``m = mu m - lr s``) vs after it (``b = mu b + s``, ``u = -lr b``);
  ``initial_scale`` (default 0) vs always 0; Nesterov available vs absent.
- Adam: no default learning rate vs ``lr=1e-3``; the same eps placement
  (``sqrt(v_hat) + eps``, after bias correction) and bias correction of both
  moments; ``eps_root`` available vs absent; decoupled decay via ``adamw`` vs
  the ``decoupled_weight_decay`` flag.
- AdamW: ``weight_decay=1e-4`` vs ``1e-2``; default mask decays leaves with
  ``ndim >= 2`` vs every leaf; ``w - lr (adam + wd w)`` vs
  ``(1 - lr wd) w - lr adam``, the same number.

With a constant learning rate the RMSProp buffer order changes nothing; with
a schedule it does (torch scales the whole buffer by the current rate).

Schedules: ``lr`` and ``weight_decay`` may be callables of the step count
(counted from 0). ``lr=lambda count: base * f(count)`` reproduces
``LambdaLR(optimizer, f)`` on ``lr=base`` stepped after each
``optimizer.step()``; the golden file checks this for RMSProp with momentum,
SGD with dampening and AdamW.

Not supported: ``amsgrad``, ``maximize``, ``foreach``, ``fused``,
``capturable``, ``differentiable`` (the last four are implementation choices
with no effect on the numbers), and several parameter groups (use ``mask``
for weight decay, or ``optax.multi_transform``).
"""

from funcnet.optim._torch import adam, adamw, rmsprop, sgd

__all__ = ["adam", "adamw", "rmsprop", "sgd"]
