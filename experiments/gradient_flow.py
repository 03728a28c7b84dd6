"""Vanishing deltas: a deep sigmoid net beside a deep relu net, on the digits.

The aim: show the classic failure that the delta rule explains. In a deep
sigmoid network each layer multiplies the backward signal by
``sigmoid'(z) <= 1/4``, so ``||delta_l||`` shrinks toward the input and the
first layers barely learn; relu passes it through unchanged where units are
active. Both nets train with :func:`funcnet.train.fit` (Adam) and a
:class:`funcnet.trace.FlowRecorder` as fit's ``epoch_metrics``, which
records in the history, after every epoch, each Dense layer's
``||delta||`` and ``||dL/dW||`` on a fixed probe batch of the training set.

    python experiments/gradient_flow.py --depth 8 --width 32 --epochs 10

Prints each net's per-layer table after the last epoch and a line per
epoch; writes ``<out>/gradient_flow.png`` (delta norm per layer, one curve
per epoch, both nets side by side) and ``<out>/gradient_flow.json``.
"""

import argparse
import json
import pathlib

import jax
import numpy as np

from funcnet import data, layers, losses, optim, trace, train


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=8, help="hidden layers")
    parser.add_argument("--width", type=int, default=32, help="units per hidden layer")
    parser.add_argument("--epochs", type=int, default=10, help="passes over the data")
    parser.add_argument("--batch-size", type=int, default=32, help="minibatch size")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--probe", type=int, default=256, help="probe batch size")
    parser.add_argument("--seed", type=int, default=0, help="init and shuffle seed")
    parser.add_argument("--out", default="runs", help="folder for the plot and JSON")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    return parser.parse_args(argv)


def run(activation, splits, args):
    """Trains one net; its fit history holds the gradient-flow norms too."""
    sizes = [splits.train.x.shape[1]] + [args.width] * args.depth + [10]
    net = layers.mlp(sizes, activation, W_init="glorot_uniform")
    loss = losses.softmax_cross_entropy
    probe_x, probe_y = splits.train.x[: args.probe], splits.train.y[: args.probe]
    recorder = trace.FlowRecorder(net, loss, probe_x, probe_y)
    result = train.fit(
        net, loss, optim.adam(args.lr), splits.train, splits.val,
        epochs=args.epochs, key=jax.random.key(args.seed),
        batch_size=args.batch_size, epoch_metrics=recorder,
    )  # fmt: skip
    history = dict(result.history)
    final = trace.trace(
        net, loss, result.train_state.params, result.train_state.state,
        probe_x, probe_y, train=False, full=False,
    )  # fmt: skip
    return history, final


def plot(histories, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (activation, history) in zip(axes, histories.items()):
        norms = history["delta_norm"]
        epochs = len(norms)
        colors = plt.cm.viridis(np.linspace(0, 1, epochs))
        for epoch, (row, color) in enumerate(zip(norms, colors), start=1):
            label = f"epoch {epoch}" if epoch in (1, epochs) else None
            ax.plot(np.arange(1, len(row) + 1), row, color=color, label=label)
        ax.set(
            title=f"{activation}: ||delta|| per layer",
            xlabel="Dense layer (input side first)",
            yscale="log",
        )
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("Frobenius norm of delta = dL/dz (probe batch)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    splits = data.load_digits(seed=args.seed)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # train
    histories = {}
    for activation in ("sigmoid", "relu"):
        history, final = run(activation, splits, args)
        histories[activation] = history
        print(f"\n{activation}: depth {args.depth}, width {args.width}")
        for epoch in range(args.epochs):
            deltas = history["delta_norm"][epoch]
            print(
                f"epoch {epoch + 1:2d}  loss {history['loss'][epoch]:.4f}  "
                f"val_accuracy {history['val_accuracy'][epoch]:.3f}  "
                f"||delta|| first/last layer {deltas[0] / deltas[-1]:.1e}"
            )
        print(final)

    # report
    summary = {
        a: {k: np.asarray(v).tolist() for k, v in h.items()}
        for a, h in histories.items()
    }
    (out / "gradient_flow.json").write_text(json.dumps(summary))
    if not args.no_plot:
        plot(histories, out / "gradient_flow.png")
        print(f"\nwrote {out / 'gradient_flow.png'}")
    return histories


if __name__ == "__main__":
    main()
