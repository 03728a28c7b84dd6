"""Each benchmark script runs at a tiny size (CI never runs the real ones)."""

import pathlib
import re
import sys

import pytest

from tests._subprocess import run_python

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import run_all  # noqa: E402


@pytest.mark.parametrize("script", list(run_all.SCRIPTS))
def test_benchmark_runs_at_a_tiny_size(script):
    out = run_python(
        BENCHMARKS / script, *run_all.SCRIPTS[script], cwd=BENCHMARKS, timeout=300
    )
    if out.startswith("skipped"):  # the optional torch comparison
        return
    # Every benchmark names the JAX it ran on and prints figures.
    assert "jax 0." in out, out
    assert re.search(r"\d+\.\d+", out), out


def test_the_runner_knows_every_benchmark():
    scripts = {
        p.name
        for p in BENCHMARKS.glob("*.py")
        if not p.name.startswith("_") and p.name != "run_all.py"
    }
    assert scripts <= set(run_all.SCRIPTS), scripts - set(run_all.SCRIPTS)


def test_true_flops_by_hand():
    # 64-128-64-10 at batch 2: 6 * 2 * (8192 + 8192 + 640) less 2 * 2 * 8192.
    from bench_step import true_flops

    assert true_flops([64, 128, 64, 10], 2) == 6 * 2 * 17024 - 4 * 8192
