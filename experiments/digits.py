"""Train an MLP on the handwritten digits with hand-written gradients.

The aim: show on real data (scikit-learn's bundled 8 x 8 digits, no
download) that the delta-rule gradients train a network as well as
autodiff would, and that they equal ``jax.grad`` before and after training.

    python experiments/digits.py --epochs 20 --seed 0

Trains with ``train.fit``: one compiled scan per epoch, early stopping on
the validation loss (the best epoch's params are the ones tested), a
progress bar (``--no-progress`` prints a line per epoch instead), and a
checkpoint in ``<out>/<run>-ckpt/`` (every ``--checkpoint-every`` epochs and
at the end) that ``--resume`` continues from exactly. ``--resume`` refuses a
checkpoint written with another ``--lr``, ``--hidden``, ``--activation``,
``--dropout``, ``--batch-norm``, ``--batch-size``, ``--grad`` or
``--patience``.

Prints the gradient check, the test accuracy and the wall time; writes
``<out>/<run>.json`` (config, history, test, gradient check, wall time) and
``<out>/<run>.png`` (the history). The run's name holds the seed and the
options that change the model, so that runs side by side in one ``--out``
keep their own files: ``digits-s0``, ``digits-s0-dropout0.2``,
``digits-s0-bn``, ``digits-s1-h32-16-tanh``.

``--data-parallel N`` trains data-parallel on N devices: each minibatch is
split across them and XLA all-reduces the gradients. On the CPU the N
devices are faked host devices (``XLA_FLAGS``, set here before JAX starts).
"""

import argparse
import json
import os
import pathlib
import sys
import time


def _fake_host_devices(argv):
    """Sets XLA_FLAGS for ``--data-parallel N`` before JAX is imported."""
    for i, arg in enumerate(argv):
        count = None
        if arg == "--data-parallel" and i + 1 < len(argv):
            count = argv[i + 1]
        elif arg.startswith("--data-parallel="):
            count = arg.split("=", 1)[1]
        flags = os.environ.get("XLA_FLAGS", "")
        if count and count.isdigit() and "host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = (
                f"{flags} --xla_force_host_platform_device_count={count}".strip()
            )


_fake_host_devices(sys.argv[1:] if __name__ == "__main__" else [])

import jax  # noqa: E402
import numpy as np  # noqa: E402

from funcnet import data, grad, layers, losses, optim, train  # noqa: E402

DEFAULT_HIDDEN = [128, 64]
DEFAULT_ACTIVATION = "relu"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=DEFAULT_HIDDEN,
        help="hidden layer widths (default: 128 64)",
    )
    parser.add_argument(
        "--activation", default=DEFAULT_ACTIVATION, help="hidden activation"
    )
    parser.add_argument(
        "--dropout",
        type=float,
        default=None,
        metavar="RATE",
        help="dropout rate after every hidden activation (default: none)",
    )
    parser.add_argument(
        "--batch-norm",
        action="store_true",
        help="batch norm before every hidden activation (drops the last short batch)",
    )
    parser.add_argument("--epochs", type=int, default=20, help="passes over the data")
    parser.add_argument("--batch-size", type=int, default=32, help="minibatch size")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument(
        "--grad",
        choices=["manual", "autodiff"],
        default="manual",
        help="hand-written backward pass or jax.grad",
    )
    parser.add_argument("--seed", type=int, default=0, help="init and shuffle seed")
    parser.add_argument(
        "--patience",
        type=int,
        default=5,
        help="early stopping: epochs without a lower validation loss (default: 5)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="a line per epoch, no progress bar"
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="save a checkpoint every N epochs (always at the end)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint of an earlier run with the same name "
        "(seed and model options); other training settings are refused",
    )
    parser.add_argument(
        "--data-parallel",
        type=int,
        default=None,
        metavar="N",
        help="split every batch across N devices (on the CPU: N faked host devices)",
    )
    parser.add_argument("--out", default="runs", help="folder for the JSON and plot")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    return parser.parse_args(argv)


def run_name(args):
    """``digits-s<seed>``, then each model option that is not the default."""
    parts = [f"digits-s{args.seed}"]
    if args.hidden != DEFAULT_HIDDEN:
        parts.append("h" + "-".join(str(width) for width in args.hidden))
    if args.activation != DEFAULT_ACTIVATION:
        parts.append(args.activation)
    if args.dropout is not None:
        parts.append(f"dropout{args.dropout:g}")
    if args.batch_norm:
        parts.append("bn")
    return "-".join(parts)


def run_config(args, sizes):
    """The settings a resumed run must share with its checkpoint, by flag.

    The batch size, the gradient mode and the patience are compared by
    ``fit`` itself.
    """
    return {
        "--hidden": sizes[1:-1],
        "--activation": args.activation,
        "--dropout": args.dropout,
        "--batch-norm": args.batch_norm,
        "--lr": args.lr,
    }


def gradient_check(net, params, state, batch, key):
    """Largest relative difference, manual vs jax.grad, per parameter leaf.

    In training mode, with one dropout key on both sides.
    """
    report = grad.check_gradients(
        net, losses.softmax_cross_entropy, params, state, batch.x, batch.y, key=key
    )
    return {path: r["max_rel"] for path, r in report.items()}


def print_check(title, check):
    print(f"{title}: manual vs jax.grad, largest relative difference per leaf")
    for path, rel in check.items():
        print(f"  {path:10s} {rel:.2e}")


def plot(history, path, best_epoch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history["loss"], label="train")
    ax_loss.plot(epochs, history["val_loss"], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="softmax cross-entropy", yscale="log")
    ax_acc.plot(epochs, history["accuracy"], label="train")
    ax_acc.plot(epochs, history["val_accuracy"], label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.axvline(best_epoch, color="gray", linestyle=":", label="best epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle("funcnet MLP on the handwritten digits")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()

    # data
    splits = data.load_digits(seed=0)
    n_in, n_classes = splits.train.x.shape[1], 10
    sizes = [n_in, *args.hidden, n_classes]
    print(
        f"digits: {len(splits.train.x)} train, {len(splits.val.x)} validation, "
        f"{len(splits.test.x)} test; mlp {sizes} {args.activation}, "
        f"Adam lr {args.lr}, batch {args.batch_size}, {args.grad} gradients, "
        f"dropout {args.dropout}, batch norm {args.batch_norm}"
    )

    # model
    net = layers.mlp(
        sizes, args.activation, dropout=args.dropout, batch_norm=args.batch_norm
    )
    loss = losses.softmax_cross_entropy
    optimizer = optim.adam(args.lr)
    train_state = train.init_train_state(net, optimizer, key=jax.random.key(args.seed))
    params = train_state.params
    check_batch = train.Batch(splits.train.x[:128], splits.train.y[:128])
    check_key = jax.random.key(args.seed + 1)
    check_before = gradient_check(
        net, params, train_state.state, check_batch, check_key
    )
    print_check("before training", check_before)

    # train
    mesh = None
    if args.data_parallel:
        devices = jax.devices()
        if args.data_parallel > len(devices):
            raise SystemExit(
                f"--data-parallel {args.data_parallel} needs that many devices; "
                f"this process has {len(devices)} ({jax.default_backend()})."
            )
        mesh = jax.sharding.Mesh(np.array(devices[: args.data_parallel]), ("data",))
        print(
            f"data-parallel over {args.data_parallel} {jax.default_backend()} devices"
        )
    out = pathlib.Path(args.out)
    name = run_name(args)
    checkpoint_dir = out / f"{name}-ckpt"
    if args.resume and not (checkpoint_dir / train.CHECKPOINT_NAME).is_file():
        print(f"no checkpoint in {checkpoint_dir} to resume from; starting afresh")
    write = print
    if not args.no_progress:
        from tqdm import tqdm

        write = tqdm.write  # lines above the bar

    def report(epoch, logs, train_state):
        write(
            f"epoch {epoch:3d}  loss {logs['loss']:.4f}  "
            f"train acc {logs['accuracy']:.4f}  "
            f"val loss {logs['val_loss']:.4f}  val acc {logs['val_accuracy']:.4f}"
        )

    try:
        result = train.fit(
            net,
            loss,
            optimizer,
            splits.train,
            splits.val,
            epochs=args.epochs,
            train_state=train_state,
            batch_size=args.batch_size,
            mode=args.grad,
            drop_last=args.batch_norm,
            early_stopping=train.EarlyStopping("val_loss", patience=args.patience),
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
            progress=not args.no_progress,
            callback=report,
            mesh=mesh,
            run_config=run_config(args, sizes),
        )
    except train.ResumeMismatchError as error:
        raise SystemExit(f"cannot --resume {name}: {error}") from error
    params = result.best_params
    history = {k: v.tolist() for k, v in result.history.items()}
    stopped = (
        f"early stopping after epoch {result.stopped_epoch}"
        if result.stopped_epoch
        else f"ran {len(history['loss'])} epochs"
    )
    print(f"{stopped}; testing the params of epoch {result.best_epoch}")

    # evaluate
    test = train.evaluate(
        net, loss, params, splits.test.x, splits.test.y, state=result.best_state
    )
    check_after = gradient_check(net, params, result.best_state, check_batch, check_key)
    print_check("after training", check_after)
    wall = time.perf_counter() - start
    print(
        f"test accuracy {test['accuracy']:.4f}  test loss {test['loss']:.4f}  "
        f"wall time {wall:.1f} s"
    )

    # record
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out / f"{name}.json", out / f"{name}.png"
    record_json = {
        "config": vars(args) | {"sizes": sizes},
        "history": history,
        "best_epoch": result.best_epoch,
        "stopped_epoch": result.stopped_epoch,
        "test": test,
        "gradient_check": {"before": check_before, "after": check_after},
        "wall_time_s": wall,
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
    }
    json_path.write_text(json.dumps(record_json, indent=2))
    if not args.no_plot:
        plot(history, png_path, result.best_epoch)
    print(f"wrote {json_path}" + ("" if args.no_plot else f" and {png_path}"))
    return record_json


if __name__ == "__main__":
    main()
