"""Optimizers as ``optax.GradientTransformation``\\ s, built from named transforms.

An optimizer is a pair ``init(params) -> opt_state`` and
``update(grads, opt_state, params=None) -> (updates, opt_state)``; the step is
``params = apply_updates(params, updates)``. Every optimizer here is a
``chain`` of small transforms, each with a NamedTuple state named after it.

Hyperparameters may be Python numbers, arrays or tracers (swept under
``vmap`` or passed into ``jit``) of a real dtype or, for ``learning_rate``
(``lr`` in the torch presets) and ``weight_decay`` only, schedules (callables
of the int32 step count, optax's included). Anything else (a string, ``None``,
a bool, a complex value, a list, a callable for another argument) and a
concrete value out of range raise ``ValueError`` naming the argument when the
optimizer is built; a tracer's value is not range-checked.

Coupled L2 versus decoupled weight decay:

- ``chain(add_decayed_weights(l), adam(lr))`` adds ``l * w`` to the gradient,
  which Adam then rescales (coupled L2).
- ``adamw(lr, weight_decay=l)`` adds ``l * w`` after Adam's rescaling
  (decoupled); its default mask decays only leaves with ``ndim >= 2``.

``chain``, ``apply_updates`` and ``clip_by_global_norm`` are optax's own,
each called through a documented function of the same name: they hold no
optimizer math, and using them keeps every optimizer here interchangeable
with optax's. ``funcnet.optim.torch`` holds presets with ``torch.optim``'s
conventions.
"""

from funcnet.optim import torch
from funcnet.optim._compose import apply_updates, chain, clip_by_global_norm
from funcnet.optim._optimizers import adam, adamw, rmsprop, sgd
from funcnet.optim._transforms import (
    AddDecayedWeightsState,
    DampenedTraceState,
    ScaleByAdamState,
    ScaleByRmsState,
    ScaleByRStdDevState,
    ScaleByScheduleState,
    TraceState,
    add_decayed_weights,
    dampened_trace,
    default_weight_decay_mask,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_rms,
    scale_by_stddev,
    trace,
)

__all__ = [
    "AddDecayedWeightsState",
    "DampenedTraceState",
    "ScaleByAdamState",
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "ScaleByScheduleState",
    "TraceState",
    "adam",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "chain",
    "clip_by_global_norm",
    "dampened_trace",
    "default_weight_decay_mask",
    "rmsprop",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "scale_by_stddev",
    "sgd",
    "torch",
    "trace",
]
