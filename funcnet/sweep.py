"""Sweeps: many whole training runs as one compiled program.

A sweep trains ``K`` members that share the data and differ in their
hyperparameters (learning rate, weight decay, dropout rate, momentum,
betas, ...) and in their init seed. The whole run, every epoch of every
member, is one ``jit`` of a ``vmap`` over the members of a ``lax.scan`` over
epochs of a ``lax.scan`` over minibatches: one compilation, whatever ``K``.

The members share the order of the minibatches (drawn from ``data_seed``),
so a batch of inputs is the same for all of them and the first layer's
products of every member become one wide matrix product under ``vmap``.

Randomness follows :func:`funcnet.train.fit`'s streams: a member of seed
``s`` initializes its params and draws its dropout masks as ``fit(...,
key=jax.random.key(s))`` does, and the minibatch order of every member is
the order ``fit`` draws from ``key(data_seed)``. So with ``data_seed=s`` a
member of seed ``s`` trains as ``fit`` does with ``key(s)``, the same
hyperparameters and ``EarlyStopping(monitor, patience=patience)``.

Several devices are used in one of three ways, named by the axes of a
``jax.sharding.Mesh`` passed as ``mesh=``:

* a ``"members"`` axis splits the members: each device trains its share of
  them on the whole data, and nothing crosses devices (a ``shard_map``).
  This is the default when there are several local devices (on the CPU,
  start Python with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``),
  and what ``devices=[...]`` means;
* a ``"data"`` axis splits every minibatch across its devices, members
  and data replicated, as :func:`funcnet.train.fit` with ``mesh=`` does:
  XLA sums the per-device gradients with an all-reduce. Use it when one
  member's batch is big enough to share;
* both axes (a 2-D mesh) split the members over ``"members"`` and each
  member's batches over ``"data"``.

When the mesh spans several processes (``jax.distributed``), every process
gets the whole result: a split result is gathered with
``multihost_utils.process_allgather``.

Inside the compiled program each member keeps its own early stopping: when
its monitored metric has not improved for ``patience`` epochs it is frozen
with its best params while the others go on. A member is frozen too and
reported as ``"diverged"`` when a step's training loss becomes NaN or
infinite, when its params (or layer state) are not finite at the end of an
epoch, or when its monitored metric or validation loss is not finite; the
members never mix, so it changes nothing for the others.

Hyperparameters reach the model through two functions of a dict of scalars
(tracers inside the program): ``optimizer(hp) -> GradientTransformation``
and, optionally, ``network(hp) -> Layer`` (for a swept dropout rate). A
hyperparameter named ``l2`` is the L2 strength of the loss and ``seed`` is
the member's init and dropout seed.

Example:
    >>> import jax.numpy as jnp
    >>> from funcnet import data, layers, losses, optim, sweep
    >>> splits = data.load_digits()
    >>> result = sweep.run(
    ...     layers.mlp([64, 32, 10]),
    ...     losses.softmax_cross_entropy,
    ...     lambda hp: optim.sgd(hp["learning_rate"]),
    ...     sweep.grid(learning_rate=[0.01, 0.1], seed=[0, 1]),
    ...     splits.train, val=splits.val, epochs=2, batch_size=64,
    ... )
    >>> result.history["val_accuracy"].shape  # (members, epochs)
    (4, 2)
"""

import itertools
import json
import math
import numbers
import pathlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from funcnet import _sharding
from funcnet import grad as _grad
from funcnet import losses as _losses
from funcnet.data import batch_indices
from funcnet.layers import Layer

# hyperparameters


@dataclass(frozen=True)
class Hyperparams:
    """The hyperparameters of ``K`` members, one array of ``K`` values a name.

    Attributes:
        values: each hyperparameter's name to its ``K`` values, member by
            member.
        shape: the grid's shape (``(K,)`` for paired lists), so that a 2-D
            grid can be drawn as a heatmap.
    """

    values: Mapping[str, np.ndarray]
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """The number of members ``K``, the product of ``shape``."""
        return math.prod(self.shape)

    @property
    def names(self) -> tuple[str, ...]:
        """The hyperparameters' names, in the order they were given."""
        return tuple(self.values)

    def member(self, i: int) -> dict[str, Any]:
        """Member ``i``'s hyperparameters as Python numbers.

        Args:
            i: the member's index, from 0.

        Returns:
            Each name mapped to an ``int`` (``seed``) or a ``float``, the
            shortest decimal that is the member's float32 value (``0.1``,
            not ``0.10000000149011612``).
        """
        return {name: _python(v[i]) for name, v in self.values.items()}


def _python(value):
    """A numpy scalar as a Python number; float32 by its shortest decimal."""
    if isinstance(value, np.floating):
        return float(str(value))
    return value.item()


# The seeds a member may have: jax.random.key's 32-bit seeds.
_SEED_RANGE = (0, 2**32 - 1)

_READ_BY_SWEEP = ("seed", "l2")


def _as_values(name, values):
    """One hyperparameter's list as a checked numpy array (int64 seeds, float32)."""
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"hyperparameter {name} must be a non-empty list of values; got {values!r}."
        )
    if name == "seed":
        return _as_seeds(array.tolist())
    if np.iscomplexobj(array):
        raise ValueError(
            f"hyperparameter {name} must list real numbers; got the complex "
            f"values {values!r}."
        )
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"hyperparameter {name} must list numbers; got {values!r}.")
    with np.errstate(over="ignore"):
        as_float32 = array.astype(np.float32)
    if not np.all(np.isfinite(as_float32)):
        bad = array[~np.isfinite(as_float32)].tolist()
        raise ValueError(
            f"hyperparameter {name} must list finite float32 numbers; got {bad} "
            f"in {values!r}."
        )
    if name == "l2" and np.any(as_float32 < 0):
        raise ValueError(
            f"l2, the L2 strength, must be >= 0; got {array[as_float32 < 0].tolist()} "
            f"in {values!r}."
        )
    return as_float32


def _as_seeds(seeds):
    low, high = _SEED_RANGE
    for seed in seeds:
        integral = isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
        if not integral or not low <= seed <= high:
            raise ValueError(
                f"seed must list integers in [{low}, 2**32 - 1] (jax.random.key's "
                f"32-bit seeds); got {seed!r} in {seeds!r}."
            )
    return np.asarray(seeds, np.int64)


def grid(**lists: Sequence) -> Hyperparams:
    """Every combination of the lists (the first name varies slowest).

    Args:
        **lists: each hyperparameter's name and its values, a non-empty list
            of finite real numbers. ``seed`` (integers in ``[0, 2**32 - 1]``)
            seeds each member's init and dropout; ``l2`` (``>= 0``) is the L2
            strength of the loss; the optimizer and network factories read
            the others.

    Returns:
        :class:`Hyperparams` of ``prod(len(values))`` members, of ``shape``
        the lists' lengths in order.

    Raises:
        ValueError: no lists, an empty or non-numeric list, a complex or
            non-finite value, a negative ``l2``, or a seed that is not an
            integer in range.

    Example:
        >>> grid(learning_rate=[0.1, 0.01], seed=[0, 1, 2]).shape
        (2, 3)
    """
    if not lists:
        raise ValueError("grid needs at least one hyperparameter list; got none.")
    arrays = {name: _as_values(name, v) for name, v in lists.items()}
    combos = list(itertools.product(*(range(len(a)) for a in arrays.values())))
    values = {
        name: array[[c[i] for c in combos]]
        for i, (name, array) in enumerate(arrays.items())
    }
    return Hyperparams(values, tuple(len(a) for a in arrays.values()))


def paired(**lists: Sequence) -> Hyperparams:
    """Lists of equal length, member ``i`` taking the ``i``-th of each.

    Args:
        **lists: each hyperparameter's name and its values, as in
            :func:`grid`; every list has the same length ``K``.

    Returns:
        :class:`Hyperparams` of ``K`` members, of ``shape`` ``(K,)``.

    Raises:
        ValueError: lists of different lengths (naming each length), or a
            bad list as in :func:`grid`.

    Example:
        >>> paired(learning_rate=[0.1, 0.01], momentum=[0.9, 0.0]).size
        2
    """
    if not lists:
        raise ValueError("paired needs at least one hyperparameter list; got none.")
    arrays = {name: _as_values(name, v) for name, v in lists.items()}
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            f"paired hyperparameter lists must have the same length; got lengths "
            f"{lengths}. Use grid(...) for every combination."
        )
    return Hyperparams(arrays, (next(iter(lengths.values())),))


class _MissingHyperparameterError(KeyError):
    """A factory read a hyperparameter name the sweep does not have.

    A ``KeyError``, so that ``hp.get(name, default)`` still gives the default.
    """

    def __str__(self):
        return str(self.args[0])


class _Reads(Mapping):
    """A member's hyperparameters, recording which names a factory reads."""

    def __init__(self, values, reader, read):
        self._values = values
        self._reader = reader
        self._read = read

    def __getitem__(self, name):
        if name not in self._values:
            raise _MissingHyperparameterError(
                f"{self._reader} read the hyperparameter {name!r}, which this sweep "
                f"does not have; its hyperparameters are {sorted(self._values)}."
            )
        self._read.add(name)
        return self._values[name]

    def __contains__(self, name):
        return name in self._values

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)


# the factories


def _describe(value) -> str:
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return f"{type(value).__name__} {text}"


def _check_factories(network, loss, optimizer):
    if not isinstance(loss, _losses.Loss):
        raise TypeError(
            f"loss must be a funcnet.losses.Loss, such as "
            f"losses.softmax_cross_entropy or losses.mse; got {_describe(loss)}."
        )
    if not isinstance(network, Layer) and not callable(network):
        raise TypeError(
            f"network must be a layers.Layer, or a function hp -> Layer when the "
            f"network has swept hyperparameters, e.g. lambda hp: layers.mlp(sizes, "
            f"dropout=hp['dropout']); got {_describe(network)}."
        )
    if isinstance(optimizer, optax.GradientTransformation) or not callable(optimizer):
        raise TypeError(
            f"optimizer must be a function hp -> GradientTransformation, e.g. "
            f"lambda hp: optim.sgd(hp['learning_rate']); got {_describe(optimizer)}."
        )


def _build(network, optimizer, hp, reads):
    """One member's network and optimizer from its hyperparameters ``hp``."""
    tx = optimizer(_Reads(hp, "optimizer", reads))
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(
            f"optimizer(hp) must return an optax.GradientTransformation; got "
            f"{_describe(tx)}."
        )
    if isinstance(network, Layer):
        return network, tx
    net = network(_Reads(hp, "network", reads))
    if not isinstance(net, Layer):
        raise TypeError(
            f"network(hp) must return a layers.Layer; got {_describe(net)}."
        )
    return net, tx


def _check_all_read(names, reads):
    unread = sorted(set(names) - set(reads) - set(_READ_BY_SWEEP))
    if unread:
        raise ValueError(
            f"the hyperparameters {unread} are never read: neither the optimizer "
            f"nor the network reads them, and the sweep itself reads only "
            f"{list(_READ_BY_SWEEP)}. Is one misspelt? The factories read "
            f"{sorted(reads)}."
        )


# the compiled program


_STOPPED, _RUNNING = 0, 1


def _tree_where(condition, new, old):
    return jax.tree.map(lambda n, o: jnp.where(condition, n, o), new, old)


def _all_finite(tree):
    finite = jnp.asarray(True)
    for leaf in jax.tree.leaves(tree):
        finite &= jnp.all(jnp.isfinite(leaf))
    return finite


def _epoch_metric(per_step, counts):
    return jnp.sum(per_step * counts) / jnp.maximum(jnp.sum(counts), 1)


def _make_member_run(
    network,
    loss,
    optimizer,
    *,
    input_shape,
    epochs,
    batch_size,
    mode,
    monitor,
    patience,
    min_delta,
    has_val,
    has_test,
    reads,
    split_batch=None,
    replicate=None,
):
    """The training run of one member, a pure function to ``vmap``.

    The names its factories read while it is traced are added to ``reads``.
    ``split_batch`` and ``replicate`` (sharding constraints, as
    :func:`funcnet.train.make_epoch` uses) lay out each minibatch and the
    carried state for data-parallel training; by default nothing is laid out.
    """
    split_batch = split_batch or (lambda tree: tree)
    replicate = replicate or (lambda tree: tree)
    maximize = monitor.endswith("accuracy")

    def run(hp, order_key, train_x, train_y, val_x, val_y, test_x, test_y):
        net, tx = _build(network, optimizer, hp, reads)
        value_and_grad = _grad.value_and_grad(
            net, loss, mode=mode, l2=hp.get("l2", 0.0)
        )
        # train.fit's streams for key(seed): init, then forward (dropout).
        init_key, train_key = jax.random.split(jax.random.key(hp["seed"]))
        forward_key = jax.random.split(train_key)[0]
        _, params, state = net.init(init_key, input_shape)
        opt_state = tx.init(params)
        n = train_x.shape[0]
        steps = -(-n // (n if batch_size is None else min(batch_size, n)))

        def evaluate(params, state, x, y):
            outputs, _, _ = net.forward(params, state, x, train=False)
            metrics = {"loss": loss(outputs, y)}
            if loss.classification:
                metrics["accuracy"] = jnp.mean(_losses.accuracy(outputs, y))
            return metrics

        def train_step(carry, batch):
            params, state, opt_state, step, active = carry
            idx, mask = batch
            x, y, mask = split_batch((train_x[idx], train_y[idx], mask))
            key = jax.random.fold_in(forward_key, step)
            (value, aux), grads = value_and_grad(
                params, state, x, y, key=key, mask=mask
            )
            updates, new_opt_state = tx.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            finite = jnp.isfinite(value)
            active_now = active & finite
            params = _tree_where(active_now, new_params, params)
            state = _tree_where(active_now, aux.state, state)
            opt_state = _tree_where(active_now, new_opt_state, opt_state)
            params, state, opt_state = replicate((params, state, opt_state))
            metrics = {"loss": value, "count": jnp.sum(mask)}
            if loss.classification:
                correct = _losses.accuracy(aux.outputs, y)
                metrics["accuracy"] = jnp.sum(mask * correct) / jnp.maximum(
                    jnp.sum(mask), 1
                )
            return (params, state, opt_state, step + 1, active_now), (
                metrics,
                finite,
            )

        def epoch(carry, epoch_index):
            (params, state, opt_state, step, best, status) = carry
            was_running = status == _RUNNING
            # As fit draws it: from the step at the epoch's start (the same
            # for every member, so the batches stay shared under vmap).
            idx, mask = batch_indices(
                jax.random.fold_in(order_key, epoch_index * steps), n, batch_size
            )
            (params, state, opt_state, step, active), (metrics, finite) = jax.lax.scan(
                train_step,
                (params, state, opt_state, step, was_running),
                (idx, mask),
            )
            counts = metrics.pop("count")
            # A step whose loss is not finite froze the member (active False);
            # its epoch's training metrics are NaN.
            row = {
                f"train_{k}": _epoch_metric(jnp.where(finite, v, jnp.nan), counts)
                for k, v in metrics.items()
            }
            if has_val:
                row |= {
                    f"val_{k}": v
                    for k, v in evaluate(params, state, val_x, val_y).items()
                }
            current = row[monitor]
            # Diverged: a non-finite step loss, or non-finite params or layer
            # state after the epoch (the last step's update), or a non-finite
            # monitored metric or validation loss.
            healthy = jnp.all(finite) & _all_finite((params, state))
            healthy &= jnp.isfinite(current)
            if has_val:
                healthy &= jnp.isfinite(row["val_loss"])
            diverged = was_running & ~healthy
            improved = (
                current > best["metric"] + min_delta
                if maximize
                else current < best["metric"] - min_delta
            )
            improved = improved & was_running & ~diverged
            best = {
                "params": _tree_where(improved, params, best["params"]),
                "state": _tree_where(improved, state, best["state"]),
                "metric": jnp.where(improved, current, best["metric"]),
                "epoch": jnp.where(improved, epoch_index, best["epoch"]),
                "bad": jnp.where(improved, 0, best["bad"] + 1),
            }
            exhausted = was_running & (best["bad"] >= patience)
            status = jnp.where(
                diverged, -1, jnp.where(exhausted, _STOPPED, status)
            ).astype(jnp.int32)
            row = {k: jnp.where(was_running, v, jnp.nan) for k, v in row.items()}
            return (params, state, opt_state, step, best, status), row

        worst = -jnp.inf if maximize else jnp.inf
        best = {
            "params": params,
            "state": state,
            "metric": jnp.asarray(worst, jnp.float32),
            "epoch": jnp.asarray(-1, jnp.int32),
            "bad": jnp.asarray(0, jnp.int32),
        }
        carry = (
            params,
            state,
            opt_state,
            jnp.asarray(0, jnp.int32),
            best,
            jnp.asarray(_RUNNING, jnp.int32),
        )
        carry, history = jax.lax.scan(epoch, carry, jnp.arange(epochs))
        _, _, _, _, best, status = carry
        # A member without one finite monitored value has no best epoch: its
        # "best" params are its initial ones, and no metric describes them.
        never = best["epoch"] < 0
        out = {
            "history": history,
            "best_params": best["params"],
            "best_state": best["state"],
            "best_metric": jnp.where(never, jnp.nan, best["metric"]),
            "best_epoch": best["epoch"],
            "status": status,
        }
        if has_test:
            test = evaluate(best["params"], best["state"], test_x, test_y)
            out["test"] = {k: jnp.where(never, jnp.nan, v) for k, v in test.items()}
        return out

    return run


# the result


_STATUS = {-1: "diverged", _STOPPED: "stopped", _RUNNING: "finished"}

# The face of a diverged member's heatmap cell when it has no value: light red,
# which viridis never uses.
_DIVERGED_FACE = "#f4a582"


@dataclass
class SweepResult:
    """What a sweep returns: numpy arrays with the members on the first axis.

    Attributes:
        hyperparams: the members' hyperparameters.
        history: per-epoch metrics of shape ``(K, epochs)``: ``train_loss``,
            ``train_accuracy``, ``val_loss``, ``val_accuracy`` (what applies);
            NaN after a member stopped or diverged.
        monitor: the metric early stopping watched.
        best_epoch: per member, the epoch (from 0) of its best monitored value,
            -1 if it never had a finite one (it diverged in its first epoch).
        best_metric: per member, that value; NaN without a best epoch.
        status: per member, ``"finished"``, ``"stopped"`` (early) or
            ``"diverged"``.
        test: per-member test metrics of the best params, when test data
            was given; NaN for a member without a best epoch.
        best_params: the best params of every member, stacked.
        best_state: their layer state (batch-norm statistics), stacked.
    """

    hyperparams: Hyperparams
    history: dict[str, np.ndarray]
    monitor: str
    best_epoch: np.ndarray
    best_metric: np.ndarray
    status: list[str]
    test: dict[str, np.ndarray] = field(default_factory=dict)
    best_params: Any = None
    best_state: Any = None

    def best(self) -> int:
        """The member with the best monitored metric.

        Returns:
            Its index: the largest ``best_metric`` for an ``*_accuracy``
            monitor, else the smallest; members without one are skipped.

        Raises:
            ValueError: no member has a finite best metric.
        """
        scores = np.where(np.isfinite(self.best_metric), self.best_metric, np.nan)
        if np.all(np.isnan(scores)):
            raise ValueError("no member has a finite best metric: all diverged.")
        if self.monitor.endswith("accuracy"):
            return int(np.nanargmax(scores))
        return int(np.nanargmin(scores))

    def rows(self) -> list[dict[str, Any]]:
        """The members as dicts, the rows of :meth:`table` and the JSON.

        Returns:
            One dict per member: its hyperparameters, ``best_epoch`` (counted
            from 1; ``None`` without one), ``best_<monitor>``, ``test_<metric>``
            for each test metric (NaN without a best epoch) and ``status``.
        """
        rows = []
        for i in range(self.hyperparams.size):
            row = self.hyperparams.member(i)
            epoch = int(self.best_epoch[i])
            row["best_epoch"] = None if epoch < 0 else epoch + 1
            row[f"best_{self.monitor}"] = float(self.best_metric[i])
            for name, values in self.test.items():
                row[f"test_{name}"] = float(values[i])
            row["status"] = self.status[i]
            rows.append(row)
        return rows

    def table(self) -> str:
        """The rows as an aligned text table.

        Returns:
            A header, a rule and one line per member, numbers to 4
            significant digits; epochs count from 1, and a member without a
            best epoch shows ``-``.
        """
        rows = self.rows()
        columns = list(rows[0])

        def cell(value):
            if value is None:
                return "-"
            if isinstance(value, float):
                return f"{value:.4g}"
            return str(value)

        cells = [[cell(r[c]) for c in columns] for r in rows]
        widths = [
            max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(columns)
        ]
        lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)

    def to_json(self, path) -> None:
        """Writes hyperparameters, histories, results and status as JSON.

        The record holds ``grid_shape``, ``monitor``, ``members`` (the
        :meth:`rows`) and ``history`` (each metric's ``(K, epochs)`` rows).
        Non-finite values (a diverged member's) are written as ``null``, so
        the file is strict JSON.

        Args:
            path: the file to write; its folder is created when missing.

        Returns:
            None.
        """

        def clean(array):
            return [None if not np.isfinite(v) else float(v) for v in array]

        def finite_or_none(value):
            if isinstance(value, float) and not math.isfinite(value):
                return None
            return value

        record = {
            "grid_shape": list(self.hyperparams.shape),
            "monitor": self.monitor,
            "members": [
                {k: finite_or_none(v) for k, v in row.items()} for row in self.rows()
            ],
            "history": {k: [clean(row) for row in v] for k, v in self.history.items()},
        }
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, allow_nan=False))

    def plot(self, folder, *, x="learning_rate") -> list[pathlib.Path]:
        """Loss curves, the best metric against ``x`` (log axis), a 2-D heatmap.

        ``sweep_curves.png`` draws every member's validation loss per epoch
        (the training loss without validation data). With ``x`` among the
        hyperparameters, ``sweep_<monitor>_vs_<x>.png`` draws the best
        monitored value against ``x`` on a log axis, one line per value of
        the other hyperparameters, diverged members as red crosses along
        the bottom. For a 2-D grid, ``sweep_heatmap.png`` colours each cell
        by its best monitored value; a diverged member's cell is hatched (on
        a light red face when it never had a best value), so that it cannot
        pass for a blank or a poor result.

        Needs matplotlib (the ``experiments`` or ``docs`` extra).

        Args:
            folder: where to write the PNGs; created when missing.
            x: the hyperparameter of the second plot's horizontal axis.

        Returns:
            The paths of the PNGs written.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []

        curves = self.history.get("val_loss", self.history["train_loss"])
        fig, ax = plt.subplots(figsize=(7, 4.5))
        colours = plt.cm.viridis(np.linspace(0, 1, len(curves)))
        for i, curve in enumerate(curves):
            ax.plot(np.arange(1, len(curve) + 1), curve, color=colours[i], lw=1)
        ax.set(
            xlabel="epoch",
            ylabel="validation loss" if "val_loss" in self.history else "training loss",
            yscale="log",
            title=f"{len(curves)} members",
        )
        ax.grid(alpha=0.3)
        paths.append(folder / "sweep_curves.png")
        fig.tight_layout()
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)

        if x in self.hyperparams.values:
            values = self.hyperparams.values[x]
            others = [n for n in self.hyperparams.names if n != x]
            fig, ax = plt.subplots(figsize=(7, 4.5))
            groups = {}
            for i in range(self.hyperparams.size):
                label = ", ".join(
                    f"{n}={self.hyperparams.values[n][i]:.3g}" for n in others
                )
                groups.setdefault(label, []).append(i)
            for label, members in groups.items():
                order = sorted(members, key=lambda i: values[i])
                ax.plot(values[order], self.best_metric[order], "o-", label=label)
            diverged = np.array(self.status) == "diverged"
            if diverged.any():
                ax.plot(
                    values[diverged],
                    np.full(diverged.sum(), 0.03),
                    "x",
                    color="tab:red",
                    transform=ax.get_xaxis_transform(),
                    label="diverged",
                )
            ax.set(xscale="log", xlabel=x, ylabel=f"best {self.monitor}")
            if len(groups) > 1 or diverged.any():
                ax.legend(fontsize="small")
            ax.grid(alpha=0.3)
            paths.append(folder / f"sweep_{self.monitor}_vs_{x}.png")
            fig.tight_layout()
            fig.savefig(paths[-1], dpi=100)
            plt.close(fig)

        if len(self.hyperparams.shape) == 2:
            rows_name, cols_name = self.hyperparams.names
            shape = self.hyperparams.shape
            grid_values = np.asarray(self.best_metric, np.float64).reshape(shape)
            diverged = (np.array(self.status) == "diverged").reshape(shape)
            fig, ax = plt.subplots(figsize=(7, 4.5))
            image = ax.imshow(
                np.ma.masked_invalid(grid_values.T), aspect="auto", origin="lower"
            )
            for i, j in zip(*np.nonzero(diverged)):
                blank = not np.isfinite(grid_values[i, j])
                ax.add_patch(
                    Rectangle(
                        (i - 0.5, j - 0.5),
                        1,
                        1,
                        facecolor=_DIVERGED_FACE if blank else "none",
                        edgecolor="black",
                        hatch="xx",
                        lw=0,
                    )
                )
            if diverged.any():
                ax.set_title("hatched: diverged")
            row_ticks = self.hyperparams.values[rows_name].reshape(shape)[:, 0]
            col_ticks = self.hyperparams.values[cols_name].reshape(shape)[0, :]
            ax.set_xticks(range(shape[0]), [f"{v:.2g}" for v in row_ticks], rotation=90)
            ax.set_yticks(range(shape[1]), [f"{v:.2g}" for v in col_ticks])
            ax.set(xlabel=rows_name, ylabel=cols_name)
            fig.colorbar(image, label=f"best {self.monitor}")
            paths.append(folder / "sweep_heatmap.png")
            fig.tight_layout()
            fig.savefig(paths[-1], dpi=100)
            plt.close(fig)
        return paths


# the entry point


def _as_xy(name, dataset):
    if dataset is None:
        return None
    if len(dataset) != 2:
        raise ValueError(f"{name} must be a pair (x, y); got {len(dataset)} entries.")
    x, y = jnp.asarray(dataset[0]), jnp.asarray(dataset[1])
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{name}: x and y must have the same number of rows; got "
            f"{x.shape[0]} and {y.shape[0]}."
        )
    return x, y


_MEMBERS, _DATA = "members", "data"


def _sweep_mesh(mesh, devices):
    """The mesh the sweep runs on, or ``None`` for one device."""
    if mesh is not None and devices is not None:
        raise ValueError(
            "give devices or mesh, not both; devices=[...] splits the members "
            "as a mesh with one 'members' axis would."
        )
    if mesh is None:
        devices = list(jax.local_devices() if devices is None else devices)
        if not devices:
            raise ValueError("devices must list at least one device; got none.")
        if len(devices) == 1:
            return None
        return Mesh(np.array(devices), (_MEMBERS,))
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh; got {_describe(mesh)}.")
    unknown = [a for a in mesh.axis_names if a not in (_MEMBERS, _DATA)]
    if unknown:
        raise ValueError(
            f"a sweep's mesh has a {_MEMBERS!r} axis (split the members across "
            f"its devices), a {_DATA!r} axis (split every minibatch across its "
            f"devices, members replicated), or both; got the axes "
            f"{mesh.axis_names}."
        )
    return mesh


def _replicated(tree, mesh):
    """``tree`` placed whole on every device of ``mesh``, on one host or several."""
    whole = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda a: _sharding.replicate(a, whole), tree)


def _gather(array) -> np.ndarray:
    """A result as a numpy array, gathered from every process when split."""
    if array.is_fully_addressable:
        return np.asarray(jax.device_get(array))
    # A mesh over several processes: each holds only its own devices' share.
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def make_sweep(
    network: Layer | Callable[[dict], Layer],
    loss: _losses.Loss,
    optimizer: Callable[[dict], optax.GradientTransformation],
    train,
    *,
    val=None,
    test=None,
    epochs: int,
    batch_size: int | None = 32,
    mode: str = "manual",
    monitor: str | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    data_seed: int = 0,
    devices: Sequence[jax.Device] | None = None,
    mesh: jax.sharding.Mesh | None = None,
    trace_counter: Callable[[], None] | None = None,
) -> Callable[[Hyperparams], SweepResult]:
    """Compiles a sweep once; the result trains any members given to it.

    Args:
        network: a :class:`~funcnet.layers.Layer`, or ``hp -> Layer`` when the
            network itself has swept hyperparameters (a dropout rate).
        loss: the :class:`~funcnet.losses.Loss`.
        optimizer: ``hp -> optax.GradientTransformation``, such as
            ``lambda hp: optim.sgd(hp["learning_rate"])``; ``hp`` maps each
            hyperparameter name to the member's value.
        train: the training data ``(x, y)``, shared by every member.
        val: validation data ``(x, y)``, evaluated every epoch; early
            stopping watches it.
        test: test data ``(x, y)``, evaluated on each member's best params.
        epochs: the most epochs a member trains.
        batch_size: the minibatch size, or ``None`` for full batch.
        mode: ``"manual"`` (hand-written backward) or ``"autodiff"``.
        monitor: the metric early stopping watches: by default ``"val_loss"``
            with validation data, else ``"train_loss"``; the ``*_accuracy``
            metrics are maximised, losses minimised.
        patience: epochs without improvement (by more than ``min_delta``)
            before a member stops; ``None`` never stops early.
        min_delta: the least change that counts as an improvement.
        data_seed: seeds the minibatch order, shared by all members (the
            order ``train.fit`` draws with ``key=jax.random.key(data_seed)``).
        devices: split the members across these devices; by default all
            local devices when there are several.
        mesh: a ``jax.sharding.Mesh`` whose axes say how to use its devices:
            ``"members"`` splits the members (each device trains its share on
            the whole data), ``"data"`` splits every minibatch (the batch
            size must be a multiple of that axis's size; members replicated;
            results equal one device's to float32 rounding), both do both.
            Give ``devices`` or ``mesh``, not both.
        trace_counter: called each time the program is traced.

    Returns:
        ``sweep_fn(hyperparams) -> SweepResult``. Calls with the same number
        of members and the same hyperparameter names reuse one compilation.
        Each call first builds every member's optimizer and network from its
        concrete values, so that their own checks (a negative learning rate,
        a dropout rate outside ``[0, 1)``) reject a bad member before any
        training, and a hyperparameter that no factory reads (other than
        ``seed`` and ``l2``) is a ``ValueError``: it is most likely misspelt.
        A factory that reads a name the sweep lacks raises a ``KeyError``
        listing the names it has. ``sweep_fn.lower(hyperparams)`` returns the
        program's ``jax.stages.Lowered``, to read its HLO.

    Raises:
        TypeError: ``optimizer`` is not a function (an optimizer itself, say),
            ``network`` is neither a layer nor a function, or ``loss`` is not a
            :class:`~funcnet.losses.Loss`.
        ValueError: a bad ``epochs``, ``patience``, ``monitor`` or data set, a
            mesh axis other than ``"members"`` and ``"data"``, both
            ``devices`` and ``mesh``, or a batch size that the ``"data"``
            axis does not divide (naming both numbers).
    """
    _check_factories(network, loss, optimizer)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer; got {epochs!r}.")
    if patience is not None and (
        isinstance(patience, bool) or not isinstance(patience, int) or patience < 1
    ):
        raise ValueError(
            f"patience must be a positive integer or None; got {patience!r}."
        )
    train, val, test = _as_xy("train", train), _as_xy("val", val), _as_xy("test", test)
    metrics = ["loss", "accuracy"] if loss.classification else ["loss"]
    known = [f"train_{m}" for m in metrics] + (
        [f"val_{m}" for m in metrics] if val is not None else []
    )
    monitor = monitor or ("val_loss" if val is not None else "train_loss")
    if monitor not in known:
        raise ValueError(f"monitor must be one of {known}; got {monitor!r}.")

    mesh = _sweep_mesh(mesh, devices)
    members_axis = mesh is not None and _MEMBERS in mesh.axis_names
    data_split = mesh is not None and _DATA in mesh.axis_names
    layouts = {}
    if data_split:
        _sharding.check_divisible(batch_size, train[0].shape[0], mesh, _DATA)
        split_batch, replicate = _sharding.layouts(mesh, _DATA)
        layouts = dict(split_batch=split_batch, replicate=replicate)

    traced_reads = set()
    member_run = _make_member_run(
        network,
        loss,
        optimizer,
        input_shape=train[0].shape[1:],
        epochs=epochs,
        batch_size=batch_size,
        mode=mode,
        monitor=monitor,
        patience=epochs + 1 if patience is None else patience,
        min_delta=min_delta,
        has_val=val is not None,
        has_test=test is not None,
        reads=traced_reads,
        **layouts,
    )
    empty = jnp.zeros((0,))
    data = (*train, *(val or (empty, empty)), *(test or (empty, empty)))
    # train.fit's shuffle stream for key(data_seed), shared by every member;
    # passed as its raw uint32 data, which places like any array.
    data_key = jax.random.split(jax.random.split(jax.random.key(data_seed))[1])[1]
    data_key = jax.random.key_data(data_key)
    if data_split:
        # The data once on every device, as train.data_parallel places it.
        data_key, *data = _replicated((data_key, *data), mesh)
    home = None
    if mesh is None:
        # One device: the one given (devices=[d]), else the default one.
        home = (jax.local_devices() if devices is None else list(devices))[0]
        data_key, *data = jax.device_put((data_key, *data), home)

    def members(hp, data_key, *data):
        if trace_counter is not None:
            trace_counter()
        data_key = jax.random.wrap_key_data(data_key)
        return jax.vmap(
            member_run,
            in_axes=(0, None) + (None,) * len(data),
            # With a data axis, the members axis (if any) splits every
            # member-batched value: GSPMD lays out both.
            spmd_axis_name=_MEMBERS if data_split and members_axis else None,
        )(hp, data_key, *data)

    shards = mesh.shape[_MEMBERS] if members_axis else 1
    programs = {1: jax.jit(members)}
    if members_axis and not data_split:
        programs[shards] = jax.jit(
            jax.shard_map(
                members,
                mesh=mesh,
                in_specs=(PartitionSpec(_MEMBERS), PartitionSpec())
                + (PartitionSpec(),) * len(data),
                out_specs=PartitionSpec(_MEMBERS),
                # Members are independent: nothing crosses devices, so the
                # varying-axis bookkeeping of scan carries (init values such
                # as zero biases do not depend on the member) is not needed.
                check_vma=False,
            )
        )
    elif members_axis:
        programs[shards] = programs[1]
    compiled = {}

    def prepare(hyperparams):
        """Checks every member concretely; the program and its stacked inputs."""
        if not isinstance(hyperparams, Hyperparams):
            raise TypeError(
                f"hyperparams must come from sweep.grid(...) or sweep.paired(...); "
                f"got {type(hyperparams).__name__}."
            )
        values = {k: _as_values(k, v) for k, v in hyperparams.values.items()}
        size = hyperparams.size
        if any(len(v) != size for v in values.values()):
            raise ValueError(
                f"hyperparams of size {size} must hold {size} values a name; got "
                f"{ {k: len(v) for k, v in values.items()} }."
            )
        values.setdefault("seed", np.zeros(size, np.int64))
        reads = set()
        checked = Hyperparams(values, (size,))
        for i in range(size):
            _build(network, optimizer, checked.member(i), reads)
        # A single member is not split over a members axis alone: it runs on
        # one device (padding it would only repeat it).
        split = shards if size > 1 or data_split else 1
        padded = -(-size // split) * split
        # Pad with copies of member 0 so every device gets as many; dropped below.
        stacked = {
            k: jnp.asarray(
                np.concatenate([v, np.repeat(v[:1], padded - size)]).astype(
                    np.uint32 if k == "seed" else np.float32
                )
            )
            for k, v in values.items()
        }
        if data_split:
            stacked = _replicated(stacked, mesh)
        if home is not None:
            stacked = jax.device_put(stacked, home)
        return programs[split], stacked, reads

    def build(hyperparams: Hyperparams):
        """The stacked values and the (lowered, compiled) program, traced once.

        The names the factories read while tracing are recorded with the
        program, so ``lower`` first and ``sweep_fn`` after check the same.
        """
        program, stacked, reads = prepare(hyperparams)
        signature = (
            id(program),
            tuple((k, v.shape, v.dtype) for k, v in stacked.items()),
        )
        if signature not in compiled:
            traced_reads.clear()
            lowered = program.lower(stacked, data_key, *data)
            _check_all_read(hyperparams.names, reads | traced_reads)
            compiled[signature] = (lowered, lowered.compile(), frozenset(traced_reads))
        lowered, executable, more_reads = compiled[signature]
        _check_all_read(hyperparams.names, reads | more_reads)
        return stacked, lowered, executable

    def lower(hyperparams: Hyperparams) -> jax.stages.Lowered:
        return build(hyperparams)[1]

    def sweep_fn(hyperparams: Hyperparams) -> SweepResult:
        stacked, _, executable = build(hyperparams)

        size = hyperparams.size
        out = jax.tree.map(
            lambda a: _gather(a)[:size], executable(stacked, data_key, *data)
        )
        return SweepResult(
            hyperparams=hyperparams,
            history=dict(out["history"]),
            monitor=monitor,
            best_epoch=out["best_epoch"],
            best_metric=out["best_metric"],
            status=[_STATUS[int(s)] for s in out["status"]],
            test=dict(out.get("test", {})),
            best_params=out["best_params"],
            best_state=out["best_state"],
        )

    sweep_fn.lower = lower
    return sweep_fn


def run(
    network: Layer | Callable[[dict], Layer],
    loss: _losses.Loss,
    optimizer: Callable[[dict], optax.GradientTransformation],
    hyperparams: Hyperparams,
    train,
    **options,
) -> SweepResult:
    """Trains every member of ``hyperparams`` in one compiled program.

    Args:
        network: a :class:`~funcnet.layers.Layer`, or ``hp -> Layer`` when the
            network itself has swept hyperparameters (a dropout rate).
        loss: the :class:`~funcnet.losses.Loss`.
        optimizer: ``hp -> optax.GradientTransformation``; ``hp`` maps each
            hyperparameter name to the member's value (a tracer).
        hyperparams: from :func:`grid` or :func:`paired`. ``seed`` (default
            0 for all) seeds each member's init and dropout as
            ``train.fit``'s ``key=jax.random.key(seed)`` does; ``l2`` is the
            L2 strength in the loss. Every other name must be read by
            ``optimizer`` or ``network``.
        train: the training data ``(x, y)``, shared by every member.
        **options: keyword arguments of :func:`make_sweep`:

            * ``val``: validation data ``(x, y)``, evaluated every epoch;
              early stopping watches it.
            * ``test``: test data ``(x, y)``, evaluated on each member's best
              params.
            * ``epochs``: the most epochs a member trains (required).
            * ``batch_size``: the minibatch size (32), or ``None`` for full
              batch.
            * ``mode``: ``"manual"`` (hand-written backward) or ``"autodiff"``.
            * ``monitor``: the metric early stopping watches: by default
              ``"val_loss"`` with validation data, else ``"train_loss"``;
              the ``*_accuracy`` metrics are maximised, losses minimised.
            * ``patience``: epochs without improvement (by more than
              ``min_delta``) before a member stops; ``None`` (the default)
              never stops early.
            * ``min_delta``: the least change that counts as an improvement.
            * ``data_seed``: seeds the minibatch order, shared by all members
              (the order ``train.fit`` draws with ``key(data_seed)``).
            * ``devices``: split the members across these devices; by
              default all local devices when there are several.
            * ``mesh``: a ``jax.sharding.Mesh`` with a ``"members"`` axis
              (split the members), a ``"data"`` axis (split every
              minibatch), or both.
            * ``trace_counter``: called each time the program is traced.

    Returns:
        A :class:`SweepResult`.

    Raises:
        TypeError, ValueError, KeyError: as :func:`make_sweep` and its
            ``sweep_fn`` do, before any training.
    """
    return make_sweep(network, loss, optimizer, train, **options)(hyperparams)


__all__ = ["Hyperparams", "SweepResult", "grid", "make_sweep", "paired", "run"]
