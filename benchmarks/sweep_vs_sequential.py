"""Sweep vs sequential: K members in one compiled program vs K runs in turn.

Every variant trains the digits MLP (64-128-64-10, relu, SGD with momentum,
batch 32) for the same epochs with the same compiled code per member:

* ``sequential``: the one-member program called K times, one after another,
  on one device (one core);
* ``sequential, 2 devices``: the fair baseline for the split sweep: two
  threads, each calling the one-member program on its own CPU device for
  its half of the members, so both cores work as they do for the split
  sweep;
* ``vmap, 1 device``: the K-member program on one device;
* ``vmap, 2 devices``: the K-member program with the members split over two
  CPU devices (``--xla_force_host_platform_device_count=2``, set below
  before JAX starts), one per core.

Timings are interleaved (A, B, C, D, A, B, ...) and each ratio is the
median of the per-repeat ratios, so the machine's drift cancels. The last
column compares the two 2-device variants.

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
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

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

    def on(devices):
        return sweep.make_sweep(
            net,
            losses.softmax_cross_entropy,
            momentum_of,
            train,
            devices=devices,
            epochs=args.epochs,
            batch_size=32,
        )

    devices = jax.local_devices()[:2]
    programs = {
        "first": on(devices[:1]),
        "second": on(devices[1:]),
        "split": on(devices),
    }

    print(f"{machine()}; {len(jax.local_devices())} devices")
    print(
        f"digits MLP {'64-128-64-10' if not args.smoke else '64-8-10'}, "
        f"batch 32, {args.epochs} epochs, median of {args.repeats} interleaved "
        f"repeats; time relative to sequential on 1 device"
    )
    print(
        f"{'K':>4} {'sequential s':>13} {'seq 2 devices':>14} {'vmap 1 device':>14} "
        f"{'vmap 2 devices':>15} {'vmap 2 / seq 2':>15}"
    )
    for k in args.members:
        seq, r = measure(k, programs, args.repeats)
        print(
            f"{k:4d} {seq:13.3f} {r['seq2']:13.2f}x {r['vmap1']:13.2f}x "
            f"{r['vmap2']:14.2f}x {r['vmap2_seq2']:14.2f}x"
        )


def measure(k, programs, repeats):
    """Median sequential seconds, and median ratios of the others to it."""
    lrs = np.logspace(-3, -1, k)
    members = sweep.paired(learning_rate=lrs, seed=list(range(k)))
    singles = [sweep.paired(learning_rate=lrs[i : i + 1], seed=[i]) for i in range(k)]
    half = -(-k // 2)
    pool = ThreadPoolExecutor(2)

    def sequential(program, hps):
        for hp in hps:
            program(hp)

    def sequential_two():
        # Each thread its own device and half; the compiled programs release
        # the GIL while they run, so the two devices (cores) work at once.
        first = pool.submit(sequential, programs["first"], singles[:half])
        second = pool.submit(sequential, programs["second"], singles[half:])
        first.result(), second.result()

    variants = {
        "seq": lambda: sequential(programs["first"], singles),
        "seq2": sequential_two,
        "vmap1": lambda: programs["first"](members),
        "vmap2": lambda: programs["split"](members),
    }
    # Compile everything once before timing.
    for run in variants.values():
        run()
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            times[name].append(timed(run))
    pool.shutdown()
    seq = np.array(times["seq"])
    ratios = {name: np.median(np.array(t) / seq) for name, t in times.items()}
    ratios["vmap2_seq2"] = np.median(np.array(times["vmap2"]) / np.array(times["seq2"]))
    return np.median(seq), ratios


if __name__ == "__main__":
    main()
