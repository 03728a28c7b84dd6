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

import os
import sys

_count = max(
    [int(a) for a in sys.argv[sys.argv.index("--devices") + 1 :] if a.isdigit()]
    if "--devices" in sys.argv
    else [4]
)
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={_count}"
    ).strip()

import argparse  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine  # noqa: E402

from funcnet import data, layers, losses, optim, train  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[4])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args(argv)
    if args.smoke:
        args.devices, args.repeats = [2], 2

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
