"""Data-parallel epochs on N faked CPU devices vs one device.

The digits MLP (64-128-64-10, relu, Adam, batch 32): the same compiled
epoch with the batch split over N host devices, against one device, timed
interleaved, median of paired ratios. On a 2-core CPU the faked devices
share the two cores, so this measures the cost of the all-reduce and the
partitioning, not a speed-up; on a GPU or TPU slice each device has its own
arithmetic.

    python benchmarks/data_parallel.py --devices 2 4
    python benchmarks/data_parallel.py --smoke
"""

import argparse
import os
import sys


def parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--devices", type=int, nargs="+", default=[4], help="device counts to time"
    )
    parser.add_argument("--repeats", type=int, default=15, help="paired timings")
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    return parser


def device_count(argv) -> int:
    """The host devices to fake: the largest of ``--devices`` (2 for --smoke)."""
    known, _ = parser().parse_known_args(argv)
    return 2 if known.smoke else max(known.devices)


# JAX fixes its device count when it starts, so --devices is read first.
_count = device_count(sys.argv[1:] if __name__ == "__main__" else [])
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={_count}"
    ).strip()

import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine  # noqa: E402

from funcnet import data, layers, losses, optim, train  # noqa: E402


def main(argv=None):
    args = parser().parse_args(argv)
    if args.smoke:
        args.devices, args.repeats = [2], 2
    if max(args.devices) > len(jax.devices()):
        raise SystemExit(
            f"--devices {max(args.devices)} needs that many devices; this process "
            f"has {len(jax.devices())} (XLA_FLAGS={os.environ.get('XLA_FLAGS')!r})."
        )

    splits = data.load_digits()
    x, y = jnp.asarray(splits.train.x), jnp.asarray(splits.train.y)
    net = layers.mlp([64, 128, 64, 10], "relu")
    optimizer = optim.adam(1e-3)
    state = train.init_train_state(net, optimizer, key=jax.random.key(0))
    loss = losses.softmax_cross_entropy

    one = train.make_epoch(net, loss, optimizer, batch_size=32, donate=False)
    one(state, x, y)[1]["loss"].block_until_ready()
    print(f"{machine()}; {len(jax.devices())} devices")
    print(f"digits MLP, batch 32, one epoch; median of {args.repeats} paired ratios")
    print(f"{'devices':>8} {'1 device ms':>12} {'N devices ms':>13} {'ratio':>7}")
    for n in args.devices:
        mesh = jax.sharding.Mesh(np.array(jax.devices()[:n]), ("data",))
        placed = train.data_parallel(state, x, y, mesh=mesh)
        many = train.make_epoch(
            net, loss, optimizer, batch_size=32, donate=False, mesh=mesh
        )
        many(*placed)[1]["loss"].block_until_ready()
        t1, tn = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            one(state, x, y)[1]["loss"].block_until_ready()
            t1.append(time.perf_counter() - start)
            start = time.perf_counter()
            many(*placed)[1]["loss"].block_until_ready()
            tn.append(time.perf_counter() - start)
        ratio = np.median(np.array(tn) / np.array(t1))
        print(
            f"{n:8d} {np.median(t1) * 1e3:12.2f} {np.median(tn) * 1e3:13.2f} "
            f"{ratio:6.2f}x"
        )


if __name__ == "__main__":
    main()
