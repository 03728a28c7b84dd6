"""Record float64 ``torch.optim`` trajectories for funcnet's PyTorch presets.

Aim: golden numbers that ``tests/test_optim_torch.py`` compares
``funcnet.optim.torch`` against, without torch being needed by the tests.

The problem is a small least-squares fit with a dense kernel ``W`` (3, 2) and a
bias ``b`` (2,): ``L = 0.5 * mean_i ||x_i @ W + b - y_i||^2``. Its gradient is
written out by hand (no autograd), so JAX reproduces it exactly. Every
setting runs ``STEPS`` steps from the same start; the parameters are kept
after the steps listed in ``RECORDED_STEPS``. The settings in ``SCHEDULED``
also step a ``torch.optim.lr_scheduler.LambdaLR`` after each optimizer step;
their cases name the lambda (``lr_lambda``, in the step count ``t``) and
record the learning rate of every step (``lrs``).

Run (needs ``pip install torch==2.13.0``, the CPU build, whose version string
``2.13.0+cpu`` is recorded with the Python and numpy versions):

    python scripts/record_torch_golden.py --out tests/golden/torch_optim.json
"""

import argparse
import json
import platform

import numpy as np
import torch

STEPS = 200
RECORDED_STEPS = list(range(1, 11)) + list(range(20, STEPS + 1, 10))

# Each setting is well conditioned over the 200 steps: a 1e-15 nudge of the
# start moves the end by less than 1e-13. Adam with betas=(0.5, 0.9) is not
# recorded: near the minimum it acts like sign descent and amplifies rounding
# to 1e-5..1e-3 by step 200, in torch and in JAX alike.
SETTINGS = {
    "SGD": [
        {"lr": 0.05},
        {"lr": 0.05, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.9, "dampening": 0.5},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1},
    ],
    "RMSprop": [
        {"lr": 0.01},
        {"lr": 0.01, "momentum": 0.9},
        {"lr": 0.01, "centered": True},
        {"lr": 0.01, "eps": 1e-3, "centered": True},
        {
            "lr": 0.01,
            "alpha": 0.9,
            "eps": 0.1,
            "weight_decay": 0.1,
            "momentum": 0.5,
            "centered": True,
        },
    ],
    "Adam": [
        {"lr": 0.01},
        {"lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-3, "weight_decay": 0.1},
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
    ],
    "AdamW": [
        {"lr": 0.01},
        {"lr": 0.01, "betas": [0.8, 0.9], "eps": 1e-2, "weight_decay": 0.1},
    ],
}


# A warm-up over 20 steps, then a linear decay to a tenth: the learning rate
# changes at every step, so the place where it is applied (before or after a
# momentum buffer) shows in the trajectory.
LR_LAMBDA = "min(1, (t + 1) / 20) * (1 - 0.9 * t / 200)"
SCHEDULED = {
    "RMSprop": [{"lr": 0.01, "momentum": 0.9}],
    "SGD": [{"lr": 0.05, "momentum": 0.9, "dampening": 0.5}],
    "AdamW": [{"lr": 0.01, "weight_decay": 0.1}],
}


def lr_lambda(t: int) -> float:
    """``LR_LAMBDA`` as a function of the scheduler's step count ``t``."""
    return min(1, (t + 1) / 20) * (1 - 0.9 * t / 200)


def make_problem(seed: int = 0) -> dict:
    """Inputs, targets and starting parameters, as nested lists of floats."""
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(8, 3)).tolist(),
        "y": rng.normal(size=(8, 2)).tolist(),
        "W": rng.normal(size=(3, 2)).tolist(),
        "b": rng.normal(size=(2,)).tolist(),
    }


def gradients(x, y, W, b):
    """Hand-written gradient of the mean squared error, in float64."""
    residual = (x @ W + b - y) / x.shape[0]
    return x.T @ residual, residual.sum(0)


def trajectory(problem: dict, name: str, kwargs: dict, scheduled: bool) -> dict:
    """The flattened ``[W, b]`` after each recorded step of one setting.

    With ``scheduled``, a ``LambdaLR`` of :func:`lr_lambda` steps after each
    optimizer step, and the learning rate each step used is returned too.
    """
    x, y = (torch.tensor(problem[k], dtype=torch.float64) for k in ("x", "y"))
    W, b = (torch.tensor(problem[k], dtype=torch.float64) for k in ("W", "b"))
    kwargs = {k: tuple(v) if k == "betas" else v for k, v in kwargs.items()}
    optimizer = getattr(torch.optim, name)([W, b], **kwargs)
    if scheduled:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    recorded, lrs = [], []
    for step in range(1, STEPS + 1):
        with torch.no_grad():
            W.grad, b.grad = gradients(x, y, W, b)
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduled:
            scheduler.step()
        if step in RECORDED_STEPS:
            recorded.append(torch.cat([W.detach().ravel(), b.detach()]).tolist())
    return {"params": recorded, "lrs": lrs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/golden/torch_optim.json")
    parser.add_argument("--seed", type=int, default=0, help="problem seed")
    args = parser.parse_args()

    problem = make_problem(args.seed)
    cases = [
        {
            "optimizer": name,
            "kwargs": kwargs,
            "params": trajectory(problem, name, kwargs, scheduled=False)["params"],
        }
        for name, settings in SETTINGS.items()
        for kwargs in settings
    ]
    for name, settings in SCHEDULED.items():
        for kwargs in settings:
            recorded = trajectory(problem, name, kwargs, scheduled=True)
            cases.append(
                {"optimizer": name, "kwargs": kwargs, "lr_lambda": LR_LAMBDA} | recorded
            )
    golden = {
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "dtype": "float64",
        "steps": STEPS,
        "recorded_steps": RECORDED_STEPS,
        "problem": problem,
        "cases": cases,
    }
    with open(args.out, "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} trajectories of {STEPS} steps to {args.out}")


if __name__ == "__main__":
    main()
