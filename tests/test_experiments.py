"""The experiment scripts run end to end at a tiny size and write their files.

Each script runs as a researcher would run it, in its own process (the
digits sweep sets its device count before JAX starts), with flags that make
it small; the defaults stay the full experiment.
"""

import json
import pathlib

import pytest

from tests._subprocess import run_python

ROOT = pathlib.Path(__file__).parents[1]
PNG = b"\x89PNG\r\n\x1a\n"

pytest.importorskip("matplotlib", reason="the docs extra installs matplotlib")


def run_script(name, *args):
    return run_python(ROOT / "experiments" / name, *args)


def test_digits_sweep_prints_its_table_and_writes_json_and_plots(tmp_path):
    out = run_script(
        "digits_sweep.py",
        *("--epochs", 1, "--learning-rates", 2, "--hidden", 8),
        *("--weight-decays", 0.0, 0.1, "--out", tmp_path),
    )
    lines = out.splitlines()
    assert lines[0].startswith("4 members: mlp [64, 8, 10] relu, AdamW")
    header = lines.index(next(line for line in lines if "best_epoch" in line))
    assert lines[header].split() == [
        "learning_rate",
        "weight_decay",
        "best_epoch",
        "best_val_loss",
        "test_accuracy",
        "test_loss",
        "status",
    ]
    rows = [line.split() for line in lines[header + 2 : header + 6]]
    assert [row[:2] for row in rows] == [
        ["0.0001", "0"],
        ["0.0001", "0.1"],
        ["0.3", "0"],
        ["0.3", "0.1"],
    ]
    assert any(line.startswith("best: learning_rate") for line in lines)

    record = json.loads((tmp_path / "sweep.json").read_text())
    assert record["grid_shape"] == [2, 2] and record["monitor"] == "val_loss"
    assert len(record["members"]) == 4
    assert len(record["history"]["val_loss"]) == 4
    for name in (
        "sweep_curves.png",
        "sweep_val_loss_vs_learning_rate.png",
        "sweep_heatmap.png",
    ):
        assert (tmp_path / name).read_bytes()[:8] == PNG, name


def test_gradient_flow_prints_both_nets_and_writes_json_and_plot(tmp_path):
    out = run_script(
        "gradient_flow.py",
        *("--depth", 2, "--width", 8, "--epochs", 2, "--probe", 32),
        *("--out", tmp_path),
    )
    for activation in ("sigmoid", "relu"):
        assert f"{activation}: depth 2, width 8" in out
    assert out.count("epoch  2  loss") == 2
    # The per-layer table of each net: three Dense layers.
    assert out.count("Dense(10)") == 2 and out.count("Dense(8)") == 4

    record = json.loads((tmp_path / "gradient_flow.json").read_text())
    assert sorted(record) == ["relu", "sigmoid"]
    for history in record.values():
        assert len(history["loss"]) == 2
        assert [len(row) for row in history["delta_norm"]] == [3, 3]
    assert (tmp_path / "gradient_flow.png").read_bytes()[:8] == PNG
