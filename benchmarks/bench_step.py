"""Manual (delta-rule) step against the jax.grad step, side by side.

The aim: measure what the hand-written backward costs or saves against
autodiff on the same step: the same network, loss (softmax cross-entropy),
optimizer (Adam 1e-3), float32, batch, and jit settings; both run as one
jitted ``lax.scan`` of ``funcnet.train.make_step`` over batches staged on
the device, so that dispatch does not hide the step. Also prints each
side's compiled FLOPs (XLA's cost analysis) and whether the optimized HLO
of the two is the same program.

    python benchmarks/bench_step.py --repeats 21
    python benchmarks/bench_step.py --smoke     # tiny, for CI
"""

import argparse
import re

import jax
from _common import machine, paired, table

from funcnet import layers, losses, optim, train

NETS = {"digits 64-128-64-10": [64, 128, 64, 10], "784-512-512-10": [784, 512, 512, 10]}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 1024])
    parser.add_argument("--repeats", type=int, default=21, help="paired timings")
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    return parser.parse_args(argv)


def make_run(sizes, batch_size, mode, steps):
    """A jitted scan of ``steps`` train steps, and its first train state."""
    net = layers.mlp(sizes, "relu")
    optimizer = optim.adam(1e-3)
    step = train.make_step(net, losses.softmax_cross_entropy, optimizer, mode=mode)

    def body(ts, batch):
        ts, metrics = step(ts, train.Batch(*batch))
        return ts, metrics["loss"]

    @jax.jit
    def run(ts, xs, ys):
        return jax.lax.scan(body, ts, (xs, ys))

    ts = train.init_train_state(net, optimizer, key=jax.random.key(0))
    x_key, y_key = jax.random.split(jax.random.key(1))
    xs = jax.random.normal(x_key, (steps, batch_size, sizes[0]))
    ys = jax.random.randint(y_key, (steps, batch_size), 0, sizes[-1])
    return run, (ts, xs, ys)


def true_flops(sizes, batch_size):
    """6 B sum(n_in n_out), less the first layer's unused input gradient."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    return (
        6 * batch_size * sum(a * b for a, b in pairs)
        - 2 * batch_size * pairs[0][0] * pairs[0][1]
    )


def compiled(run, args):
    exe = run.lower(*args).compile()
    analysis = exe.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    text = re.sub(r"\bmetadata=\{[^}]*\}", "", exe.as_text())
    text = re.sub(r"^HloModule \S+", "", text)
    return float(analysis.get("flops", float("nan"))), text


def main(argv=None):
    args = parse_args(argv)
    nets, batch_sizes = NETS, args.batch_sizes
    if args.smoke:
        nets, batch_sizes, args.repeats = {"smoke 8-8-4": [8, 8, 4]}, [4], 2

    rows = []
    for name, sizes in nets.items():
        for batch_size in batch_sizes:
            # enough steps per call that one call takes some milliseconds
            steps = max(2, min(200, int(3e8 / true_flops(sizes, batch_size))))
            manual, manual_args = make_run(sizes, batch_size, "manual", steps)
            auto, auto_args = make_run(sizes, batch_size, "autodiff", steps)
            manual_flops, manual_hlo = compiled(manual, manual_args)
            auto_flops, auto_hlo = compiled(auto, auto_args)
            manual(*manual_args), auto(*auto_args)  # warm up
            r = paired(
                lambda m=manual, a=manual_args: m(*a),
                lambda f=auto, a=auto_args: f(*a),
                args.repeats,
            )
            rows.append([
                name, batch_size,
                f"{1e6 * r['a'] / steps:.1f}", f"{1e6 * r['b'] / steps:.1f}",
                f"{r['ratio']:.3f} [{r['low']:.3f}, {r['high']:.3f}]",
                f"{manual_flops / auto_flops:.3f}",
                "same" if manual_hlo == auto_hlo else "differs",
            ])  # fmt: skip

    print(machine())
    print(
        f"manual vs autodiff train step (Adam, float32, jitted scan), median "
        f"of {args.repeats} interleaved pairs [quartiles]"
    )
    header = ["network", "batch", "manual us/step", "autodiff us/step",
              "manual/autodiff", "XLA FLOPs ratio", "optimized HLO"]  # fmt: skip
    print(table(header, rows))


if __name__ == "__main__":
    main()
