"""Checks shared by the optax-style optimizers and the torch presets."""

from funcnet._checks import concrete_values

SCHEDULES = "Only learning_rate and weight_decay take schedules."
"""The end of the message when another hyperparameter is given a callable."""
TORCH_SCHEDULES = "Only lr and weight_decay take schedules."
"""The same for ``funcnet.optim.torch``, in its argument names."""


def is_literal_zero(value) -> bool:
    """True for a Python number equal to 0: a buffer that would stay unused."""
    return isinstance(value, int | float) and value == 0


def _shown(values) -> str:
    """Concrete values as a list, for a message; a tracer as ``traced``."""
    return "traced" if values is None else f"{values.tolist()}"


def check_nesterov(nesterov: bool, momentum, dampening=None) -> None:
    """Nesterov's lookahead needs a momentum: reject any concrete zero member.

    ``dampening`` is given by torch's SGD only, whose Nesterov form also needs
    it to be 0. Tracers pass, as in every range check.
    """
    if not nesterov:
        return
    momentum_values = concrete_values(momentum)
    no_momentum = momentum_values is not None and bool((momentum_values == 0).any())
    if dampening is None:
        if no_momentum:
            raise ValueError(
                "nesterov=True needs a momentum above 0; got "
                f"momentum={_shown(momentum_values)}. Pass a momentum such as "
                "0.9 (every member above 0, for an array), or nesterov=False."
            )
        return

    dampening_values = concrete_values(dampening)
    damped = dampening_values is not None and bool((dampening_values != 0).any())
    if no_momentum or damped:
        raise ValueError(
            "nesterov=True needs a momentum above 0 and dampening=0; got "
            f"momentum={_shown(momentum_values)}, "
            f"dampening={_shown(dampening_values)}. Change one of them (every "
            "member, for an array), or pass nesterov=False."
        )
