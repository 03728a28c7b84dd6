"""Runs on 4 faked CPU devices; tests/test_multidevice.py starts it.

The device count must be fixed before JAX starts, so these checks live in
their own process (``XLA_FLAGS=--xla_force_host_platform_device_count=4``).
Each check prints its figures; the pytest side asserts on them.
"""

import json
import sys
import tempfile

import jax
import numpy as np

from funcnet import checkpoint, data, layers, losses, optim, sweep, train


def leaf_errors(a, b):
    """Per leaf, max |a - b| over the leaf's scale max |b|; and bitwise equality."""
    errors, bitwise = [], True
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        bitwise &= bool(np.array_equal(x, y))
        errors.append(float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-30)))
    return max(errors), bitwise


def main():
    assert len(jax.devices()) == 4, jax.devices()
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    splits = data.load_digits()
    train_data = data.Dataset(splits.train.x[:320], splits.train.y[:320])
    val_data = data.Dataset(splits.val.x[:128], splits.val.y[:128])
    loss = losses.softmax_cross_entropy
    results = {}

    def fit(net, optimizer, *, mesh, epochs, **kwargs):
        return train.fit(
            net,
            loss,
            optimizer,
            train_data,
            val_data,
            epochs=epochs,
            batch_size=32,
            key=jax.random.key(0),
            mesh=mesh,
            **kwargs,
        )

    # data parallel vs one device, plain and with batch norm
    for name, net in {
        "plain": layers.mlp([64, 32, 10], "tanh"),
        "batch_norm": layers.mlp([64, 32, 10], "relu", batch_norm=True),
    }.items():
        optimizer = optim.sgd(0.05, momentum=0.9)
        four = fit(net, optimizer, mesh=mesh, epochs=3)
        one = fit(net, optimizer, mesh=None, epochs=3)
        error, bitwise = leaf_errors(four.train_state.params, one.train_state.params)
        state_error = (
            leaf_errors(four.train_state.state, one.train_state.state)[0]
            if jax.tree.leaves(one.train_state.state)
            else 0.0
        )
        sharding = four.train_state.params[0]["W"].sharding
        results[f"dp_{name}"] = {
            "max_rel": error,
            "state_max_rel": state_error,
            "bitwise": bitwise,
            "replicated_on": len(sharding.device_set),
            "val_loss_four": four.history["val_loss"].tolist(),
            "val_loss_one": one.history["val_loss"].tolist(),
        }

    # a sweep of 8 members over 4 devices vs on one
    hp = sweep.paired(learning_rate=np.logspace(-3, -1, 8), seed=list(range(8)))
    kwargs = dict(val=val_data, epochs=2, batch_size=32)
    net = layers.mlp([64, 16, 10], "tanh")

    def momentum_of(hp):
        return optim.sgd(hp["learning_rate"], momentum=0.9)

    split = sweep.run(
        net, loss, momentum_of, hp, train_data, devices=jax.devices(), **kwargs
    )
    single = sweep.run(
        net, loss, momentum_of, hp, train_data, devices=jax.devices()[:1], **kwargs
    )
    error, bitwise = leaf_errors(split.best_params, single.best_params)
    results["sweep"] = {
        "max_rel": error,
        "bitwise": bitwise,
        "val_max_rel": float(
            np.max(
                np.abs(split.history["val_loss"] - single.history["val_loss"])
                / np.abs(single.history["val_loss"])
            )
        ),
    }

    # a checkpoint saved from 4 devices restores on 1 and continues equal
    net, optimizer = layers.mlp([64, 32, 10], "relu"), optim.adam(1e-3)
    with tempfile.TemporaryDirectory() as folder:
        fit(net, optimizer, mesh=mesh, epochs=2, checkpoint_dir=folder)
        resumed = fit(
            net, optimizer, mesh=None, epochs=4, checkpoint_dir=folder, resume=True
        )
        saved = f"{folder}/{train.CHECKPOINT_NAME}"
        template = train.init_train_state(net, optimizer, key=jax.random.key(0))
        restored, _ = checkpoint.restore(
            saved, {"train_state": template, "best": _best_template(template)}
        )
    straight = fit(net, optimizer, mesh=mesh, epochs=4)
    error, _ = leaf_errors(resumed.train_state.params, straight.train_state.params)
    opt_error, _ = leaf_errors(
        resumed.train_state.opt_state, straight.train_state.opt_state
    )
    one_device = restored["train_state"].params[0]["W"].sharding.device_set
    results["checkpoint"] = {
        "max_rel": error,
        "opt_max_rel": opt_error,
        "restored_devices": len(one_device),
        "history_max_rel": float(
            np.max(
                np.abs(resumed.history["val_loss"] - straight.history["val_loss"])
                / straight.history["val_loss"]
            )
        ),
    }

    # an indivisible batch is refused before any work
    try:
        train.fit(
            layers.mlp([64, 10]),
            loss,
            optim.sgd(0.1),
            train_data,
            epochs=1,
            batch_size=30,
            key=jax.random.key(0),
            mesh=mesh,
        )
        results["indivisible"] = None
    except ValueError as error:
        results["indivisible"] = str(error)

    json.dump(results, sys.stdout)


def _best_template(template):
    return (template.params, template.state)


if __name__ == "__main__":
    main()
