"""Sweeps: many whole training runs as one compiled program.

A sweep trains ``K`` members that share the data and differ in their
hyperparameters (learning rate, weight decay, dropout rate, momentum,
betas, ...) and in their init seed. The whole run, every epoch of every
member, is one ``jit`` of a ``vmap`` over the members of a ``lax.scan`` over
epochs of a ``lax.scan`` over minibatches: one compilation, whatever ``K``.

The members share the order of the minibatches (drawn from ``data_seed``),
so a batch of inputs is the same for all of them and the first layer's
products of every member become one wide matrix product under ``vmap``. With
several devices (``jax.local_devices()``; on the CPU, start Python with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``) the members are split
across them, each device training its share.

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
import pathlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnet import grad as _grad
from funcnet import losses as _losses
from funcnet.data import batch_indices
from funcnet.layers import Layer

# hyperparameters


@dataclass(frozen=True)
class Hyperparams:
    """The hyperparameters of ``K`` members, one array of ``K`` values a name.

    ``shape`` is the grid's shape (``(K,)`` for paired lists), so that a 2-D
    grid can be drawn as a heatmap.
    """

    values: Mapping[str, np.ndarray]
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.values)

    def member(self, i: int) -> dict[str, Any]:
        """Member ``i``'s hyperparameters as Python numbers."""
        return {name: v[i].item() for name, v in self.values.items()}


def _as_values(name, values):
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"hyperparameter {name} must be a non-empty list of values; got {values!r}."
        )
    if name == "seed":
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"seed must list integers; got {values!r}.")
        return array.astype(np.int32)
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"hyperparameter {name} must list numbers; got {values!r}.")
    return array.astype(np.float32)


def grid(**lists: Sequence) -> Hyperparams:
    """Every combination of the lists (the first name varies slowest).

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
):
    """The training run of one member, a pure function to ``vmap``."""
    maximize = monitor.endswith("accuracy")

    def run(hp, data_key, train_x, train_y, val_x, val_y, test_x, test_y):
        net = network(hp) if not isinstance(network, Layer) else network
        value_and_grad = _grad.value_and_grad(
            net, loss, mode=mode, l2=hp.get("l2", 0.0)
        )
        tx = optimizer(hp)
        member_key = jax.random.key(hp["seed"])
        init_key, dropout_key = jax.random.split(member_key)
        _, params, state = net.init(init_key, input_shape)
        opt_state = tx.init(params)
        n = train_x.shape[0]

        def evaluate(params, state, x, y):
            outputs, _, _ = net.forward(params, state, x, train=False)
            metrics = {"loss": loss(outputs, y)}
            if loss.classification:
                metrics["accuracy"] = jnp.mean(_losses.accuracy(outputs, y))
            return metrics

        def train_step(carry, batch):
            params, state, opt_state, step, active = carry
            idx, mask = batch
            key = jax.random.fold_in(dropout_key, step)
            (value, aux), grads = value_and_grad(
                params, state, train_x[idx], train_y[idx], key=key, mask=mask
            )
            updates, new_opt_state = tx.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            finite = jnp.isfinite(value)
            active_now = active & finite
            params = _tree_where(active_now, new_params, params)
            state = _tree_where(active_now, aux.state, state)
            opt_state = _tree_where(active_now, new_opt_state, opt_state)
            metrics = {"loss": value, "count": jnp.sum(mask)}
            if loss.classification:
                correct = _losses.accuracy(aux.outputs, train_y[idx])
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
            idx, mask = batch_indices(
                jax.random.fold_in(data_key, epoch_index), n, batch_size
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
        """The index of the member with the best monitored metric."""
        scores = np.where(np.isfinite(self.best_metric), self.best_metric, np.nan)
        if np.all(np.isnan(scores)):
            raise ValueError("no member has a finite best metric: all diverged.")
        if self.monitor.endswith("accuracy"):
            return int(np.nanargmax(scores))
        return int(np.nanargmin(scores))

    def rows(self) -> list[dict[str, Any]]:
        """One dict per member: hyperparameters, best epoch and metric, status."""
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
        """The rows as an aligned text table (epochs counted from 1)."""
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
        """Writes hyperparameters, histories, results and status as JSON."""

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

        Needs matplotlib (the ``experiments`` extra). Returns the PNG paths.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

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
            ax.set(xscale="log", xlabel=x, ylabel=f"best {self.monitor}")
            if len(groups) > 1:
                ax.legend(fontsize="small")
            ax.grid(alpha=0.3)
            paths.append(folder / f"sweep_{self.monitor}_vs_{x}.png")
            fig.tight_layout()
            fig.savefig(paths[-1], dpi=100)
            plt.close(fig)

        if len(self.hyperparams.shape) == 2:
            rows_name, cols_name = self.hyperparams.names
            shape = self.hyperparams.shape
            grid_values = self.best_metric.reshape(shape)
            fig, ax = plt.subplots(figsize=(7, 4.5))
            image = ax.imshow(grid_values.T, aspect="auto", origin="lower")
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

    Takes the arguments of :func:`run` but the hyperparameters, and returns
    ``sweep_fn(hyperparams) -> SweepResult``. Calls with the same number of
    members and the same hyperparameter names reuse one compilation.
    """
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
    )
    empty = jnp.zeros((0,))
    data = (*train, *(val or (empty, empty)), *(test or (empty, empty)))
    data_key = jax.random.key(data_seed)

    def members(hp, data_key, *data):
        if trace_counter is not None:
            trace_counter()
        return jax.vmap(member_run, in_axes=(0, None) + (None,) * len(data))(
            hp, data_key, *data
        )

    if mesh is not None and devices is not None:
        raise ValueError("give devices or mesh, not both; both say where members go.")
    if mesh is not None:
        devices = list(mesh.devices.flat)
    devices = list(jax.local_devices() if devices is None else devices)
    programs = {1: jax.jit(members)}
    if len(devices) > 1:
        from jax.sharding import Mesh, PartitionSpec

        mesh = Mesh(np.array(devices), ("members",))
        programs[len(devices)] = jax.jit(
            jax.shard_map(
                members,
                mesh=mesh,
                in_specs=(PartitionSpec("members"), PartitionSpec())
                + (PartitionSpec(),) * len(data),
                out_specs=PartitionSpec("members"),
                # Members are independent: nothing crosses devices, so the
                # varying-axis bookkeeping of scan carries (init values such
                # as zero biases do not depend on the member) is not needed.
                check_vma=False,
            )
        )

    def sweep_fn(hyperparams: Hyperparams) -> SweepResult:
        if not isinstance(hyperparams, Hyperparams):
            raise TypeError(
                f"hyperparams must come from sweep.grid(...) or sweep.paired(...); "
                f"got {type(hyperparams).__name__}."
            )
        values = dict(hyperparams.values)
        values.setdefault("seed", np.zeros(hyperparams.size, np.int32))
        size = hyperparams.size
        shards = len(devices) if len(devices) > 1 and size > 1 else 1
        padded = -(-size // shards) * shards
        # Pad with copies of member 0 so every device gets as many; dropped below.
        stacked = {
            k: jnp.asarray(np.concatenate([v, np.repeat(v[:1], padded - size)]))
            for k, v in values.items()
        }
        out = jax.device_get(programs[shards](stacked, data_key, *data))
        out = jax.tree.map(lambda a: np.asarray(a)[:size], out)
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
            0 for all) seeds each member's init and dropout; ``l2`` is the L2
            strength in the loss.
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
            * ``data_seed``: seeds the minibatch order, shared by all members.
            * ``devices``: split the members across these devices; by
              default all local devices when there are several.
            * ``mesh``: or split them across every device of this
              ``jax.sharding.Mesh``.
            * ``trace_counter``: called each time the program is traced.

    Returns:
        A :class:`SweepResult`.
    """
    return make_sweep(network, loss, optimizer, train, **options)(hyperparams)


__all__ = ["Hyperparams", "SweepResult", "grid", "make_sweep", "paired", "run"]
