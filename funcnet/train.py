"""Training: the train state, the step, the epoch as one scan, and fit.

The pieces, from the smallest:

* :func:`make_train_step` builds ``step(params, opt_state, batch) ->
  (params, opt_state, metrics)`` for networks without state or randomness.
* :class:`TrainState` holds everything a run carries as one pytree:
  ``params``, layer ``state`` (batch-norm statistics), ``opt_state``, the
  global ``step`` and a PRNG ``key``. :func:`make_step` is the step on it.
* :func:`make_epoch` compiles a whole epoch, ``epoch(train_state, x, y) ->
  (train_state, metrics)``, as one ``jax.jit`` of a ``lax.scan`` over
  shuffled minibatches gathered inside the compiled function from data
  staged on the device once.
* :func:`fit` runs epochs with validation, :class:`EarlyStopping`, a
  history, an optional progress bar, checkpoints and exact resume.

Randomness comes only from the train state's ``key``, split once into two
streams: the forward key of each step is ``fold_in(stream_0, step)`` (for
dropout), and each epoch's order is drawn from ``fold_in(stream_1, step)``
with the step at the epoch's start. The key itself never changes, so a run
is a function of its seed: the same seed gives bit-identical results on the
CPU, and a restored checkpoint continues exactly.

Epochs are counted from 1 in :func:`fit`'s results, history and messages.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from funcnet import layers, losses, optim, train
    >>> net = layers.mlp([2, 8, 1], "tanh")
    >>> _, params, _ = net.init(jax.random.key(0))
    >>> optimizer = optim.sgd(0.1)
    >>> step = jax.jit(train.make_train_step(net, losses.mse, optimizer))
    >>> batch = train.Batch(jnp.ones((4, 2)), jnp.zeros((4, 1)))
    >>> opt_state = optimizer.init(params)
    >>> params, opt_state, metrics = step(params, opt_state, batch)
    >>> sorted(metrics)
    ['count', 'loss']
"""

import numbers
import pathlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from funcnet import _sharding
from funcnet import checkpoint as _checkpoint
from funcnet import grad as _grad
from funcnet import losses as _losses
from funcnet._checks import positive_int
from funcnet._typing import OptState, Params, PRNGKey, State
from funcnet.data import batch_indices
from funcnet.layers import Layer

CHECKPOINT_NAME = "checkpoint.npz"
"""The file :func:`fit` keeps, and replaces atomically, in ``checkpoint_dir``."""


class Batch(NamedTuple):
    """One minibatch: inputs, targets, and optional per-example weights.

    Attributes:
        x: the inputs, ``(batch, ...)``.
        y: the targets: integer labels ``(batch,)`` or an array ``(batch,
            n_out)``.
        mask: ``None``, or per-example weights ``(batch,)`` (0 for the padding
            rows of a last, short batch).
    """

    x: Any
    y: Any
    mask: Any = None


class TrainState(NamedTuple):
    """Everything a training run carries from step to step, as one pytree.

    Attributes:
        params: the trainable parameters.
        state: the layers' non-trained values (batch-norm statistics), as
            the network's ``init`` returns them.
        opt_state: the optimizer's state.
        step: the number of optimizer steps taken, an ``int32`` scalar.
        key: the run's PRNG key; it never changes (see the module notes).
    """

    params: Params
    state: State
    opt_state: OptState
    step: jax.Array
    key: PRNGKey


class EarlyStopping(NamedTuple):
    """Stop when a monitored metric has not improved for ``patience`` epochs.

    An epoch improves on the best so far when its value is below
    ``best - min_delta`` (``mode="min"``) or above ``best + min_delta``
    (``mode="max"``). :func:`fit` then returns the params of the best epoch.
    A NaN value never improves (it counts towards ``patience``), and until a
    first value that is a number there is no best, so the first such value
    improves.

    Attributes:
        monitor: the metric's name in the history: ``"val_loss"``,
            ``"val_accuracy"``, ``"loss"``, ``"accuracy"``.
        mode: ``"min"`` or ``"max"``, the direction of improvement.
        patience: how many epochs in a row without improvement stop the run.
        min_delta: the smallest change that counts as an improvement.

    Example:
        >>> from funcnet import train
        >>> stop = train.EarlyStopping("val_loss", patience=3)
        >>> stop.improves(0.69, best=0.7), stop.improves(0.7, best=0.7)
        (True, False)
    """

    monitor: str = "val_loss"
    mode: str = "min"
    patience: int = 5
    min_delta: float = 0.0

    def improves(self, value: float, best: float | None) -> bool:
        """Whether ``value`` improves on ``best`` by more than ``min_delta``.

        Args:
            value: this epoch's value of the monitored metric.
            best: the best value so far; ``None`` or NaN when there is none.

        Returns:
            ``False`` for a NaN ``value``; else ``True`` when there is no
            ``best`` yet, or ``value`` beats it by more than ``min_delta``.
        """
        if np.isnan(value):
            return False
        if best is None or np.isnan(best):
            return True
        if self.mode == "min":
            return bool(value < best - self.min_delta)
        return bool(value > best + self.min_delta)


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes:
        train_state: the train state after the last epoch run.
        history: each metric's name mapped to a float64 array with one entry
            per epoch run (``loss``, ``accuracy`` and their ``val_`` twins).
        best_params: a copy of the params of the best epoch by the early
            stopping's monitor (the last epoch without early stopping, or
            when every monitored value was NaN).
        best_state: the layer state of that epoch, for evaluation.
        best_epoch: that epoch, counted from 1 (0 when no epoch ran, or no
            monitored value was a number).
        stopped_epoch: the epoch after which early stopping ended the run,
            or ``None`` when it ran all ``epochs``.
    """

    train_state: TrainState
    history: dict[str, np.ndarray]
    best_params: Params
    best_state: State
    best_epoch: int
    stopped_epoch: int | None


class ResumeMismatchError(ValueError):
    """``fit(..., resume=True)`` found a checkpoint written with other settings.

    The message names the first setting that differs (data size, batching,
    gradient mode, early stopping or ``run_config``), saved and given.
    """


class TrainingDivergedError(FloatingPointError):
    """The training loss, the gradient or the params became NaN or infinite.

    Attributes:
        epoch: the epoch, counted from 1.
        step: the step within that epoch, counted from 1.
        global_step: the train state's ``step`` when that step ran.
        history: the metrics of the epochs completed before.
    """

    def __init__(self, message, *, epoch, step, global_step, history):
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.global_step = global_step
        self.history = history


# steps


def make_train_step(
    network: Layer,
    loss: _losses.Loss,
    optimizer: optax.GradientTransformation,
    *,
    mode: str = "manual",
) -> Callable:
    """Builds ``step(params, opt_state, batch) -> (params, opt_state, metrics)``.

    For networks without state or randomness (no batch norm, no dropout);
    :func:`make_step` carries those in a :class:`TrainState`.

    Args:
        network: the network, a :class:`~funcnet.layers.Layer`.
        loss: the :class:`~funcnet.losses.Loss` to minimise.
        optimizer: an ``optax.GradientTransformation``.
        mode: ``"manual"`` for the hand-written gradient, ``"autodiff"`` for
            ``jax.grad``.

    Returns:
        A pure function to wrap in ``jax.jit``. ``metrics`` holds the batch's
        ``loss``, its ``count`` of real (unmasked) examples and, for the
        cross-entropy losses, its ``accuracy``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnet import layers, losses, optim, train
        >>> net = layers.mlp([2, 1], "tanh")
        >>> _, params, _ = net.init(jax.random.key(0))
        >>> step = train.make_train_step(net, losses.mse, optim.sgd(0.1))
        >>> batch = train.Batch(jnp.ones((2, 2)), jnp.zeros((2, 1)))
        >>> _, _, metrics = step(params, optim.sgd(0.1).init(params), batch)
        >>> float(metrics["count"])
        2.0
    """
    value_and_grad = _grad.value_and_grad(network, loss, mode=mode)

    def step(params, opt_state, batch):
        x, y, mask = _unpack(batch)
        (value, aux), grads = value_and_grad(params, None, x, y, mask=mask)

        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, batch_metrics(loss, value, aux.outputs, y, mask)

    return step


def init_train_state(
    network: Layer,
    optimizer: optax.GradientTransformation,
    *,
    key: PRNGKey,
    input_shape=None,
) -> TrainState:
    """A fresh :class:`TrainState`: initialized params, layer and optimizer state.

    ``key`` is split in two: one half initializes the network, the other
    becomes the train state's ``key``.

    Args:
        network: the network.
        optimizer: an ``optax.GradientTransformation``.
        key: a PRNG key.
        input_shape: the shape of one example, passed to ``network.init``
            (``None`` uses the network's default, as :func:`~funcnet.layers.mlp`
            has one).

    Returns:
        A :class:`TrainState` at ``step = 0``.

    Example:
        >>> import jax
        >>> from funcnet import layers, optim, train
        >>> ts = train.init_train_state(
        ...     layers.mlp([3, 2]), optim.adam(1e-3), key=jax.random.key(0))
        >>> int(ts.step), ts.params[0]["W"].shape
        (0, (3, 2))
    """
    init_key, train_key = jax.random.split(key)
    if input_shape is None:
        _, params, state = network.init(init_key)
    else:
        _, params, state = network.init(init_key, tuple(input_shape))
    opt_state = optimizer.init(params)
    return TrainState(params, state, opt_state, jnp.zeros((), jnp.int32), train_key)


def make_step(
    network: Layer,
    loss: _losses.Loss,
    optimizer: optax.GradientTransformation,
    *,
    mode: str = "manual",
) -> Callable:
    """Builds ``step(train_state, batch) -> (train_state, metrics)``.

    The forward pass runs in training mode with the key
    ``fold_in(split(train_state.key)[0], train_state.step)``; the layer
    state it returns (batch-norm statistics) becomes the new ``state``.

    Args:
        network: the network.
        loss: the loss to minimise.
        optimizer: an ``optax.GradientTransformation``.
        mode: ``"manual"`` (hand-written backward) or ``"autodiff"``.

    Returns:
        A pure, jit-able function; ``metrics`` as in :func:`make_train_step`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnet import layers, losses, optim, train
        >>> net, optimizer = layers.mlp([2, 1]), optim.sgd(0.1)
        >>> ts = train.init_train_state(net, optimizer, key=jax.random.key(0))
        >>> step = train.make_step(net, losses.mse, optimizer)
        >>> ts, _ = step(ts, train.Batch(jnp.ones((2, 2)), jnp.zeros((2, 1))))
        >>> int(ts.step)
        1
    """
    return _make_step(network, loss, optimizer, mode=mode, param_norm=False)


def _make_step(network, loss, optimizer, *, mode, param_norm):
    """:func:`make_step`; with ``param_norm``, one more metric for divergence.

    ``param_norm`` is the global norm of the params after the update: NaN or
    infinite when any entry is, so a NaN or infinite gradient shows in it as
    soon as the update carries it into the params. (The params' norm rather
    than the gradient's: on the digits MLP on a CPU it costs about 3% of a
    step, the gradient's 5-8% more; and a NaN gradient that the optimizer
    drops, as ``optax.zero_nans`` does, is no divergence.)
    """
    value_and_grad = _grad.value_and_grad(network, loss, mode=mode)

    def step(train_state, batch):
        params, state, opt_state, count, key = train_state
        x, y, mask = _unpack(batch)
        forward_key = jax.random.fold_in(_streams(key)[0], count)
        (value, aux), grads = value_and_grad(
            params, state, x, y, key=forward_key, train=True, mask=mask
        )

        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        state = state if state is None else aux.state
        train_state = TrainState(params, state, opt_state, count + 1, key)
        metrics = batch_metrics(loss, value, aux.outputs, y, mask)
        if param_norm:
            metrics["param_norm"] = _global_norm(params)
        return train_state, metrics

    return step


def _global_norm(tree):
    """``sqrt(sum(leaf ** 2))`` over every leaf of ``tree``, in float32 or wider."""
    squares = [
        jnp.sum(jnp.square(leaf.astype(jnp.promote_types(leaf.dtype, jnp.float32))))
        for leaf in jax.tree.leaves(tree)
    ]
    return jnp.sqrt(sum(squares, jnp.zeros((), jnp.float32)))


def batch_metrics(loss, value, outputs, targets, mask=None) -> dict[str, jax.Array]:
    """One batch's ``loss``, ``count`` and, for classifiers, ``accuracy``.

    Args:
        loss: the :class:`~funcnet.losses.Loss`, for its ``classification``.
        value: the batch's loss value.
        outputs: the network's outputs, batch first.
        targets: the targets.
        mask: per-example weights, or ``None`` for all ones.

    Returns:
        A dict of scalars; ``accuracy`` is the mask-weighted mean.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet import losses, train
        >>> out = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> m = train.batch_metrics(losses.softmax_cross_entropy, 0.5, out,
        ...                         jnp.array([0, 0]), jnp.array([1.0, 0.0]))
        >>> float(m["accuracy"]), float(m["count"])
        (1.0, 1.0)
    """
    weights = jnp.ones(outputs.shape[:1], outputs.dtype) if mask is None else mask
    count = jnp.sum(weights)
    metrics = {"loss": value, "count": count}
    if loss.classification:
        correct = _losses.accuracy(outputs, targets)
        metrics["accuracy"] = jnp.sum(weights * correct) / jnp.maximum(count, 1)
    return metrics


def _unpack(batch):
    if len(batch) == 2:
        return batch[0], batch[1], None
    if len(batch) == 3:
        return tuple(batch)
    raise ValueError(
        f"batch must be (x, y) or (x, y, mask); got a {type(batch).__name__} "
        f"of {len(batch)} entries."
    )


def _streams(key):
    """The two independent streams of a train state's key: forward, shuffle."""
    return jax.random.split(key)


# epoch


def make_epoch(
    network: Layer,
    loss: _losses.Loss,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int | None = 32,
    mode: str = "manual",
    shuffle: bool = True,
    drop_last: bool = False,
    donate: bool = True,
    mesh: Mesh | None = None,
    data_axis: str = "data",
) -> Callable:
    """Compiles ``epoch(train_state, x, y) -> (train_state, metrics)``.

    One ``jax.jit`` of one ``lax.scan``: the epoch's order is a permutation
    drawn from the train state's key and step, each step gathers its
    minibatch from ``x`` and ``y`` inside the compiled function (pass them
    as device arrays, staged once), and the last, shorter batch is padded
    with masked-out examples, so every step has one shape and the function
    compiles once per dataset shape. With ``drop_last=True`` the ``n %
    batch_size`` examples left over by the permutation are skipped instead.

    Args:
        network: the network.
        loss: the loss to minimise.
        optimizer: an ``optax.GradientTransformation``.
        batch_size: examples per step; ``None`` for full-batch gradient
            descent (one step an epoch); a size above ``n`` is treated as ``n``.
        mode: ``"manual"`` (hand-written backward) or ``"autodiff"``.
        shuffle: draw a new order each epoch; ``False`` keeps the data's order.
        drop_last: skip the last, shorter batch instead of padding it.
        donate: donate the input train state's buffers to the output (the
            input is deleted by the call; copy what you keep).
        mesh: data-parallel training over this ``jax.sharding.Mesh``: each
            minibatch is split along its ``data_axis`` across the devices,
            the train state is replicated, and XLA sums the per-device
            gradients (an all-reduce) inside the compiled step. The batch
            size must be divisible by the number of devices on that axis.
            See :func:`data_parallel`.
        data_axis: the mesh axis the batch is split along.

    Returns:
        The jitted epoch. ``metrics`` holds the epoch's ``loss`` (and
        ``accuracy`` for classifiers), each batch's value weighted by its
        count of real examples, so that it is the mean over the examples
        seen; their ``count``; and, one entry per step, ``step_loss`` (its
        loss) and ``step_param_norm`` (the global norm of the params after
        its update), which are NaN or infinite from the step where training
        diverged.

    Note:
        Padded rows repeat real examples with weight 0: they add nothing to
        the loss or the gradient, but a batch-norm layer, which does not
        see the mask, counts them in its batch statistics. Use
        ``drop_last=True`` with batch norm when that matters.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnet import layers, losses, optim, train
        >>> net, optimizer = layers.mlp([2, 1]), optim.sgd(0.1)
        >>> ts = train.init_train_state(net, optimizer, key=jax.random.key(0))
        >>> epoch = train.make_epoch(net, losses.mse, optimizer, batch_size=4)
        >>> ts, metrics = epoch(ts, jnp.ones((10, 2)), jnp.zeros((10, 1)))
        >>> int(ts.step), float(metrics["count"]), metrics["step_loss"].shape
        (3, 10.0, (3,))
    """
    if batch_size is not None:
        batch_size = positive_int("batch_size", batch_size, "or None for full batch")
    for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False; got {flag!r}.")
    step = _make_step(network, loss, optimizer, mode=mode, param_norm=True)
    split_batch, replicate = _sharding.layouts(mesh, data_axis)

    def epoch(train_state, x, y):
        n = _check_data("x", x, "y", y)
        if mesh is not None:
            _sharding.check_divisible(batch_size, n, mesh, data_axis)
        order_key = jax.random.fold_in(_streams(train_state.key)[1], train_state.step)
        order, mask = batch_indices(
            order_key, n, batch_size, shuffle=shuffle, drop_last=drop_last
        )

        def body(train_state, batch):
            indices, weights = batch
            batch = split_batch(Batch(x[indices], y[indices], weights))
            train_state, metrics = step(train_state, batch)
            return replicate(train_state), metrics

        train_state, per_step = jax.lax.scan(body, train_state, (order, mask))
        counts = per_step.pop("count")
        param_norm = per_step.pop("param_norm")
        total = jnp.sum(counts)
        metrics = {k: jnp.sum(v * counts) / total for k, v in per_step.items()}
        metrics["count"] = total
        metrics["step_loss"] = per_step["loss"]
        metrics["step_param_norm"] = param_norm
        return train_state, metrics

    return jax.jit(epoch, donate_argnums=(0,) if donate else ())


def data_parallel(train_state, *arrays, mesh: Mesh):
    """Places a train state and data sets for data-parallel training on ``mesh``.

    Everything is replicated on every device of the mesh (the data once, so
    that each step gathers its minibatch on the device and then splits it);
    pass the results to an epoch made with ``make_epoch(..., mesh=mesh)``.
    :func:`fit` with ``mesh=`` does this itself.

    Args:
        train_state: the :class:`TrainState` to replicate.
        *arrays: data sets (``x``, ``y``, ...) to replicate.
        mesh: the ``jax.sharding.Mesh`` of the devices, on this host or, under
            ``jax.distributed``, on several.

    Returns:
        ``(train_state, *arrays)``, placed.
    """
    whole = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(
        lambda leaf: _sharding.replicate(leaf, whole), (train_state, *arrays)
    )


def _check_data(x_name, x, y_name, y) -> int:
    if np.ndim(x) < 1 or np.shape(x)[0] == 0:
        raise ValueError(
            f"{x_name} must hold at least one example along its first axis; got "
            f"shape {np.shape(x)}."
        )
    if np.ndim(y) < 1 or np.shape(y)[0] != np.shape(x)[0]:
        raise ValueError(
            f"{x_name} and {y_name} must have the same number of rows; got shapes "
            f"{np.shape(x)} and {np.shape(y)}."
        )
    return int(np.shape(x)[0])


# evaluation


def evaluate(network: Layer, loss: _losses.Loss, params, x, y, *, state=None) -> dict:
    """Loss and (for classifiers) accuracy on a whole data set, in evaluation mode.

    Args:
        network: the network.
        loss: the loss.
        params: the params to evaluate.
        x: inputs, batch first.
        y: targets.
        state: the layer state (batch-norm running statistics), or ``None``.

    Returns:
        A dict of Python floats: ``loss`` and, for classifiers, ``accuracy``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnet import layers, losses, train
        >>> net = layers.mlp([2, 1])
        >>> _, params, _ = net.init(jax.random.key(0))
        >>> sorted(train.evaluate(net, losses.mse, params, jnp.ones((3, 2)),
        ...                       jnp.zeros((3, 1))))
        ['loss']
    """
    return {
        k: float(v) for k, v in _evaluator(network, loss)(params, state, x, y).items()
    }


def _evaluator(network, loss):
    def evaluate(params, state, x, y):
        outputs, _, _ = network.forward(params, state, jnp.asarray(x), train=False)
        metrics = batch_metrics(loss, loss(outputs, y), outputs, jnp.asarray(y))
        metrics.pop("count")
        return metrics

    return evaluate


# fit


def fit(
    network: Layer,
    loss: _losses.Loss,
    optimizer: optax.GradientTransformation,
    train_data,
    val_data=None,
    *,
    epochs: int,
    key: PRNGKey | None = None,
    train_state: TrainState | None = None,
    batch_size: int | None = 32,
    mode: str = "manual",
    shuffle: bool = True,
    drop_last: bool = False,
    early_stopping: EarlyStopping | None = None,
    validate: Callable[[TrainState], Mapping[str, float]] | None = None,
    checkpoint_dir=None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool = False,
    callback: Callable[[int, dict, TrainState], None] | None = None,
    epoch_metrics: Callable[[TrainState], Mapping[str, Any]] | None = None,
    donate: bool = True,
    mesh: Mesh | None = None,
    data_axis: str = "data",
    run_config: Mapping[str, Any] | None = None,
) -> FitResult:
    """Trains for up to ``epochs`` epochs, with validation and early stopping.

    Each epoch is one call of :func:`make_epoch`'s compiled function on data
    staged on the device once; then the validation set is evaluated (in
    evaluation mode, in one batch), the epoch's metrics are appended to the
    history, the early stopping is consulted, ``callback`` is called, and
    every ``checkpoint_every`` epochs the run is saved to
    ``checkpoint_dir/checkpoint.npz``.

    Args:
        network: the network.
        loss: the loss to minimise.
        optimizer: an ``optax.GradientTransformation``.
        train_data: ``(x, y)`` (a :class:`~funcnet.data.Dataset` will do).
        val_data: ``(x, y)`` evaluated after each epoch as ``val_loss``
            (and ``val_accuracy``), or ``None``.
        epochs: the number of epochs to run in all (a resumed run counts
            the epochs already done).
        key: the seed of a fresh train state (:func:`init_train_state`,
            with the input shape of ``train_data``); give it or
            ``train_state``, not both.
        train_state: a train state to continue from instead; with
            ``donate=True`` its buffers go to the first epoch, so read what
            you need from it before the call.
        batch_size: examples per step, ``None`` for full batch.
        mode: ``"manual"`` (hand-written backward) or ``"autodiff"``.
        shuffle: a new order every epoch.
        drop_last: skip the last, shorter batch instead of padding it.
        early_stopping: an :class:`EarlyStopping`, or ``None`` to run every
            epoch.
        validate: instead of ``val_data``, a function of the train state
            returning metrics, recorded with a ``val_`` prefix.
        checkpoint_dir: a folder for the checkpoint, or ``None``.
        checkpoint_every: save every this many epochs (and always after the
            last epoch run); ``None`` saves after the last epoch only.
        resume: continue from ``checkpoint_dir``'s checkpoint when there is
            one (train state, history, early-stopping counters and best
            params), else start afresh. The checkpoint must come from a run
            with the same data size, batching, gradient mode, early stopping
            and ``run_config``; a difference raises ``ValueError`` naming the
            setting, with its saved and its given value.
        progress: show a tqdm bar over epochs with the loss and accuracy
            (needs ``tqdm``); the library is silent otherwise.
        callback: called as ``callback(epoch, logs, train_state)`` after
            each epoch; ``train_state``'s buffers are donated to the next
            epoch, so copy what you keep.
        epoch_metrics: ``epoch_metrics(train_state) -> {name: value}``, called
            after each epoch; its values (numbers or arrays, such as
            :class:`funcnet.trace.FlowRecorder`'s per-layer norms) are recorded
            in the history under their own names, one row per epoch.
        donate: let each epoch reuse the previous train state's buffers.
        mesh: train data-parallel over this ``jax.sharding.Mesh``: the data
            and the train state are replicated on its devices and every
            minibatch is split along ``data_axis`` (see :func:`make_epoch`).
            A checkpoint saved this way restores on any number of devices.
        data_axis: the mesh axis the batch is split along.
        run_config: the settings of the run that the train state does not
            show, such as the learning rate or the activation, as a dict of
            JSON values: saved with every checkpoint, and compared with the
            saved ones on resume, so that a changed setting cannot continue
            a run silently.

    Returns:
        A :class:`FitResult`.

    Raises:
        TrainingDivergedError: the training loss or the params (through a
            NaN or infinite gradient, or an update that overflowed) became
            NaN or infinite; the message names the epoch and the step.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnet import layers, losses, optim, train
        >>> x = jax.random.normal(jax.random.key(1), (16, 2))
        >>> result = train.fit(layers.mlp([2, 1]), losses.mse, optim.sgd(0.1),
        ...                    (x, x[:, :1]), (x, x[:, :1]), epochs=3,
        ...                    batch_size=8, key=jax.random.key(0))
        >>> sorted(result.history), len(result.history["loss"])
        (['loss', 'val_loss'], 3)
    """
    epochs = _non_negative_int("epochs", epochs)
    if (key is None) == (train_state is None):
        raise ValueError(
            "fit needs exactly one of key= (to build a fresh train state) and "
            f"train_state=; got key={key!r} and train_state="
            f"{'None' if train_state is None else 'a TrainState'}."
        )
    if val_data is not None and validate is not None:
        raise ValueError(
            "give val_data or validate, not both; validate replaces the "
            "built-in evaluation on val_data."
        )
    if early_stopping is not None:
        _check_early_stopping(early_stopping)
    if checkpoint_every is not None:
        checkpoint_every = positive_int("checkpoint_every", checkpoint_every, "or None")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir, the folder to resume from.")
    if checkpoint_every is not None and checkpoint_dir is None:
        raise ValueError(
            f"checkpoint_every={checkpoint_every} needs checkpoint_dir, the folder "
            f"to save in; got checkpoint_dir=None."
        )
    if key is not None and not isinstance(key, jax.Array):
        raise ValueError(
            f"key must be a JAX PRNG key such as jax.random.key(0); got "
            f"{type(key).__name__}: {key!r}."
        )
    if run_config is not None and not isinstance(run_config, Mapping):
        raise ValueError(
            f"run_config must be a dict of JSON values or None; got "
            f"{type(run_config).__name__}: {run_config!r}."
        )
    run_config = _checkpoint._as_json(dict(run_config or {}), "run_config")
    x, y = _stage("train_data", train_data)
    val = () if val_data is None else _stage("val_data", val_data)
    if train_state is None:
        train_state = init_train_state(
            network, optimizer, key=key, input_shape=x.shape[1:]
        )
    if mesh is not None:
        # Before a restore, which lays the checkpoint out as its template is.
        train_state, x, y, *val = data_parallel(train_state, x, y, *val, mesh=mesh)

    epoch_fn = make_epoch(
        network,
        loss,
        optimizer,
        batch_size=batch_size,
        mode=mode,
        shuffle=shuffle,
        drop_last=drop_last,
        donate=donate,
        mesh=mesh,
        data_axis=data_axis,
    )
    evaluate_fn = jax.jit(_evaluator(network, loss))
    config = {
        "n_train": int(x.shape[0]),
        "batch_size": batch_size,
        "mode": mode,
        "shuffle": shuffle,
        "drop_last": drop_last,
    }
    run = _Run(train_state, early_stopping, run_config)
    path = (
        None
        if checkpoint_dir is None
        else pathlib.Path(checkpoint_dir) / CHECKPOINT_NAME
    )
    if resume and path.is_file():
        run.restore(path, config)

    bar = _progress_bar(epochs, run.epoch) if progress else None
    try:
        while run.epoch < epochs and run.stopped_epoch is None:
            run.train_state, metrics = epoch_fn(run.train_state, x, y)
            metrics = jax.device_get(metrics)
            _check_finite(metrics, run)
            logs = {
                k: float(v)
                for k, v in metrics.items()
                if k != "count" and not k.startswith("step_")
            }
            if val_data is not None:
                val_metrics = evaluate_fn(
                    run.train_state.params, run.train_state.state, *val
                )
                logs |= {f"val_{k}": float(v) for k, v in val_metrics.items()}
            if validate is not None:
                logs |= {
                    f"val_{k}": float(v) for k, v in validate(run.train_state).items()
                }
            if epoch_metrics is not None:
                # As lists, so that the history stays JSON for checkpoints.
                logs |= {
                    k: np.asarray(jax.device_get(v), np.float64).tolist()
                    for k, v in epoch_metrics(run.train_state).items()
                }
            run.record(logs)
            if callback is not None:
                callback(run.epoch, logs, run.train_state)
            if bar is not None:
                bar.set_postfix(_postfix(logs), refresh=False)
                bar.update(1)
            last = run.epoch == epochs or run.stopped_epoch is not None
            due = checkpoint_every is not None and run.epoch % checkpoint_every == 0
            if path is not None and (last or due):
                run.save(path, config)
    finally:
        if bar is not None:
            bar.close()
    return run.result()


class _Run:
    """The mutable bookkeeping of one fit: epoch count, history, best so far."""

    def __init__(self, train_state, early_stopping, run_config):
        self.train_state = train_state
        self.early_stopping = early_stopping
        self.run_config = run_config
        self.epoch = 0
        self.history: dict[str, list[float]] = {}
        self.best = None
        self.best_epoch = 0
        self.best_value = None
        self.wait = 0
        self.stopped_epoch = None

    def record(self, logs):
        self.epoch += 1
        for name, value in logs.items():
            self.history.setdefault(name, []).append(value)
        stop = self.early_stopping
        if stop is None:
            self.best_epoch = self.epoch
            return
        if stop.monitor not in logs:
            raise ValueError(
                f"early_stopping.monitor is {stop.monitor!r}, which is not among "
                f"the metrics of the epoch: {sorted(logs)}. Pass val_data to "
                f"monitor a val_ metric."
            )
        value = logs[stop.monitor]
        if stop.improves(value, self.best_value):
            self.best_value, self.best_epoch, self.wait = value, self.epoch, 0
            self.best = _copy((self.train_state.params, self.train_state.state))
        else:
            self.wait += 1
            if self.wait >= stop.patience:
                self.stopped_epoch = self.epoch

    def best_tree(self):
        if self.best is None:
            return (self.train_state.params, self.train_state.state)
        return self.best

    def save(self, path, config):
        tree = {"train_state": self.train_state, "best": self.best_tree()}
        metadata = {
            "epoch": self.epoch,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "early_stopping": self._early_stopping_settings(),
            "config": config,
            "run_config": self.run_config,
        }
        _checkpoint.save(path, tree, metadata=metadata)

    def _early_stopping_settings(self):
        stop = self.early_stopping
        return None if stop is None else _checkpoint._as_json(stop._asdict())

    def check_settings(self, path, metadata, config):
        """Raises ``ValueError`` when the checkpoint's run had other settings."""
        stop, saved_stop = self._early_stopping_settings(), metadata["early_stopping"]
        difference = _first_difference(metadata["config"], config)
        if difference is None and (saved_stop is None) != (stop is None):
            difference = ("early_stopping", saved_stop, stop)
        if difference is None:
            difference = _first_difference(
                saved_stop or {}, stop or {}, "early_stopping.{}"
            )
        if difference is None:
            difference = _first_difference(
                metadata.get("run_config", {}), self.run_config, "run_config[{!r}]"
            )
        if difference is not None:
            name, before, now = difference
            raise ResumeMismatchError(
                f"the checkpoint {str(path)!r} was written by a run with "
                f"{name}={before!r}, but this one has {name}={now!r}; resume only "
                f"with the same settings, or use a new checkpoint_dir."
            )

    def restore(self, path, config):
        self.check_settings(path, _checkpoint.read_metadata(path), config)
        template = {"train_state": self.train_state, "best": self.best_tree()}
        tree, metadata = _checkpoint.restore(path, template)
        self.train_state = tree["train_state"]
        self.epoch = metadata["epoch"]
        self.history = {k: list(v) for k, v in metadata["history"].items()}
        self.best_epoch = metadata["best_epoch"]
        self.best_value = metadata["best_value"]
        self.wait = metadata["wait"]
        self.stopped_epoch = metadata["stopped_epoch"]
        self.best = tree["best"] if self.early_stopping is not None else None

    def result(self):
        best_params, best_state = _copy(self.best_tree())
        history = {k: np.asarray(v, np.float64) for k, v in self.history.items()}
        return FitResult(
            self.train_state,
            history,
            best_params,
            best_state,
            self.best_epoch,
            self.stopped_epoch,
        )


class _Missing:
    def __repr__(self):
        return "<not set>"


_MISSING = _Missing()


def _first_difference(saved, given, label="{}"):
    """``(name, saved value, given value)`` of the first setting that differs.

    ``None`` when the two dicts agree; a setting only one has is
    ``<not set>`` in the other. ``label`` formats the setting's name.
    """
    for name in [*given, *(name for name in saved if name not in given)]:
        before, now = saved.get(name, _MISSING), given.get(name, _MISSING)
        if before != now:
            return label.format(name), before, now
    return None


def _copy(tree):
    """A copy in new buffers, which a donating epoch cannot delete."""
    return jax.tree.map(jnp.copy, tree)


def _check_finite(metrics, run):
    """Raises :class:`TrainingDivergedError` at the first step that diverged.

    That is the first step whose loss, or whose params after the update, are
    NaN or infinite.
    """
    loss = np.asarray(metrics["step_loss"])
    param_norm = np.asarray(metrics["step_param_norm"])
    finite = np.isfinite(loss) & np.isfinite(param_norm)
    if finite.all():
        return
    bad = int(np.flatnonzero(~finite)[0])
    what, why = f"the training loss became {loss[bad]}", ""
    if np.isfinite(loss[bad]):
        what = f"the params became non-finite (global norm {param_norm[bad]})"
        why = (
            f", whose loss was finite ({loss[bad]:.6g}): its gradient was NaN or "
            f"infinite, or its update overflowed"
        )
    epoch = run.epoch + 1
    global_step = int(run.train_state.step) - len(loss) + bad
    raise TrainingDivergedError(
        f"{what} at epoch {epoch}, step {bad + 1} of {len(loss)} (global step "
        f"{global_step}){why}; lower the learning rate, clip the gradients, or "
        f"check the data for NaN.",
        epoch=epoch,
        step=bad + 1,
        global_step=global_step,
        history={k: np.asarray(v, np.float64) for k, v in run.history.items()},
    )


def _check_early_stopping(stop):
    if not isinstance(stop, EarlyStopping):
        raise ValueError(
            f"early_stopping must be a train.EarlyStopping or None; got "
            f"{type(stop).__name__}: {stop!r}."
        )
    if stop.mode not in ("min", "max"):
        raise ValueError(
            f"early_stopping.mode must be 'min' or 'max'; got {stop.mode!r}."
        )
    positive_int("early_stopping.patience", stop.patience)
    if not (isinstance(stop.min_delta, (int, float)) and stop.min_delta >= 0):
        raise ValueError(
            f"early_stopping.min_delta must be a number >= 0; got {stop.min_delta!r}."
        )


def _non_negative_int(name, value) -> int:
    integral = isinstance(value, numbers.Integral)
    if integral and not isinstance(value, (bool, np.bool_)) and value >= 0:
        return int(value)
    raise ValueError(f"{name} must be a non-negative integer; got {value!r}.")


def _stage(name, dataset):
    if not isinstance(dataset, (tuple, list)) or len(dataset) != 2:
        raise ValueError(
            f"{name} must be a pair (x, y), such as a data.Dataset; got "
            f"{type(dataset).__name__}."
        )
    x, y = dataset
    _check_data(f"{name} x", x, f"{name} y", y)
    return jnp.asarray(x), jnp.asarray(y)


def _progress_bar(epochs, initial):
    try:
        from tqdm.auto import tqdm
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            "progress=True needs tqdm; install it with: pip install tqdm"
        ) from error
    return tqdm(total=epochs, initial=initial, unit="epoch", dynamic_ncols=True)


def _postfix(logs):
    short = {"accuracy": "acc", "val_accuracy": "val_acc"}
    return {
        short.get(k, k): f"{v:.4f}" for k, v in logs.items() if isinstance(v, float)
    }


__all__ = [
    "Batch",
    "EarlyStopping",
    "FitResult",
    "TrainState",
    "ResumeMismatchError",
    "TrainingDivergedError",
    "batch_metrics",
    "data_parallel",
    "evaluate",
    "fit",
    "init_train_state",
    "make_epoch",
    "make_step",
    "make_train_step",
]
