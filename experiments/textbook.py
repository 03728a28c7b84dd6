"""The delta rule on a network small enough to check by hand.

The aim: follow one forward and one backward pass through the 2-2-2-1
sigmoid network of the textbooks, layer by layer (``z``, ``a`` and
``delta = dL/dz``), so that a reader can redo every number with a pencil,
and then watch a few steps of gradient descent lower the loss.

    python experiments/textbook.py --lr 1.0 --steps 5

The loss is funcnet's MSE, ``0.5 * sum((a_out - t) ** 2)`` for the one
example, so the output delta is ``(a_out - t) * a_out * (1 - a_out)``.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from funcnet import grad, layers, losses, optim, trace, train

X = [[0.5, 0.8]]
W1, B1 = [[0.2, 0.4], [0.7, 0.1]], [0.1, 0.2]
W2, B2 = [[0.3, -0.5], [0.6, 0.2]], [0.0, 0.1]
W3, B3 = [[0.8], [-0.4]], [0.05]

ERRATUM = (
    "note: the project's design notes give z1 = [0.86, 0.48], "
    "a1 = [0.7027, 0.6177], which needs b1 = [0.2, 0.2]; "
    "with b1 = [0.1, 0.2], z1 = [0.76, 0.48]."
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=1.0, help="the target t")
    parser.add_argument("--lr", type=float, default=1.0, help="SGD learning rate")
    parser.add_argument("--steps", type=int, default=5, help="gradient-descent steps")
    return parser.parse_args(argv)


def textbook_params():
    """The params of ``mlp([2, 2, 2, 1], "sigmoid", output_activation="sigmoid")``."""
    dense = [(W1, B1), (W2, B2), (W3, B3)]
    params = []
    for W, b in dense:
        params += [{"W": jnp.array(W), "b": jnp.array(b)}, ()]
    return tuple(params)


def pass_table(net, params, x, t):
    """``z``, ``a`` and ``delta`` of each Dense + sigmoid pair, and the loss."""
    layer_trace = trace.trace(net, losses.mse, params, None, x, t, full=True)
    z = [np.asarray(v[0]) for v in layer_trace.z]
    a = [np.asarray(v[0]) for v in layer_trace.a]
    delta = [np.asarray(v[0]) for v in layer_trace.delta]
    return z, a, delta, float(layer_trace.loss)


def print_table(z, a, delta):
    print(f"{'layer':>5} {'unit':>4} {'z':>9} {'a':>9} {'delta':>10}")
    for layer, (zl, al, dl) in enumerate(zip(z, a, delta), start=1):
        for unit in range(len(zl)):
            print(
                f"{layer:5d} {unit:4d} {zl[unit]:9.4f} {al[unit]:9.4f} {dl[unit]:10.6f}"
            )


def descend(net, params, x, t, lr, steps):
    """Full-batch SGD; the loss before each step and after the last."""
    optimizer = optim.sgd(lr)
    step = jax.jit(train.make_train_step(net, losses.mse, optimizer))
    opt_state = optimizer.init(params)
    history = []
    for _ in range(steps):
        params, opt_state, metrics = step(params, opt_state, train.Batch(x, t))
        history.append(float(metrics["loss"]))
    history.append(float(losses.mse(net.forward(params, None, x)[0], t)))
    return history


def main(argv=None):
    args = parse_args(argv)

    # network
    net = layers.mlp([2, 2, 2, 1], "sigmoid", output_activation="sigmoid")
    params = textbook_params()
    x, t = jnp.array(X), jnp.array([[args.target]])
    print(f"x = {X[0]}, target t = {args.target}")
    for i, (W, b) in enumerate([(W1, B1), (W2, B2), (W3, B3)], start=1):
        print(f"W{i} = {W}, b{i} = {b}")

    # pass
    z, a, delta, loss = pass_table(net, params, x, t)
    print(f"\nforward and backward, loss {loss:.6f}")
    print_table(z, a, delta)
    print(ERRATUM)
    check = grad.check_gradients(net, losses.mse, params, None, x, t)
    worst = max(r["max_rel"] for r in check.values())
    print(f"delta-rule gradients vs jax.grad: largest relative difference {worst:.1e}")

    # descent
    history = descend(net, params, x, t, args.lr, args.steps)
    print(f"\nSGD, learning rate {args.lr}")
    for k, value in enumerate(history):
        print(f"step {k:2d}  loss {value:.6f}")

    return {"z": z, "a": a, "delta": delta, "loss": history}


if __name__ == "__main__":
    main()
