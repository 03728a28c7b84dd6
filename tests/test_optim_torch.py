"""funcnet.optim.torch against trajectories recorded from torch.optim.

The golden file was written by ``scripts/record_torch_golden.py`` (torch 2.13.0,
CPU, float64); torch itself is not needed here. Cases with an ``lr_lambda`` ran
under ``torch.optim.lr_scheduler.LambdaLR``; here the preset gets ``lr=`` the
same schedule, a callable of the step count.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnet import optim

GOLDEN = json.loads(
    (pathlib.Path(__file__).parent / "golden" / "torch_optim.json").read_text()
)
PRESETS = {
    "SGD": optim.torch.sgd,
    "RMSprop": optim.torch.rmsprop,
    "Adam": optim.torch.adam,
    "AdamW": optim.torch.adamw,
}
# torch and XLA round the same float64 formulas in different orders.
RTOL, ATOL = 1e-12, 1e-14
# LambdaLR's lambdas, by the text the golden file names them with, in jnp.
LR_LAMBDAS = {
    "min(1, (t + 1) / 20) * (1 - 0.9 * t / 200)": lambda t: (
        jnp.minimum(1, (t + 1) / 20) * (1 - 0.9 * t / 200)
    ),
}
SCHEDULED = [case for case in GOLDEN["cases"] if "lr_lambda" in case]


def gradients(params, x, y):
    """The recording script's hand-written gradient of the mean squared error."""
    residual = (x @ params["W"] + params["b"][None, :] - y) / x.shape[0]
    return {"W": x.T @ residual, "b": residual.sum(0)}


def flat_trajectory(opt, params, x, y, steps):
    def step(carry, _):
        params, opt_state = carry
        updates, opt_state = opt.update(gradients(params, x, y), opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), jnp.concatenate([params["W"].ravel(), params["b"]])

    _, path = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return path


def case_id(case):
    kwargs = ",".join(f"{k}={v}" for k, v in case["kwargs"].items())
    schedule = "-LambdaLR" if "lr_lambda" in case else ""
    return f"{case['optimizer']}({kwargs}){schedule}"


def preset_kwargs(case):
    """The case's torch arguments, with ``lr`` a schedule for a LambdaLR case."""
    kwargs = dict(case["kwargs"])
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    if "lr_lambda" in case:
        base, factor = kwargs["lr"], LR_LAMBDAS[case["lr_lambda"]]
        # The count is int32, and jnp divides int32 in float32: cast it first.
        kwargs["lr"] = lambda count: base * factor(count.astype(jnp.float64))
    return kwargs


def test_golden_file_is_what_the_tests_expect():
    assert GOLDEN["dtype"] == "float64"
    assert GOLDEN["torch_version"] == "2.13.0+cpu"
    assert GOLDEN["python_version"] and GOLDEN["numpy_version"]
    assert {case["optimizer"] for case in GOLDEN["cases"]} == set(PRESETS)
    assert {case["optimizer"] for case in SCHEDULED} == {"RMSprop", "SGD", "AdamW"}


@pytest.mark.parametrize("case", SCHEDULED, ids=case_id)
def test_schedule_gives_the_learning_rates_torch_used(case):
    # LambdaLR's lr at step t (from 1) is lr * lambda(t - 1): our count from 0.
    with jax.enable_x64(True):
        schedule = preset_kwargs(case)["lr"]
        lrs = jax.vmap(schedule)(jnp.arange(GOLDEN["steps"], dtype=jnp.int32))
        np.testing.assert_allclose(lrs, case["lrs"], rtol=1e-15, atol=0)
        assert len(set(case["lrs"])) > 100  # the rate moves


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=case_id)
def test_preset_matches_torch_trajectory(case):
    kwargs = preset_kwargs(case)
    with jax.enable_x64(True):
        problem = {k: jnp.asarray(v, jnp.float64) for k, v in GOLDEN["problem"].items()}
        params = {"W": problem["W"], "b": problem["b"]}
        opt = PRESETS[case["optimizer"]](**kwargs)
        path = flat_trajectory(opt, params, problem["x"], problem["y"], GOLDEN["steps"])
        recorded = np.asarray(GOLDEN["recorded_steps"]) - 1
        np.testing.assert_allclose(
            np.asarray(path)[recorded], case["params"], rtol=RTOL, atol=ATOL
        )


def rmsprop_lr_before_buffer(lr):
    """torch's RMSProp settings with optax's order: m = mu m - lr s, u = m."""
    return optim.rmsprop(lr, decay=0.99, eps=1e-8, eps_in_sqrt=False, momentum=0.9)


@pytest.mark.parametrize("scheduled", [False, True], ids=["constant", "LambdaLR"])
def test_rmsprop_buffer_order_shows_only_under_a_schedule(scheduled):
    # The documented difference: the learning rate applied before the momentum
    # buffer (optax) equals torch's after-the-buffer rule for a constant rate,
    # and departs from it when the rate changes from step to step.
    case = next(
        c
        for c in GOLDEN["cases"]
        if c["optimizer"] == "RMSprop"
        and c["kwargs"] == {"lr": 0.01, "momentum": 0.9}
        and ("lr_lambda" in c) == scheduled
    )
    with jax.enable_x64(True):
        problem = {k: jnp.asarray(v, jnp.float64) for k, v in GOLDEN["problem"].items()}
        params = {"W": problem["W"], "b": problem["b"]}
        opt = rmsprop_lr_before_buffer(preset_kwargs(case)["lr"])
        path = flat_trajectory(opt, params, problem["x"], problem["y"], GOLDEN["steps"])
        ours = np.asarray(path)[np.asarray(GOLDEN["recorded_steps"]) - 1]
    deviation = np.max(np.abs(ours - case["params"]) / np.abs(case["params"]))
    if scheduled:
        assert deviation > 1e-4
    else:
        assert deviation < RTOL


def test_presets_differ_from_optax_defaults_where_documented():
    # One step from the golden start: RMSProp's torch defaults (alpha 0.99, eps
    # outside the root) and AdamW's decay 1e-2 on every leaf are not optax's.
    with jax.enable_x64(True):
        w = {"W": jnp.ones((1, 1)), "b": jnp.ones(1)}
        g = jax.tree.map(jnp.ones_like, w)

        def one_step(opt):
            updates, _ = opt.update(g, opt.init(w), w)
            return optax.apply_updates(w, updates)

        torch_rms = one_step(optim.torch.rmsprop(lr=0.01, eps=1.0))
        np.testing.assert_allclose(torch_rms["b"], 1 - 0.01 / (0.1 + 1), rtol=1e-12)
        ours_rms = one_step(optim.rmsprop(0.01, eps=1.0))
        np.testing.assert_allclose(ours_rms["b"], 1 - 0.01 / 1.1**0.5, rtol=1e-12)
        torch_adamw = one_step(optim.torch.adamw(lr=0.1))
        expected = 1 - 0.1 * (1 / (1 + 1e-8) + 1e-2)
        np.testing.assert_allclose(torch_adamw["b"], expected, rtol=1e-12)
        np.testing.assert_allclose(torch_adamw["W"], expected, rtol=1e-12)
