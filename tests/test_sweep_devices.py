"""Sweeps on 4 CPU devices: members split, every batch split, or both.

JAX fixes its device count when it starts, so the sweeps run in a child
process with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``
(tests/sweep_device_checks.py); the assertions are here. Each layout is
compared with the same six members on one device.

Splitting the members agrees to float32 rounding (2.4e-7 seen): each device
runs the single-device program on its own members, compiled for its share.
Splitting each batch is not bitwise: every device sums
the gradient of its share and an all-reduce adds the partial sums, another
order of float additions than one device's; it agrees to float32 rounding.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests._subprocess import run_python

SCRIPT = pathlib.Path(__file__).with_name("sweep_device_checks.py")


@pytest.fixture(scope="module")
def results():
    out = run_python(SCRIPT, devices=4, timeout=900)
    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize(
    "layout",
    [
        "data",
        "members",
        "members_data",
        "devices",
        "data_one_member",
        "one_given_device",
    ],
)
def test_every_layout_equals_one_device(results, layout):
    r = results[layout]
    assert r["params"] < 1e-5
    assert r["history"] < 1e-5
    assert r["test"] < 1e-5
    assert r["best_epoch_equal"]
    assert set(r["status"]) == {"finished"}


def test_one_given_device_is_where_the_sweep_runs(results):
    assert results["one_given_device"]["input_devices"] == [2]


def test_a_data_axis_splits_every_batch_and_all_reduces(results):
    r = results["data"]
    assert r["all_reduce"]
    # All six members on each device, each with a quarter of the batch.
    assert r["shapes"]["f32[6,64,16]"] and r["shapes"]["f32[8,64]"]
    assert not r["shapes"]["f32[32,64]"]


def test_a_members_axis_splits_the_members_and_nothing_else(results):
    r = results["members"]
    assert not r["all_reduce"]
    # Six members padded to eight, two a device, each on the whole batch.
    assert r["shapes"]["f32[2,64,16]"] and r["shapes"]["f32[32,64]"]


def test_both_axes_split_members_and_batches(results):
    r = results["members_data"]
    assert r["all_reduce"]
    assert r["shapes"]["f32[3,64,16]"] and r["shapes"]["f32[16,64]"]
    assert not r["shapes"]["f32[6,64,16]"]


def test_bad_meshes_are_clear_errors(results):
    errors = results["errors"]
    assert "batch_size=30 is not divisible by the 4 devices" in errors["indivisible"]
    assert "'members' axis" in errors["axis"] and "'data' axis" in errors["axis"]
    assert "got the axes ('batch',)" in errors["axis"]


def test_a_mesh_over_two_processes_gives_each_the_whole_result(results):
    # Two processes of 2 faked devices each meet on 127.0.0.1 (gloo for the
    # CPU collectives); a split result is gathered from both.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()
    env["PYTHONPATH"] = str(SCRIPT.parents[1])
    processes = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), "multiprocess", str(i), str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    outputs = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=600)
        finally:
            process.kill()
        assert process.returncode == 0, err[-4000:]
        outputs.append(json.loads(out.splitlines()[-1]))
    single = results["small_sweep_one_device"]
    for output in outputs:
        for axis in ("members", "data"):
            for name, values in output[axis].items():
                np.testing.assert_allclose(values, single[name], rtol=1e-5)
