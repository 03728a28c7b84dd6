"""One process of tests/test_multihost.py, which starts it; not a test itself.

``multihost_worker.py PROCESS_ID PORT FOLDER OUT``: process PROCESS_ID of
two, started with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``,
joins the other through ``jax.distributed`` (coordinator on 127.0.0.1:PORT,
gloo collectives on the CPU), trains data-parallel on the 4-device global
mesh for 2 epochs with a checkpoint in FOLDER, resumes to 4 epochs, and
writes its figures as JSON to OUT. Process 0's checkpoint writes are
slowed down by a second, so that a process returning from a save before
the file is written would show.

``multihost_worker.py single - - OUT``: the reference, one process with 4
faked devices, 4 epochs straight.
"""

import json
import os
import sys
import time

import jax
import numpy as np

from funcnet import checkpoint

EPOCHS, FIRST = 4, 2


def fit(mesh, epochs, **kwargs):
    from funcnet import data, layers, losses, optim, train

    splits = data.load_digits()
    return train.fit(
        layers.mlp([64, 16, 10], "relu"),
        losses.softmax_cross_entropy,
        optim.adam(1e-2),
        data.Dataset(splits.train.x[:256], splits.train.y[:256]),
        data.Dataset(splits.val.x[:64], splits.val.y[:64]),
        epochs=epochs,
        batch_size=32,
        key=jax.random.key(0),
        mesh=mesh,
        early_stopping=train.EarlyStopping("val_loss", patience=10),
        **kwargs,
    )


def slow_writes():
    """Delays process 0's writes, so that a process not waiting for them shows."""
    write = checkpoint._write_npz

    def slow(file, arrays):
        if jax.process_index() == 0:
            time.sleep(1.0)
        write(file, arrays)

    checkpoint._write_npz = slow


def local_values(tree):
    """Each leaf's value as nested lists, from this process's own copy."""
    return [
        np.asarray(leaf.addressable_data(0)).tolist() for leaf in jax.tree.leaves(tree)
    ]


def main(process, port, folder, out):
    if process != "single":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            f"127.0.0.1:{port}",
            num_processes=2,
            process_id=int(process),
            initialization_timeout=60,
        )
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    figures = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "global_devices": len(jax.devices()),
        "local_devices": len(jax.local_devices()),
    }
    if process == "single":
        result = fit(mesh, EPOCHS)
    else:
        slow_writes()
        first = fit(mesh, FIRST, checkpoint_dir=folder)
        figures["first_val_loss"] = first.history["val_loss"].tolist()
        # save returns in every process only once process 0 has written.
        path = os.path.join(folder, "checkpoint.npz")
        figures["saved_epoch_seen"] = (
            checkpoint.read_metadata(path)["epoch"] if os.path.isfile(path) else None
        )
        resumed_epochs = []
        result = fit(
            mesh,
            EPOCHS,
            checkpoint_dir=folder,
            resume=True,
            callback=lambda epoch, logs, train_state: resumed_epochs.append(epoch),
        )
        figures["resumed_epochs"] = resumed_epochs
    figures["val_loss"] = result.history["val_loss"].tolist()
    figures["params"] = local_values(result.train_state.params)
    figures["best_params"] = local_values(result.best_params)
    figures["opt_state"] = local_values(result.train_state.opt_state)
    figures["step"] = int(result.train_state.step)
    figures["spans_devices"] = len(
        result.train_state.params[0]["W"].sharding.device_set
    )
    with open(out, "w") as file:
        json.dump(figures, file)


if __name__ == "__main__":
    main(*sys.argv[1:5])
