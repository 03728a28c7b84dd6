"""experiments/textbook.py prints the hand-checkable numbers, and descends."""

import importlib.util
import pathlib

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "textbook.py"


@pytest.fixture(scope="module")
def textbook():
    spec = importlib.util.spec_from_file_location("textbook", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def result(textbook):
    return textbook.main(["--steps", "4"])


def test_first_layer_numbers(result):
    # z1 = x @ W1 + b1 with x = [0.5, 0.8], W1 = [[0.2, 0.4], [0.7, 0.1]]:
    #   z1_0 = 0.5 * 0.2 + 0.8 * 0.7 + 0.1 = 0.76
    #   z1_1 = 0.5 * 0.4 + 0.8 * 0.1 + 0.2 = 0.48
    # a1 = sigmoid(z1) = [0.6814, 0.6177] (not DESIGN.md's [0.86, 0.48] and
    # [0.7027, 0.6177], which belong to b1 = [0.2, 0.2]).
    np.testing.assert_allclose(result["z"][0], [0.76, 0.48], rtol=1e-6)
    np.testing.assert_allclose(result["a"][0], [0.6814, 0.6177], atol=5e-5)


def test_output_delta_by_hand(result):
    # With W2 = [[0.3, -0.5], [0.6, 0.2]], b2 = [0, 0.1]:
    #   z2 = [0.6814 * 0.3 + 0.6177 * 0.6, -0.6814 * 0.5 + 0.6177 * 0.2 + 0.1]
    #      = [0.5751, -0.1171], a2 = [0.6399, 0.4708]
    # With W3 = [[0.8], [-0.4]], b3 = 0.05:
    #   z3 = 0.6399 * 0.8 - 0.4708 * 0.4 + 0.05 = 0.3736, a3 = 0.5923
    # For one example and t = 1, dL/da3 = a3 - t, so
    #   delta_out = (a3 - t) * a3 * (1 - a3) = -0.4077 * 0.5923 * 0.4077 = -0.09844
    # and the hidden delta_2 = delta_out * W3.T * a2 * (1 - a2)
    #   = [-0.09844 * 0.8 * 0.2304, -0.09844 * -0.4 * 0.2492] = [-0.01815, 0.00981].
    np.testing.assert_allclose(result["z"][1], [0.5751, -0.1171], atol=5e-5)
    np.testing.assert_allclose(result["a"][2], [0.5923], atol=5e-5)
    np.testing.assert_allclose(result["delta"][2], [-0.09844], atol=5e-6)
    np.testing.assert_allclose(result["delta"][1], [-0.01815, 0.00981], atol=5e-6)
    a3 = result["a"][2]
    np.testing.assert_allclose(result["delta"][2], (a3 - 1) * a3 * (1 - a3), rtol=1e-5)


def test_loss_falls_every_step(result):
    # The first loss is 0.5 * (a3 - t) ** 2 = 0.5 * 0.4077 ** 2 = 0.08309.
    history = np.asarray(result["loss"])
    assert len(history) == 5
    np.testing.assert_allclose(history[0], 0.08309, atol=5e-6)
    assert np.all(np.diff(history) < 0)


def test_prints_the_table_and_the_erratum(textbook, capsys):
    textbook.main(["--steps", "1"])
    out = capsys.readouterr().out
    assert "    1    0    0.7600    0.6814" in out
    assert "design notes give z1 = [0.86, 0.48]" in out
    assert "step  1  loss" in out
