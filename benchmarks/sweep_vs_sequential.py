"""Sweep vs sequential: K members in one compiled program vs K runs in turn.

Every variant trains the digits MLP (64-128-64-10, relu, SGD with momentum,
batch 32) for the same epochs with the same compiled code per member:

* ``sequential``: the one-member program called K times, one after another;
* ``vmap, 1 device``: the K-member program on one device;
* ``vmap, 2 devices``: the K-member program with the members split over two
  CPU devices (``--xla_force_host_platform_device_count=2``, set below
  before JAX starts), one per core.

Timings are interleaved (A, B, C, A, B, C, ...) and each ratio is the median
of the per-repeat ratios, so the machine's drift cancels.

    python benchmarks/sweep_vs_sequential.py            # K = 1, 4, 16, 64
    python benchmarks/sweep_vs_sequential.py --smoke    # tiny, for CI
"""

import os

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()

import argparse  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine  # noqa: E402

from funcnet import data, layers, losses, optim, sweep  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args(argv)
    if args.smoke:
        args.members, args.epochs, args.repeats = [2], 1, 1

    splits = data.load_digits()
    train = splits.train
    if args.smoke:
        train = data.Dataset(train.x[:64], train.y[:64])
    net = layers.mlp([64, 128, 64, 10] if not args.smoke else [64, 8, 10], "relu")

    def momentum_of(hp):
        return optim.sgd(hp["learning_rate"], momentum=0.9)

    common = dict(epochs=args.epochs, batch_size=32)
    one_device = sweep.make_sweep(
        net,
        losses.softmax_cross_entropy,
        momentum_of,
        train,
        devices=jax.local_devices()[:1],
        **common,
    )
    split = sweep.make_sweep(
        net,
        losses.softmax_cross_entropy,
        momentum_of,
        train,
        devices=jax.local_devices()[:2],
        **common,
    )

    print(f"{machine()}; {len(jax.local_devices())} devices")
    print(
        f"digits MLP {'64-128-64-10' if not args.smoke else '64-8-10'}, "
        f"batch 32, {args.epochs} epochs, median of {args.repeats} interleaved "
        f"repeats; time relative to sequential"
    )
    print(f"{'K':>4} {'sequential s':>13} {'vmap 1 device':>14} {'vmap 2 devices':>15}")
    for k in args.members:
        seq, r1, r2 = measure(k, one_device, split, args.repeats)
        print(f"{k:4d} {seq:13.3f} {r1:13.2f}x {r2:14.2f}x")


def measure(k, one_device, split, repeats):
    """Median sequential seconds, and median ratios of the two sweeps to it."""
    lrs = np.logspace(-3, -1, k)
    members = sweep.paired(learning_rate=lrs, seed=list(range(k)))
    singles = [sweep.paired(learning_rate=lrs[i : i + 1], seed=[i]) for i in range(k)]

    def sequential():
        for hp in singles:
            one_device(hp)

    # Compile everything once before timing.
    sequential(), one_device(members), split(members)
    seq, r1, r2 = [], [], []
    for _ in range(repeats):
        t_seq = timed(sequential)
        t_1 = timed(lambda: one_device(members))
        t_2 = timed(lambda: split(members))
        seq.append(t_seq)
        r1.append(t_1 / t_seq)
        r2.append(t_2 / t_seq)
    return np.median(seq), np.median(r1), np.median(r2)


if __name__ == "__main__":
    main()
