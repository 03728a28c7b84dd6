"""funcnet against PyTorch eager on the same MLP, loss and optimizer.

The aim: place funcnet's step beside the usual eager framework: the digits
MLP 64-128-64-10 relu, softmax cross-entropy, Adam 1e-3, float32, batch 32,
both sides on the CPU in one process. funcnet runs its manual step as one
jitted ``lax.scan`` over staged batches (how :func:`funcnet.train.fit`
runs an epoch) and, separately, one jitted call per step; PyTorch runs its
ordinary eager loop. Skips cleanly when torch is not installed.

    python benchmarks/bench_torch.py --repeats 15
    python benchmarks/bench_torch.py --smoke     # tiny, for CI
"""

import argparse

import jax
import numpy as np
from _common import machine, paired, table
from bench_step import make_run

from funcnet import layers, losses, optim, train


def torch_run(sizes, xs, ys):
    import torch

    torch.manual_seed(0)
    modules = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        modules.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            modules.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*modules)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs = torch.from_numpy(np.array(xs))
    ys = torch.from_numpy(np.array(ys)).long()

    def run():
        for x, y in zip(xs, ys):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        return loss.detach()

    return run


def jitted_steps(sizes, xs, ys):
    net = layers.mlp(sizes, "relu")
    optimizer = optim.adam(1e-3)
    step = jax.jit(train.make_step(net, losses.softmax_cross_entropy, optimizer))
    state = [train.init_train_state(net, optimizer, key=jax.random.key(0))]

    def run():
        ts = state[0]
        for x, y in zip(xs, ys):
            ts, metrics = step(ts, train.Batch(x, y))
        state[0] = ts
        return metrics["loss"]

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=15, help="paired timings")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch's intra-op threads (default 1: on a small net its worker "
        "threads only contend with JAX's and with each other)",
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("skipped: torch is not installed")
        return
    torch.set_num_threads(args.torch_threads)
    sizes = [64, 128, 64, 10]
    if args.smoke:
        sizes, args.steps, args.repeats = [8, 8, 4], 3, 2

    scan, scan_args = make_run(sizes, args.batch_size, "manual", args.steps)
    _, xs, ys = scan_args
    eager = torch_run(sizes, xs, ys)
    per_call = jitted_steps(sizes, list(xs), list(ys))
    scan(*scan_args), eager(), per_call()  # warm up

    vs_scan = paired(eager, lambda: scan(*scan_args), args.repeats)
    vs_call = paired(eager, per_call, args.repeats)
    us = 1e6 / args.steps
    print(
        machine() + f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    print(
        f"PyTorch eager vs funcnet, MLP {'-'.join(map(str, sizes))}, Adam, "
        f"batch {args.batch_size}, {args.steps} steps a timing, median of "
        f"{args.repeats} interleaved pairs [quartiles]"
    )
    print(table(
        ["funcnet side", "funcnet us/step", "torch us/step", "torch / funcnet"],
        [
            ["jitted scan (an epoch)", f"{us * vs_scan['b']:.1f}",
             f"{us * vs_scan['a']:.1f}",
             f"{vs_scan['ratio']:.2f} [{vs_scan['low']:.2f}, {vs_scan['high']:.2f}]"],
            ["one jitted call a step", f"{us * vs_call['b']:.1f}",
             f"{us * vs_call['a']:.1f}",
             f"{vs_call['ratio']:.2f} [{vs_call['low']:.2f}, {vs_call['high']:.2f}]"],
        ],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
