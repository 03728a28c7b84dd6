"""Achieved GFLOP/s of a funcnet train step against a large matrix product.

The aim: say how close the big MLP's step (784-512-512-10, batch 1024,
manual backward, Adam, float32) comes to what this machine's XLA reaches on
a plain large matrix product, timed side by side in one process. The step's
true FLOPs are ``6 * B * sum(n_in * n_out)`` less the first layer's input
gradient (``2 * B * n_in * n_out`` of layer one), which nobody needs.

    python benchmarks/bench_flops.py --repeats 15
    python benchmarks/bench_flops.py --smoke     # tiny, for CI
"""

import argparse

import jax
from _common import machine, paired, table
from bench_step import make_run, true_flops


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument(
        "--matmul", type=int, default=2048, help="n of the n x n x n product"
    )
    parser.add_argument("--repeats", type=int, default=15, help="paired timings")
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args(argv)
    sizes = [784, 512, 512, 10]
    if args.smoke:
        sizes, args.batch_size, args.matmul, args.repeats = [16, 8, 4], 8, 64, 2

    steps = max(2, min(200, int(3e9 / true_flops(sizes, args.batch_size))))
    run, run_args = make_run(sizes, args.batch_size, "manual", steps)
    n = args.matmul
    a = jax.random.normal(jax.random.key(0), (n, n))
    b = jax.random.normal(jax.random.key(1), (n, n))
    product = jax.jit(lambda a, b: a @ b)
    run(*run_args), product(a, b)  # warm up

    r = paired(lambda: run(*run_args), lambda: product(a, b), args.repeats)
    step_rate = steps * true_flops(sizes, args.batch_size) / r["a"] / 1e9
    peak_rate = 2 * n**3 / r["b"] / 1e9
    print(machine())
    print(f"achieved GFLOP/s, medians of {args.repeats} interleaved pairs")
    print(table(
        ["what", "true GFLOP per call", "median ms", "GFLOP/s", "of the product's"],
        [
            [f"MLP {'-'.join(map(str, sizes))} step, batch {args.batch_size}",
             f"{steps * true_flops(sizes, args.batch_size) / 1e9:.2f}",
             f"{1e3 * r['a']:.1f}", f"{step_rate:.1f}",
             f"{step_rate / peak_rate:.0%}"],
            [f"matrix product {n}^3", f"{2 * n**3 / 1e9:.2f}",
             f"{1e3 * r['b']:.1f}", f"{peak_rate:.1f}", "100%"],
        ],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
