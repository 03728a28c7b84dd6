"""Sweep 16 learning rates x 4 weight decays on the handwritten digits.

The aim: train 64 MLPs (Adam with decoupled weight decay, AdamW) as one
compiled program, each with its own early stopping, and pick the best
configuration by validation loss; report its test accuracy.

    python experiments/digits_sweep.py --epochs 30

On the CPU the members are split over two host devices (set before JAX
starts), so that both cores train members at once.
"""

import os

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()

import argparse  # noqa: E402
import pathlib  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from funcnet import data, layers, losses, optim, sweep  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--epochs", type=int, default=30, help="most epochs a member trains"
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=5,
        help="epochs without a better validation loss before a member stops",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="minibatch size")
    parser.add_argument(
        "--hidden", type=int, nargs="+", default=[128, 64], help="hidden layer widths"
    )
    parser.add_argument(
        "--learning-rates",
        type=int,
        default=16,
        help="how many learning rates, log-spaced over [1e-4, 0.3]",
    )
    parser.add_argument(
        "--weight-decays",
        type=float,
        nargs="+",
        default=[0.0, 0.01, 0.1, 1.0],
        help="AdamW weight decays",
    )
    parser.add_argument("--out", default="runs/sweep", help="folder for JSON and plots")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()

    # data
    splits = data.load_digits(seed=0)
    sizes = [splits.train.x.shape[1], *args.hidden, 10]

    # sweep
    hyperparams = sweep.grid(
        learning_rate=np.logspace(-4, np.log10(0.3), args.learning_rates),
        weight_decay=args.weight_decays,
    )
    print(
        f"{hyperparams.size} members: mlp {sizes} relu, AdamW, batch "
        f"{args.batch_size}, up to {args.epochs} epochs, patience "
        f"{args.patience}, on {len(jax.local_devices())} "
        f"{jax.default_backend()} device(s)"
    )
    result = sweep.run(
        layers.mlp(sizes, "relu"),
        losses.softmax_cross_entropy,
        lambda hp: optim.adamw(hp["learning_rate"], weight_decay=hp["weight_decay"]),
        hyperparams,
        splits.train,
        val=splits.val,
        test=splits.test,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=args.patience,
    )
    wall = time.perf_counter() - start

    # report
    print(result.table())
    best = result.best()
    config = result.hyperparams.member(best)
    print(
        f"best: learning_rate {config['learning_rate']:.3g}, weight_decay "
        f"{config['weight_decay']:.3g}, best epoch {result.best_epoch[best] + 1}, "
        f"val loss {result.best_metric[best]:.4f}, test accuracy "
        f"{result.test['accuracy'][best]:.4f}"
    )
    counts = {s: result.status.count(s) for s in ("finished", "stopped", "diverged")}
    print(f"status: {counts}; wall time {wall:.1f} s")

    out = pathlib.Path(args.out)
    result.to_json(out / "sweep.json")
    paths = result.plot(out)
    print("wrote", out / "sweep.json", *paths)
    return result


if __name__ == "__main__":
    main()
