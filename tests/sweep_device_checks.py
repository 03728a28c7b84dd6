"""Runs sweeps on 4 faked CPU devices; tests/test_sweep_devices.py starts it.

The device count must be fixed before JAX starts, so these checks live in
their own process (``XLA_FLAGS=--xla_force_host_platform_device_count=4``).
Each check prints its figures as JSON; the pytest side asserts on them.

``python sweep_device_checks.py multiprocess ID PORT`` is instead process
``ID`` of two (2 faked devices each) that meet at ``127.0.0.1:PORT`` and
sweep over a mesh of all 4 devices; it prints the results it got.
"""

import json
import sys

import jax
import numpy as np
from jax.sharding import Mesh

from funcnet import data, layers, losses, optim, sweep


def max_rel(a, b):
    """Max over leaves of max |a - b| / max |b| (NaN where both are NaN)."""
    errors = []
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        assert np.array_equal(np.isnan(x), np.isnan(y))
        x, y = np.nan_to_num(x), np.nan_to_num(y)
        errors.append(float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-30)))
    return max(errors)


def compare(result, single):
    return {
        "params": max_rel(result.best_params, single.best_params),
        "history": max_rel(result.history, single.history),
        "test": max_rel(result.test, single.test),
        "best_epoch_equal": result.best_epoch.tolist() == single.best_epoch.tolist(),
        "status": result.status,
    }


def main():
    devices = jax.devices()
    assert len(devices) == 4, devices
    splits = data.load_digits()
    train = data.Dataset(splits.train.x[:320], splits.train.y[:320])
    val = data.Dataset(splits.val.x[:128], splits.val.y[:128])
    test = data.Dataset(splits.test.x[:128], splits.test.y[:128])
    net = layers.mlp([64, 16, 10], "tanh", dropout=0.1)
    loss = losses.softmax_cross_entropy

    def momentum_of(hp):
        return optim.sgd(hp["learning_rate"], momentum=0.9)

    def make(**where):
        return sweep.make_sweep(
            net,
            loss,
            momentum_of,
            train,
            val=val,
            test=test,
            epochs=2,
            batch_size=32,
            **where,
        )

    # Six members: not a multiple of 4, so the members split pads.
    hp = sweep.paired(learning_rate=np.logspace(-3, -1, 6), seed=list(range(6)))
    single = make(devices=devices[:1])(hp)
    results = {}
    meshes = {
        "data": Mesh(np.array(devices), ("data",)),
        "members": Mesh(np.array(devices), ("members",)),
        "members_data": Mesh(np.array(devices).reshape(2, 2), ("members", "data")),
    }
    for name, mesh in meshes.items():
        sweep_fn = make(mesh=mesh)
        result = sweep_fn(hp)
        hlo = sweep_fn.lower(hp).compile().as_text()
        results[name] = compare(result, single) | {
            "all_reduce": "all-reduce" in hlo,
            # Per-device shapes: a member's first W (6 members, or 3 on each
            # half of a members axis), a minibatch (32, or 8 or 16 a device).
            "shapes": {
                s: s in hlo
                for s in ("f32[6,64,16]", "f32[3,64,16]", "f32[2,64,16]")
                + ("f32[32,64]", "f32[16,64]", "f32[8,64]")
            },
        }
    # One device given: the sweep runs there, not on the default device.
    on_third = make(devices=[devices[2]])
    results["one_given_device"] = compare(on_third(hp), single) | {
        "input_devices": sorted(
            {d.id for s in jax.tree.leaves(on_third.lower(hp).compile().input_shardings)
             for d in s.device_set}
        ),
    }  # fmt: skip
    # The devices= spelling splits the members too.
    results["devices"] = compare(make(devices=devices)(hp), single)
    # One member on a data mesh still splits its batches.
    one = sweep.paired(learning_rate=[0.01], seed=[3])
    results["data_one_member"] = compare(
        make(mesh=meshes["data"])(one), make(devices=devices[:1])(one)
    )

    errors = {}
    for name, attempt in {
        "indivisible": lambda: sweep.make_sweep(
            net,
            loss,
            momentum_of,
            train,
            epochs=1,
            batch_size=30,
            mesh=meshes["data"],
        ),  # fmt: skip
        "axis": lambda: sweep.make_sweep(
            net,
            loss,
            momentum_of,
            train,
            epochs=1,
            mesh=Mesh(np.array(devices), ("batch",)),
        ),  # fmt: skip
    }.items():
        try:
            attempt()
            errors[name] = None
        except ValueError as error:
            errors[name] = str(error)
    results["errors"] = errors
    # The reference of test_sweep_devices' two-process sweep.
    results["small_sweep_one_device"] = small_sweep(devices=devices[:1])
    print(json.dumps(results))


def small_sweep(mesh=None, devices=None):
    """Six members of a tiny classifier, for the multi-process check."""
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = (x.sum(axis=1) > 0).astype(np.int32)
    result = sweep.run(
        layers.mlp([4, 8, 2], "tanh"),
        losses.softmax_cross_entropy,
        lambda hp: optim.sgd(hp["learning_rate"]),
        sweep.paired(learning_rate=[0.01, 0.03, 0.1, 0.3, 0.5, 0.05]),
        (x, y),
        epochs=2,
        batch_size=16,
        mesh=mesh,
        devices=devices,
    )
    return {
        "train_loss": result.history["train_loss"].tolist(),
        "W": result.best_params[0]["W"].tolist(),
    }


def multiprocess(process_id, port):
    # CPU devices of several processes compute together through gloo.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=2,
        process_id=process_id,
    )
    devices = jax.devices()
    assert len(devices) == 4 and len(jax.local_devices()) == 2, devices
    results = {}
    for axis in ("members", "data"):
        results[axis] = small_sweep(mesh=Mesh(np.array(devices), (axis,)))
    print(json.dumps(results))


if __name__ == "__main__":
    if sys.argv[1:2] == ["multiprocess"]:
        multiprocess(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
