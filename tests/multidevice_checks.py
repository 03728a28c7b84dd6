"""Runs on faked CPU devices; tests/test_multidevice.py starts it.

The device count must be fixed before JAX starts, so these checks live in
their own processes:

``multidevice_checks.py FOLDER`` (``XLA_FLAGS=...device_count=4``)
    the 4-device checks; leaves in ``FOLDER/four`` a checkpoint of a
    data-parallel run after 2 epochs.
``multidevice_checks.py --continue-on-one FOLDER`` (one device)
    resumes that checkpoint to 4 epochs.

Each prints its figures as JSON; the pytest side asserts on them.
"""

import json
import re
import shutil
import sys

import jax
import jax.numpy as jnp
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


SPLITS = data.load_digits()
TRAIN = data.Dataset(SPLITS.train.x[:320], SPLITS.train.y[:320])
VAL = data.Dataset(SPLITS.val.x[:128], SPLITS.val.y[:128])
LOSS = losses.softmax_cross_entropy


def fit(net, optimizer, *, mesh, epochs, **kwargs):
    return train.fit(
        net,
        LOSS,
        optimizer,
        TRAIN,
        VAL,
        epochs=epochs,
        batch_size=32,
        key=jax.random.key(0),
        mesh=mesh,
        **kwargs,
    )


def checkpoint_model():
    """The network and optimizer of the checkpoint checks."""
    return layers.mlp([64, 32, 10], "relu"), optim.adam(1e-3)


def as_lists(tree):
    return [np.asarray(leaf).tolist() for leaf in jax.tree.leaves(tree)]


def compiled_epoch(mesh):
    """The optimized HLO of a data-parallel epoch of the digits mlp, batch 32."""
    net, optimizer = layers.mlp([64, 32, 10], "tanh"), optim.sgd(0.05)
    state = train.init_train_state(net, optimizer, key=jax.random.key(0))
    epoch = train.make_epoch(net, LOSS, optimizer, batch_size=32, mesh=mesh)
    x, y = jnp.asarray(TRAIN.x), jnp.asarray(TRAIN.y)
    if mesh is not None:
        state, x, y = train.data_parallel(state, x, y, mesh=mesh)
    hlo = epoch.lower(state, x, y).compile().as_text()
    reduced = [
        re.findall(r"f32\[[\d,]*\]", line.split("=", 1)[1].split("all-reduce(")[0])
        for line in hlo.splitlines()
        if "all-reduce(" in line
    ]
    return {
        "all_reduces": len(reduced),
        "reduced_shapes": sorted({shape for shapes in reduced for shape in shapes}),
        "param_shapes": sorted(
            {
                f"f32[{','.join(map(str, p.shape))}]"
                for p in jax.tree.leaves(state.params)
            }
        ),
        "batch_shapes": sorted(set(re.findall(r"f32\[\d+,64\]", hlo))),
    }


def main(folder):
    assert len(jax.devices()) == 4, jax.devices()
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    train_data, val_data, loss = TRAIN, VAL, LOSS
    results = {}

    # the compiled data-parallel epoch all-reduces the gradients
    results["hlo"] = {"four": compiled_epoch(mesh), "one": compiled_epoch(None)}

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

    # a checkpoint saved from 4 devices, for a process of 1 to continue; and
    # the one-device continuation here, from a copy, to compare with
    net, optimizer = checkpoint_model()
    fit(net, optimizer, mesh=mesh, epochs=2, checkpoint_dir=f"{folder}/four")
    shutil.copytree(f"{folder}/four", f"{folder}/here")
    here = fit(
        net,
        optimizer,
        mesh=None,
        epochs=4,
        checkpoint_dir=f"{folder}/here",
        resume=True,
    )
    straight = fit(net, optimizer, mesh=mesh, epochs=4)
    results["checkpoint"] = {
        "here": continuation(here),
        "straight": continuation(straight),
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


def continuation(result):
    """The figures of a 4-epoch run, for comparisons across processes."""
    return {
        "params": as_lists(result.train_state.params),
        "opt_state": as_lists(result.train_state.opt_state),
        "val_loss": result.history["val_loss"].tolist(),
        "devices": len(result.train_state.params[0]["W"].sharding.device_set),
    }


def continue_on_one(folder):
    """Resumes the 4-device checkpoint in this process of one device."""
    assert len(jax.devices()) == 1, jax.devices()
    net, optimizer = checkpoint_model()
    path = f"{folder}/four/{train.CHECKPOINT_NAME}"
    saved_epoch = checkpoint.read_metadata(path)["epoch"]
    resumed = fit(
        net,
        optimizer,
        mesh=None,
        epochs=4,
        checkpoint_dir=f"{folder}/four",
        resume=True,
    )
    json.dump({"saved_epoch": saved_epoch, **continuation(resumed)}, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "--continue-on-one":
        continue_on_one(sys.argv[2])
    else:
        main(sys.argv[1])
