"""Data-parallel training, split sweeps and sharded checkpoints on 4 CPU devices.

JAX fixes its device count when it starts, so the checks run in a child
process with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``
(tests/multidevice_checks.py); the assertions are here.

Data parallel is not bitwise equal to one device: each device sums the
gradient of its quarter of the batch and the all-reduce adds the four
partial sums, a different order of float additions than one device's
single sum. The results agree to float32 rounding (rtol 1e-5).
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).with_name("multidevice_checks.py")


@pytest.fixture(scope="module")
def results():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["PYTHONPATH"] = str(SCRIPT.parents[1])
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", ["dp_plain", "dp_batch_norm"])
def test_data_parallel_equals_one_device(results, name):
    r = results[name]
    assert r["max_rel"] < 1e-5
    # Batch norm's running statistics use the global batch: GSPMD reduces
    # the mean and variance over the split batch axis across devices.
    assert r["state_max_rel"] < 1e-5
    assert r["replicated_on"] == 4
    for four, one in zip(r["val_loss_four"], r["val_loss_one"], strict=True):
        assert four == pytest.approx(one, rel=1e-5)


def test_sweep_split_over_devices_equals_one_device(results):
    assert results["sweep"]["max_rel"] < 1e-5
    assert results["sweep"]["val_max_rel"] < 1e-5


def test_checkpoint_from_four_devices_continues_on_one(results):
    r = results["checkpoint"]
    assert r["restored_devices"] == 1
    assert r["max_rel"] < 1e-5
    assert r["opt_max_rel"] < 1e-5
    assert r["history_max_rel"] < 1e-5


def test_indivisible_batch_names_both_numbers(results):
    message = results["indivisible"]
    assert message is not None
    assert "batch_size=30 is not divisible" in message
    assert "4 devices" in message


def test_data_parallel_benchmark_fakes_only_the_devices_asked_for():
    # "--repeats 3" once made the benchmark fake 3 devices: every number
    # after --devices was read as a device count before JAX started.
    benchmarks = SCRIPT.parents[1] / "benchmarks"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    done = subprocess.run(
        [sys.executable, "data_parallel.py", "--devices", "2", "--repeats", "3"],
        cwd=benchmarks,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "; 2 devices" in done.stdout, done.stdout
    assert "median of 3 paired ratios" in done.stdout
