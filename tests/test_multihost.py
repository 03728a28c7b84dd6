"""Data-parallel training and checkpoints across two processes (multi-host).

Two local processes, each with 2 faked CPU devices, join through
``jax.distributed`` (a coordinator on 127.0.0.1, gloo collectives on the
CPU) into one 4-device global mesh: they train data-parallel, save a
checkpoint, resume from it, and must agree with each other and with one
process of 4 devices (tests/multihost_worker.py runs each side).

Not bitwise equal to the one-process run: the all-reduce across processes
adds the partial gradients in another order (see test_multidevice.py).
"""

import contextlib
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from funcnet import checkpoint, train

WORKER = os.path.join(os.path.dirname(__file__), "multihost_worker.py")
TIMEOUT = 180


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(args, devices, log):
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.path.dirname(os.path.dirname(WORKER)),
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    }
    return subprocess.Popen(
        [sys.executable, WORKER, *args], env=env, stdout=log, stderr=log
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multihost")
    port = str(_free_port())
    sides = {
        "p0": (["0", port, str(folder / "ckpt")], 2),
        "p1": (["1", port, str(folder / "ckpt")], 2),
        "single": (["single", "-", "-"], 4),
    }
    processes = {}
    with contextlib.ExitStack() as stack:
        try:
            for name, (args, devices) in sides.items():
                log = stack.enter_context(open(folder / f"{name}.log", "w"))
                out = str(folder / f"{name}.json")
                processes[name] = _start([*args, out], devices, log)
            for name, process in processes.items():
                try:
                    process.wait(timeout=TIMEOUT)
                except subprocess.TimeoutExpired:
                    pytest.fail(f"{name} did not finish in {TIMEOUT} s (a hang?)")
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()
    for name, process in processes.items():
        output = (folder / f"{name}.log").read_text()
        assert process.returncode == 0, f"{name} failed:\n{output[-4000:]}"
    figures = {
        name: json.loads((folder / f"{name}.json").read_text()) for name in sides
    }
    return figures, folder / "ckpt"


def _leaves_close(a, b, rtol):
    """Per leaf, max |a - b| within ``rtol`` of the leaf's scale max |b|.

    The measure of test_multidevice.py: entries near zero (Adam's moments)
    carry the reordered sums' rounding at the scale of the whole leaf.
    """
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        assert x.shape == y.shape
        error = np.abs(x - y).max(initial=0.0)
        assert error <= rtol * np.abs(y).max(initial=0.0), (i, error)


def test_two_processes_form_one_four_device_mesh(runs):
    figures, _ = runs
    for name, index in (("p0", 0), ("p1", 1)):
        r = figures[name]
        assert (r["process_index"], r["process_count"]) == (index, 2)
        assert (r["global_devices"], r["local_devices"]) == (4, 2)
        assert r["spans_devices"] == 4
    assert figures["single"]["process_count"] == 1


def test_resume_across_processes_continues_from_the_checkpoint(runs):
    figures, folder = runs
    for name in ("p0", "p1"):
        assert figures[name]["saved_epoch_seen"] == 2
        assert figures[name]["resumed_epochs"] == [3, 4]
        assert figures[name]["first_val_loss"] == figures[name]["val_loss"][:2]
        assert figures[name]["step"] == 4 * 8
    assert checkpoint.read_metadata(folder / train.CHECKPOINT_NAME)["epoch"] == 4
    assert sorted(p.name for p in folder.iterdir()) == [train.CHECKPOINT_NAME]


def test_both_processes_hold_the_same_replicated_state(runs):
    figures, _ = runs
    for field in ("params", "best_params", "opt_state", "val_loss"):
        assert figures["p0"][field] == figures["p1"][field], field


def test_two_processes_agree_with_one_process_of_four_devices(runs):
    figures, _ = runs
    single = figures["single"]
    for name in ("p0", "p1"):
        for field in ("params", "best_params", "opt_state"):
            _leaves_close(figures[name][field], single[field], rtol=1e-5)
        np.testing.assert_allclose(figures[name]["val_loss"], single["val_loss"], 1e-5)
        assert figures[name]["step"] == single["step"]
