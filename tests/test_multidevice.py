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
import pathlib

import numpy as np
import pytest

from tests._subprocess import run_python

SCRIPT = pathlib.Path(__file__).with_name("multidevice_checks.py")


def _run_checks(*args, devices):
    return json.loads(run_python(SCRIPT, *args, devices=devices))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("multidevice")


@pytest.fixture(scope="module")
def results(folder):
    return _run_checks(str(folder), devices=4)


@pytest.fixture(scope="module")
def continued_on_one(results, folder):
    # After the 4-device process has left its checkpoint in folder/four.
    return _run_checks("--continue-on-one", str(folder), devices=1)


def _max_rel(a, b):
    """Per leaf, max |a - b| over the leaf's scale max |b|; the largest."""
    errors = []
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        errors.append(np.abs(x - y).max() / max(np.abs(y).max(), 1e-30))
    return max(errors)


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


def test_data_parallel_epoch_all_reduces_the_gradients(results):
    # In the compiled epoch each device works on 8 of the 32 examples of a
    # step, and an all-reduce sums the gradient of every param; on one
    # device there is neither. A batch split that did nothing would leave
    # 32-row batches and no all-reduce.
    four, one = results["hlo"]["four"], results["hlo"]["one"]
    assert four["all_reduces"] >= 1
    assert set(four["param_shapes"]) <= set(four["reduced_shapes"])
    assert "f32[8,64]" in four["batch_shapes"]
    assert "f32[32,64]" not in four["batch_shapes"]
    assert one["all_reduces"] == 0
    assert "f32[32,64]" in one["batch_shapes"]


def test_checkpoint_from_four_devices_continues_on_one(results, continued_on_one):
    # Saved after epoch 2 by the 4-device process, resumed to epoch 4 in a
    # process with one device: the same as the one-device continuation in
    # the 4-device process (bitwise: the same computation on one CPU
    # device), and as 4 data-parallel epochs straight (to rounding).
    one = continued_on_one
    here = results["checkpoint"]["here"]
    straight = results["checkpoint"]["straight"]
    assert one["saved_epoch"] == 2
    assert (one["devices"], here["devices"], straight["devices"]) == (1, 1, 4)
    for field in ("params", "opt_state", "val_loss"):
        assert _max_rel(one[field], here[field]) == 0.0, field
        assert _max_rel(one[field], straight[field]) < 1e-5, field


def test_indivisible_batch_names_both_numbers(results):
    message = results["indivisible"]
    assert message is not None
    assert "batch_size=30 is not divisible" in message
    assert "4 devices" in message


def test_data_parallel_benchmark_fakes_only_the_devices_asked_for():
    # "--repeats 3" once made the benchmark fake 3 devices: every number
    # after --devices was read as a device count before JAX started.
    benchmarks = SCRIPT.parents[1] / "benchmarks"
    out = run_python(
        "data_parallel.py", "--devices", 2, "--repeats", 3, cwd=benchmarks, timeout=300
    )
    assert "; 2 devices" in out, out
    assert "median of 3 paired ratios" in out
