"""Layer traces and gradient-flow diagnostics of one batch.

For every ``Dense`` layer ``l`` of a :func:`~funcnet.layers.serial` network
(``mlp``'s, say), :func:`trace` records what the delta rule computes:

.. math::

    z_l = a_{l-1} W_l + b_l, \\qquad a_l = f(z_l), \\qquad
    \\delta_l = \\frac{\\partial L}{\\partial z_l}, \\qquad
    \\frac{\\partial L}{\\partial W_l} = a_{l-1}^\\top \\delta_l

where ``a_l`` is the input of the next Dense layer (the output of the
layers between: activation, batch norm, dropout) and, for the last one, the
network's output. ``delta`` comes from the network's hand-written backward
(``return_cotangents=True``), not from autodiff. Small nets keep the full
values and print as the textbook's per-layer table; large ones keep
Frobenius norms only. :func:`gradient_flow` returns just the norms, jit- and
vmap-able, and :class:`FlowRecorder` records them once per epoch as a
``fit`` callback: vanishing gradients show as ``||delta_l||`` shrinking
toward the input.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from funcnet import layers, losses, trace
    >>> net = layers.mlp([2, 2, 1], "sigmoid")
    >>> _, params, state = net.init(jax.random.key(0))
    >>> t = trace.trace(net, losses.mse, params, state, jnp.ones((1, 2)),
    ...                 jnp.zeros((1, 1)))
    >>> t.names, t.full, t.z[0].shape
    (('Dense(2)', 'Dense(1)'), True, (1, 2))
    >>> print(t)  # doctest: +ELLIPSIS
    layer  unit  z  ...  a  ...  delta
    1      0     ...
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnet.layers import Layer
from funcnet.losses import Loss

FULL_LIMIT = 64
"""``full=None`` keeps full values when no layer's ``z`` has more entries."""


class LayerNorms(NamedTuple):
    """Frobenius norms per Dense layer (last axis), input side first.

    Attributes:
        z: ``||z_l||`` over the batch.
        a: ``||a_l||``.
        delta: ``||delta_l||``, the backward signal reaching layer ``l``.
        grad_w: ``||dL/dW_l||``.
        grad_b: ``||dL/db_l||`` (0 for a layer without bias).
    """

    z: jax.Array
    a: jax.Array
    delta: jax.Array
    grad_w: jax.Array
    grad_b: jax.Array


@jax.tree_util.register_pytree_node_class
class LayerTrace:
    """One batch through a network: per Dense layer ``z``, ``a``, ``delta``.

    A pytree (the names and ``full`` are static), so :func:`trace` runs
    under ``jit``. ``str()`` renders the per-layer table: every unit of
    every example with full values, the norms otherwise.

    Attributes:
        names: each Dense layer's name.
        full: whether ``z``, ``a`` and ``delta`` hold the full values.
        loss: the batch's loss.
        z: per layer ``(batch, n_out)`` arrays, or ``None`` when not full.
        a: likewise.
        delta: likewise.
        norms: the :class:`LayerNorms`, always there.
    """

    def __init__(self, names, full, loss, z, a, delta, norms):
        self.names = tuple(names)
        self.full = full
        self.loss = loss
        self.z, self.a, self.delta = z, a, delta
        self.norms = norms

    def tree_flatten(self):
        return (self.loss, self.z, self.a, self.delta, self.norms), (
            self.names,
            self.full,
        )

    @classmethod
    def tree_unflatten(cls, static, children):
        return cls(*static, *children)

    def __str__(self) -> str:
        if self.full:
            header = ["layer", "unit", "z", "a", "delta"]
            batch = np.shape(self.z[0])[0]
            if batch > 1:
                header.insert(1, "example")
            rows = [header]
            for layer, (z, a, d) in enumerate(zip(self.z, self.a, self.delta), 1):
                z, a, d = np.asarray(z), np.asarray(a), np.asarray(d)
                for n in range(batch):
                    for unit in range(z.shape[-1]):
                        a_value = f"{a[n, unit]:.4f}" if unit < a.shape[-1] else ""
                        row = [str(layer), str(unit), f"{z[n, unit]:.4f}", a_value]
                        row.append(f"{d[n, unit]:.6f}")
                        if batch > 1:
                            row.insert(1, str(n))
                        rows.append(row)
        else:
            header = ["layer", "name", "|z|", "|a|", "|delta|", "|dW|", "|db|"]
            rows = [header]
            norms = [np.asarray(v) for v in self.norms]
            for i, name in enumerate(self.names):
                rows.append([str(i + 1), name] + [f"{v[i]:.3e}" for v in norms])
        widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"LayerTrace({len(self.names)} Dense layers, full={self.full})"


def _dense_indices(network: Layer) -> list[int]:
    if not isinstance(network, Layer):
        raise ValueError(
            f"network must be a funcnet Layer; got {type(network).__name__}."
        )
    dense = [i for i, s in enumerate(network.sublayers) if s.name.startswith("Dense(")]
    if not dense:
        raise ValueError(
            f"network must be a serial network with Dense layers among its own "
            f"sublayers (such as mlp's); {network.name!r} has none."
        )
    return dense


def _forward_by_layer(network, params, state, x, key, train):
    """Each sublayer's output, and the residuals, as ``serial`` runs them."""
    layers = network.sublayers
    if state is None:
        state = ((),) * len(layers)
    keys = [None] * len(layers)
    if key is not None:
        keys = list(jax.random.split(key, len(layers)))
    outputs, residuals = [], []
    for layer, p, s, k in zip(layers, params, state, keys):
        x, _, r = layer.forward(p, s, x, key=k, train=train)
        outputs.append(x)
        residuals.append(r)
    return outputs, tuple(residuals)


def _norm(x):
    x = jnp.asarray(x)
    return jnp.sqrt(jnp.sum(jnp.square(x))) if x.size else jnp.zeros((), x.dtype)


def trace(
    network: Layer,
    loss: Loss,
    params,
    state,
    x,
    targets,
    *,
    key=None,
    train: bool = True,
    mask=None,
    full: bool | None = None,
) -> LayerTrace:
    """Runs one batch forward and backward and records every Dense layer.

    Args:
        network: a ``serial`` network whose own sublayers include ``Dense``
            layers (nested ``serial`` networks are not searched).
        loss: the :class:`~funcnet.losses.Loss` that starts the backward.
        params: the network's params.
        state: its state (``None`` for a stateless network).
        x: a batch of inputs.
        targets: the batch's targets.
        key: the forward key (dropout), split per layer as ``serial`` does.
        train: the forward's mode.
        mask: per-example loss weights.
        full: keep the full ``z``, ``a``, ``delta``; ``None`` decides by
            size (:data:`FULL_LIMIT` entries per layer).

    Returns:
        A :class:`LayerTrace`.

    Raises:
        ValueError: when ``network`` has no Dense sublayers.
    """
    dense = _dense_indices(network)
    outputs, residuals = _forward_by_layer(network, params, state, x, key, train)
    dy = loss.grad(outputs[-1], targets, mask)
    grads, _, cotangents = network.backward(
        params, residuals, dy, return_cotangents=True
    )

    ends = dense[1:] + [len(outputs)]
    z = [outputs[i] for i in dense]
    a = [outputs[end - 1] for end in ends]
    delta = [cotangents[i] for i in dense]
    if full is None:
        full = max(np.size(v) for v in z) <= FULL_LIMIT
    norms = LayerNorms(
        jnp.stack([_norm(v) for v in z]),
        jnp.stack([_norm(v) for v in a]),
        jnp.stack([_norm(v) for v in delta]),
        jnp.stack([_norm(grads[i]["W"]) for i in dense]),
        jnp.stack([_norm(grads[i].get("b", jnp.zeros(()))) for i in dense]),
    )
    value = loss(outputs[-1], targets, mask)
    names = [network.sublayers[i].name for i in dense]
    if not full:
        return LayerTrace(names, False, value, None, None, None, norms)
    return LayerTrace(names, True, value, tuple(z), tuple(a), tuple(delta), norms)


def gradient_flow(
    network: Layer,
    loss: Loss,
    params,
    state,
    x,
    targets,
    *,
    key=None,
    train: bool = True,
    mask=None,
) -> LayerNorms:
    """The per-Dense-layer norms of one batch: :func:`trace` without values.

    Pure, so it jits and vmaps (a sweep's members at once). Vanishing
    gradients show as ``delta`` shrinking from the output layer toward the
    input.

    Args:
        network: a ``serial`` network whose own sublayers include ``Dense``
            layers.
        loss: the :class:`~funcnet.losses.Loss` that starts the backward.
        params: the network's params.
        state: its state (``None`` for a stateless network).
        x: a batch of inputs.
        targets: the batch's targets.
        key: the forward key (dropout).
        train: the forward's mode.
        mask: per-example loss weights.

    Returns:
        :class:`LayerNorms`, each field of shape ``(dense layers,)``, input
        side first: ``||z_l||``, ``||a_l||``, ``||delta_l||``,
        ``||dL/dW_l||`` and ``||dL/db_l||``.

    Raises:
        ValueError: when ``network`` has no Dense sublayers.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnet import layers, losses, trace
        >>> net = layers.mlp([3, 4, 4, 2], "sigmoid")
        >>> _, params, state = net.init(jax.random.key(0))
        >>> flow = jax.jit(lambda p: trace.gradient_flow(
        ...     net, losses.mse, p, state, jnp.ones((8, 3)), jnp.zeros((8, 2))))
        >>> flow(params).delta.shape
        (3,)
    """
    return trace(
        network, loss, params, state, x, targets,
        key=key, train=train, mask=mask, full=False,
    ).norms  # fmt: skip


class FlowRecorder:
    """Gradient-flow norms on a probe batch, for ``fit``'s history.

    Pass it as ``fit(..., epoch_metrics=recorder)``: after each epoch it
    evaluates :func:`gradient_flow` on ``(x, targets)`` with the epoch's
    params, and ``fit`` records ``delta_norm``, ``grad_w_norm`` (and the
    ``z``, ``a`` and ``grad_b`` norms) in its history, each of shape
    ``(epochs, dense layers)``.

    Args:
        network: the network being trained.
        loss: its loss.
        x: the probe batch's inputs.
        targets: its targets.
        train: the forward's mode on the probe (``False``: no dropout, batch
            norm by its running statistics).
    """

    def __init__(self, network: Layer, loss: Loss, x, targets, *, train=False):
        _dense_indices(network)

        def flow(params, state):
            return gradient_flow(network, loss, params, state, x, targets, train=train)

        self._flow: Callable = jax.jit(flow)

    def __call__(self, train_state) -> dict[str, jax.Array]:
        """The probe batch's gradient-flow norms under ``train_state``.

        Args:
            train_state: anything with ``params`` and ``state``, such as a
                :class:`~funcnet.train.TrainState`.

        Returns:
            ``{"z_norm", "a_norm", "delta_norm", "grad_w_norm",
            "grad_b_norm"}``, each an array of shape ``(dense layers,)``
            (:func:`gradient_flow`'s fields).
        """
        norms = self._flow(train_state.params, train_state.state)
        return {f"{name}_norm": value for name, value in norms._asdict().items()}


__all__ = [
    "FULL_LIMIT",
    "FlowRecorder",
    "LayerNorms",
    "LayerTrace",
    "gradient_flow",
    "trace",
]
