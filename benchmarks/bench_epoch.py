"""The compiled epoch against a bare ``lax.scan`` of the same step.

The aim: show that :func:`funcnet.train.make_epoch` (a permutation drawn in
the compiled function, each minibatch gathered inside the scan from data
staged once, the last batch padded and masked, metrics weighted by count,
buffers donated) costs no more than a bare jitted ``lax.scan`` of the same
:func:`funcnet.train.make_step` over batches gathered beforehand in a fixed
order. ``make_epoch, shuffle=False`` isolates the loop's own machinery
(gathering, padding, masking, weighting) from the cost of the shuffle, and
a bare scan shuffled as plain JAX shuffles (``jax.random.permutation``, the
data gathered in that order) is the like-for-like baseline of a shuffled
epoch. Also times :func:`funcnet.train.fit`'s Python loop around the epoch
(a host sync, the history and the bookkeeping each epoch), paired with a
bare epoch run, synchronously, between two of its epochs (the fit ratio's
us/step is that ratio times the bare scan's).

    python benchmarks/bench_epoch.py --repeats 60 --epochs-per-timing 5
    python benchmarks/bench_epoch.py --smoke

Runs both side by side in one process, alternating, and prints the median
of the paired ratios (epoch / bare scan) with its spread. The data are the
digits (1,078 training examples), the network the experiment's mlp
64-128-64-10 relu with Adam, batch 32 (34 steps, the last one padded).
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import machine

from funcnet import data, layers, losses, optim, train


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32, help="minibatch size")
    parser.add_argument("--repeats", type=int, default=60, help="paired timings")
    parser.add_argument(
        "--epochs-per-timing", type=int, default=5, help="epochs in one timing"
    )
    parser.add_argument("--grad", choices=["manual", "autodiff"], default="manual")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run for CI: 2 repeats of 1 epoch (timings are meaningless)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.epochs_per_timing = 2, 1
    return args


def make_bare_scan(step):
    """A jitted scan of ``step`` over batches staged beforehand."""

    def run(train_state, xs, ys, masks):
        def body(train_state, batch):
            return step(train_state, train.Batch(*batch))

        return jax.lax.scan(body, train_state, (xs, ys, masks))

    return jax.jit(run, donate_argnums=(0,))


def make_shuffled_bare_scan(step, n, batch_size):
    """A jitted epoch as plain JAX writes a shuffled one.

    ``jax.random.permutation`` of the examples each epoch, the data gathered
    in that order at once (padded and masked), then the same scan.
    """
    steps = -(-n // batch_size)
    pad = steps * batch_size - n
    mask = (jnp.arange(steps * batch_size) < n).astype(jnp.float32)

    def run(train_state, x, y, key):
        order = jax.random.permutation(jax.random.fold_in(key, train_state.step), n)
        order = jnp.concatenate([order, jnp.zeros(pad, order.dtype)])
        xs = x[order].reshape((steps, batch_size) + x.shape[1:])
        ys = y[order].reshape((steps, batch_size) + y.shape[1:])

        def body(train_state, batch):
            return step(train_state, train.Batch(*batch))

        return jax.lax.scan(
            body, train_state, (xs, ys, mask.reshape(steps, batch_size))
        )

    return jax.jit(run, donate_argnums=(0,))


def staged_batches(x, y, batch_size):
    """The data in a fixed order, padded and masked, as ``(steps, batch)`` arrays."""
    n = len(x)
    steps = -(-n // batch_size)
    order = np.concatenate([np.arange(n), np.zeros(steps * batch_size - n, int)])
    mask = (np.arange(steps * batch_size) < n).astype(np.float32)
    shape = (steps, batch_size)
    return (
        jnp.asarray(x[order].reshape(shape + x.shape[1:])),
        jnp.asarray(y[order].reshape(shape)),
        jnp.asarray(mask.reshape(shape)),
    )


def timed(fn, train_state, epochs):
    start = time.perf_counter()
    for _ in range(epochs):
        train_state, metrics = fn(train_state)
    jax.block_until_ready((train_state, metrics))
    return train_state, time.perf_counter() - start


def main(argv=None):
    args = parse_args(argv)
    splits = data.load_digits()
    net = layers.mlp([64, 128, 64, 10], "relu")
    loss, optimizer = losses.softmax_cross_entropy, optim.adam(1e-3)
    x, y = jnp.asarray(splits.train.x), jnp.asarray(splits.train.y)
    steps = -(-len(x) // args.batch_size)

    # build
    epoch = train.make_epoch(
        net, loss, optimizer, batch_size=args.batch_size, mode=args.grad
    )
    in_order = train.make_epoch(
        net, loss, optimizer, batch_size=args.batch_size, mode=args.grad, shuffle=False
    )
    bare = make_bare_scan(train.make_step(net, loss, optimizer, mode=args.grad))
    batches = staged_batches(splits.train.x, splits.train.y, args.batch_size)
    shuffled_bare = make_shuffled_bare_scan(
        train.make_step(net, loss, optimizer, mode=args.grad), len(x), args.batch_size
    )
    shuffle_key = jax.random.key(1)

    def run_epoch(ts):
        return epoch(ts, x, y)

    def run_bare(ts):
        return bare(ts, *batches)

    def run_in_order(ts):
        return in_order(ts, x, y)

    def run_shuffled_bare(ts):
        return shuffled_bare(ts, x, y, shuffle_key)

    runs = {
        "epoch": run_epoch,
        "bare": run_bare,
        "in_order": run_in_order,
        "shuffled_bare": run_shuffled_bare,
    }

    states = {
        name: train.init_train_state(net, optimizer, key=jax.random.key(0))
        for name in runs
    }
    for name, fn in runs.items():
        states[name], _ = timed(fn, states[name], 2)

    # time
    seconds = {name: [] for name in runs}
    for i in range(args.repeats):
        names = list(runs) if i % 2 == 0 else list(reversed(runs))
        for name in names:
            states[name], took = timed(runs[name], states[name], args.epochs_per_timing)
            seconds[name].append(took)
    ratios = [e / b for e, b in zip(seconds["epoch"], seconds["bare"])]
    in_order_ratios = [e / b for e, b in zip(seconds["in_order"], seconds["bare"])]
    shuffled_ratios = [e / b for e, b in zip(seconds["shuffled_bare"], seconds["bare"])]
    against_shuffled = [
        e / b for e, b in zip(seconds["epoch"], seconds["shuffled_bare"])
    ]
    ts_bare = states["bare"]

    # fit: between two of its epochs, the callback times one bare epoch
    fit_ratios, last = [], {}

    def pair_with_bare(epoch, logs, train_state):
        nonlocal ts_bare
        now = time.perf_counter()
        if "end" in last:
            fit_ratios.append((now - last["end"]) / last["bare"])
        ts_bare, last["bare"] = timed(run_bare, ts_bare, 1)
        last["end"] = time.perf_counter()

    train.fit(
        net,
        loss,
        optimizer,
        splits.train,
        epochs=args.repeats + 2,
        batch_size=args.batch_size,
        mode=args.grad,
        key=jax.random.key(0),
        callback=pair_with_bare,
    )
    fit_ratio = statistics.median(fit_ratios[1:])

    # report
    per_step = 1e6 / (args.epochs_per_timing * steps)
    bare_epoch = statistics.median(seconds["bare"]) / args.epochs_per_timing
    quartiles = statistics.quantiles(ratios, n=4)
    print(machine())
    print(
        f"digits mlp 64-128-64-10, Adam, batch {args.batch_size} ({steps} steps "
        f"an epoch), {args.grad} gradients, jax {jax.__version__} "
        f"{jax.default_backend()}; {args.repeats} paired timings of "
        f"{args.epochs_per_timing} epochs"
    )
    print(f"{'':28s}{'us/step':>10s}{'ratio':>10s}")
    rows = [
        ("bare lax.scan", "bare", [1.0]),
        ("make_epoch, shuffle=False", "in_order", in_order_ratios),
        ("bare scan, shuffled by jax", "shuffled_bare", shuffled_ratios),
        ("make_epoch", "epoch", ratios),
    ]
    for label, name, row_ratios in rows:
        print(
            f"{label:28s}{statistics.median(seconds[name]) * per_step:10.1f}"
            f"{statistics.median(row_ratios):10.3f}"
        )
    print(
        f"{'fit, one epoch at a time':28s}{fit_ratio * bare_epoch * 1e6 / steps:10.1f}"
        f"{fit_ratio:10.3f}"
    )
    print(
        f"make_epoch / bare scan: median {statistics.median(ratios):.3f}, "
        f"quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f}, "
        f"min {min(ratios):.3f}, max {max(ratios):.3f}"
    )
    quartiles = statistics.quantiles(against_shuffled, n=4)
    print(
        f"make_epoch / bare scan shuffled by jax.random.permutation: median "
        f"{statistics.median(against_shuffled):.3f}, "
        f"quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f}"
    )


if __name__ == "__main__":
    main()
