"""The digits experiment trains with fit, writes its record and resumes exactly."""

import importlib.util
import json
import pathlib

import pytest

from tests._subprocess import run_python

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "digits.py"
SMALL = ["--no-progress", "--no-plot", "--hidden", "16", "--lr", "1e-2"]


@pytest.fixture(scope="module")
def digits_script():
    spec = importlib.util.spec_from_file_location("digits_experiment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_records_and_resumes(digits_script, tmp_path, capsys):
    args = [*SMALL, "--out", str(tmp_path)]
    first = digits_script.main([*args, "--epochs", "2", "--checkpoint-every", "1"])
    resumed = digits_script.main([*args, "--epochs", "4", "--resume"])

    for name, values in first["history"].items():
        assert len(values) == 2
        assert resumed["history"][name][:2] == values
        assert len(resumed["history"][name]) == 4
    printed = capsys.readouterr().out
    assert "epoch   2" in printed and "epoch   3" in printed
    record = json.loads((tmp_path / "digits-s0-h16.json").read_text())
    for field in ("config", "history", "test", "gradient_check", "wall_time_s"):
        assert field in record
    assert set(record["gradient_check"]) == {"before", "after"}
    assert record["history"] == resumed["history"]
    assert (tmp_path / "digits-s0-h16-ckpt" / "checkpoint.npz").is_file()


def test_digits_resume_refuses_another_learning_rate(digits_script, tmp_path):
    args = ["--no-progress", "--no-plot", "--hidden", "16", "--out", str(tmp_path)]
    digits_script.main([*args, "--lr", "1e-2", "--epochs", "1"])
    with pytest.raises(
        SystemExit,
        match=r"cannot --resume digits-s0-h16: .*run_config\['--lr'\]=0.01, but "
        r"this one has run_config\['--lr'\]=0.001",
    ):
        digits_script.main([*args, "--lr", "1e-3", "--epochs", "2", "--resume"])
    history = json.loads((tmp_path / "digits-s0-h16.json").read_text())["history"]
    assert len(history["loss"]) == 1


def test_runs_with_other_model_options_keep_their_own_files(digits_script, tmp_path):
    args = [*SMALL, "--out", str(tmp_path), "--epochs", "1"]
    plain = digits_script.main(args)
    dropout = digits_script.main([*args, "--dropout", "0.2"])
    batch_norm = digits_script.main([*args, "--batch-norm", "--activation", "tanh"])

    names = {p.name for p in tmp_path.iterdir()}
    for name, record in [
        ("digits-s0-h16", plain),
        ("digits-s0-h16-dropout0.2", dropout),
        ("digits-s0-h16-tanh-bn", batch_norm),
    ]:
        assert {f"{name}.json", f"{name}-ckpt"} <= names
        saved = json.loads((tmp_path / f"{name}.json").read_text())
        assert saved["history"] == record["history"]
        assert saved["config"]["dropout"] == record["config"]["dropout"]
    assert len(names) == 6, sorted(names)


def test_digits_runs_data_parallel_in_a_subprocess(tmp_path):
    out = run_python(
        SCRIPT, "--epochs", 1, "--data-parallel", 2, "--no-progress", "--no-plot",
        "--out", tmp_path, timeout=300,
    )  # fmt: skip
    assert "data-parallel over 2 cpu devices" in out
    record = json.loads((tmp_path / "digits-s0.json").read_text())
    assert record["config"]["data_parallel"] == 2
    assert len(record["history"]["loss"]) == 1
    assert 0.0 < record["test"]["accuracy"] <= 1.0
