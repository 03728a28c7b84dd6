"""The digits experiment trains with fit, writes its record and resumes exactly."""

import importlib.util
import json
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "digits.py"


@pytest.fixture(scope="module")
def digits_script():
    spec = importlib.util.spec_from_file_location("digits_experiment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_records_and_resumes(digits_script, tmp_path, capsys):
    args = ["--no-progress", "--no-plot", "--hidden", "16", "--lr", "1e-2"]
    args += ["--out", str(tmp_path)]
    first = digits_script.main([*args, "--epochs", "2", "--checkpoint-every", "1"])
    resumed = digits_script.main([*args, "--epochs", "4", "--resume"])

    for name, values in first["history"].items():
        assert len(values) == 2
        assert resumed["history"][name][:2] == values
        assert len(resumed["history"][name]) == 4
    printed = capsys.readouterr().out
    assert "epoch   2" in printed and "epoch   3" in printed
    record = json.loads((tmp_path / "digits-0.json").read_text())
    for field in ("config", "history", "test", "gradient_check", "wall_time_s"):
        assert field in record
    assert set(record["gradient_check"]) == {"before", "after"}
    assert record["history"] == resumed["history"]
