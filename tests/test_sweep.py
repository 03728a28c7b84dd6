"""Sweeps: every member equals its own run, in one compilation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import data, layers, losses, optim, sweep, train
from tests._oracles import assert_trees_close


@pytest.fixture(scope="module")
def digits():
    splits = data.load_digits()
    # A subset keeps each compiled sweep small and the tests quick.
    return data.Splits(
        data.Dataset(splits.train.x[:256], splits.train.y[:256]),
        data.Dataset(splits.val.x[:128], splits.val.y[:128]),
        data.Dataset(splits.test.x[:128], splits.test.y[:128]),
    )


def sgd_of(hp):
    return optim.sgd(hp["learning_rate"])


def test_closed_form_quadratic_in_one_compilation():
    # L(w) = 0.5 (w - 3)^2 from w = 0; w_t = 3 (1 - (1 - lr)^t).
    net = layers.Dense(1, W_init="zeros", use_bias=False)
    x, t = np.ones((1, 1), np.float32), np.full((1, 1), 3.0, np.float32)
    traces = []
    sweep_fn = sweep.make_sweep(
        net,
        losses.mse,
        sgd_of,
        (x, t),
        epochs=50,
        batch_size=None,
        trace_counter=lambda: traces.append(1),
    )
    result = sweep_fn(sweep.paired(learning_rate=[0.1, 0.01, 0.001]))
    # A second sweep of as many members reuses the compiled program.
    again = sweep_fn(sweep.paired(learning_rate=[0.2, 0.02, 0.002]))
    lr = np.array([0.1, 0.01, 0.001])
    closed = 3 * (1 - (1 - lr) ** 50)
    np.testing.assert_allclose(closed, [2.984539, 1.184982, 0.146383], rtol=1e-6)
    np.testing.assert_allclose(result.best_params["W"].ravel(), closed, rtol=1e-5)
    closed_again = 3 * (1 - (1 - 2 * lr) ** 50)
    np.testing.assert_allclose(again.best_params["W"].ravel(), closed_again, rtol=1e-5)
    assert len(traces) == 1
    assert result.status == ["finished"] * 3


def test_each_member_equals_its_own_run(digits):
    net = layers.mlp([64, 16, 10], "tanh")
    # SGD with momentum, not Adam: Adam divides by sqrt(v), which turns the
    # last-bit differences of a near-zero gradient (vmap rounds the wide
    # first-layer product differently) into whole steps of size lr.
    hp = sweep.paired(learning_rate=[0.1, 0.03, 0.01], seed=[0, 1, 2])
    kwargs = dict(val=digits.val, test=digits.test, epochs=3, batch_size=32)

    def momentum_of(hp):
        return optim.sgd(hp["learning_rate"], momentum=0.9)

    together = sweep.run(
        net, losses.softmax_cross_entropy, momentum_of, hp, digits.train, **kwargs
    )
    for i in (0, 2):
        alone = sweep.run(
            net,
            losses.softmax_cross_entropy,
            momentum_of,
            sweep.paired(**{k: v[i : i + 1] for k, v in hp.values.items()}),
            digits.train,
            **kwargs,
        )
        member = jax_tree_index(together.best_params, i)
        assert_trees_close(member, jax_tree_index(alone.best_params, 0), 1e-5)
        for name, values in together.history.items():
            np.testing.assert_allclose(values[i], alone.history[name][0], rtol=1e-5)
        for name, values in together.test.items():
            np.testing.assert_allclose(values[i], alone.test[name][0], rtol=1e-5)


def jax_tree_index(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


def test_seeds_set_the_init(digits):
    result = sweep.run(
        layers.mlp([64, 16, 10], "relu"),
        losses.softmax_cross_entropy,
        sgd_of,
        sweep.paired(learning_rate=[0.0, 0.0, 0.0], seed=[0, 0, 1]),
        digits.train,
        epochs=1,
    )
    w = result.best_params[0]["W"]
    np.testing.assert_array_equal(w[0], w[1])
    assert not np.allclose(w[0], w[2])


def fixed_init(key, shape, dtype):
    """An initializer that ignores its key: every seed gets the same params."""
    del key
    return 0.3 * jax.random.normal(jax.random.key(42), shape, dtype)


def test_seeds_set_the_dropout_masks(digits):
    # The init ignores the seed and the learning rate is 0, so the params are
    # the same for every member at every step: only the dropout masks can
    # make their training losses differ.
    net = layers.serial(
        layers.Dense(16, W_init=fixed_init),
        layers.Activation("relu"),
        layers.Dropout(0.5),
        layers.Dense(10, W_init=fixed_init),
    )
    result = sweep.run(
        net,
        losses.softmax_cross_entropy,
        sgd_of,
        sweep.paired(learning_rate=[0.0, 0.0, 0.0], seed=[0, 0, 1]),
        digits.train,
        epochs=2,
    )
    for leaf in jax.tree.leaves(result.best_params):
        np.testing.assert_array_equal(leaf[0], leaf[2])
    loss = result.history["train_loss"]
    np.testing.assert_array_equal(loss[0], loss[1])
    assert np.all(loss[0] != loss[2])
    # The masks change from step to step: the same params, other epoch losses.
    assert loss[0, 0] != loss[0, 1]


def test_a_member_equals_train_fit_with_its_seed(digits):
    # An independent code path: train.fit with key(seed) and the member's
    # hyperparameters; the sweep draws the minibatch order as fit does from
    # key(data_seed), so data_seed is that member's seed.
    net = layers.mlp([64, 16, 10], "tanh", dropout=0.2)
    loss = losses.softmax_cross_entropy

    def momentum_of(hp):
        return optim.sgd(hp["learning_rate"], momentum=0.9)

    result = sweep.run(
        net,
        loss,
        momentum_of,
        sweep.paired(learning_rate=[0.1, 0.03, 0.03], seed=[5, 5, 9]),
        digits.train,
        val=digits.val,
        epochs=4,
        batch_size=32,
        patience=2,
        data_seed=5,
    )
    alone = train.fit(
        net,
        loss,
        optim.sgd(0.03, momentum=0.9),
        digits.train,
        digits.val,
        epochs=4,
        key=jax.random.key(5),
        batch_size=32,
        early_stopping=train.EarlyStopping("val_loss", patience=2),
    )
    member = 1
    for mine, theirs in [
        ("train_loss", "loss"),
        ("train_accuracy", "accuracy"),
        ("val_loss", "val_loss"),
        ("val_accuracy", "val_accuracy"),
    ]:
        np.testing.assert_allclose(
            result.history[mine][member], alone.history[theirs], rtol=1e-5
        )
    assert result.best_epoch[member] + 1 == alone.best_epoch
    assert result.status[member] == "finished" and alone.stopped_epoch is None
    assert_trees_close(
        jax_tree_index(result.best_params, member), alone.best_params, 1e-5
    )
    # The other seed at the same learning rate is another run.
    assert not np.allclose(result.history["val_loss"][2], alone.history["val_loss"])


def test_a_diverging_member_leaves_the_others_alone(digits):
    net = layers.mlp([64, 16, 10], "relu")
    kwargs = dict(val=digits.val, epochs=3, batch_size=32)
    with_it = sweep.run(
        net,
        losses.softmax_cross_entropy,
        sgd_of,
        sweep.paired(learning_rate=[0.05, 1e6, 0.01]),
        digits.train,
        **kwargs,
    )
    without = sweep.run(
        net,
        losses.softmax_cross_entropy,
        sgd_of,
        sweep.paired(learning_rate=[0.05, 0.01]),
        digits.train,
        **kwargs,
    )
    assert with_it.status == ["finished", "diverged", "finished"]
    for mine, theirs in ((0, 0), (2, 1)):
        assert_trees_close(
            jax_tree_index(with_it.best_params, mine),
            jax_tree_index(without.best_params, theirs),
            1e-6,
        )
        np.testing.assert_allclose(
            with_it.history["val_loss"][mine],
            without.history["val_loss"][theirs],
            rtol=1e-6,
        )
    assert np.all(np.isfinite(jnp.asarray(with_it.history["val_loss"][[0, 2]])))


def test_early_stopping_freezes_a_member_while_others_go_on(digits):
    net = layers.mlp([64, 16, 10], "relu")
    result = sweep.run(
        net,
        losses.softmax_cross_entropy,
        lambda hp: optim.adam(hp["learning_rate"]),
        # Adam at lr 20 makes no progress on the validation loss after its
        # first epochs; lr 1e-3 improves every epoch.
        sweep.paired(learning_rate=[1e-3, 20.0]),
        digits.train,
        val=digits.val,
        epochs=8,
        patience=2,
    )
    assert result.status == ["finished", "stopped"]
    stopped_after = result.best_epoch[1] + 2
    val = result.history["val_loss"]
    assert np.all(np.isnan(val[1, stopped_after + 1 :]))
    assert np.all(np.isfinite(val[0]))
    assert result.best_epoch[0] == 7


def test_grid_and_paired_shapes_and_errors():
    g = sweep.grid(learning_rate=[0.1, 0.01, 0.001, 1e-4], weight_decay=[0.0, 1e-3])
    assert g.shape == (4, 2) and g.size == 8
    np.testing.assert_allclose(g.values["learning_rate"][:2], [0.1, 0.1])
    np.testing.assert_allclose(g.values["weight_decay"][:2], [0.0, 1e-3])
    with pytest.raises(
        ValueError,
        match=r"same length; got lengths "
        r"\{'learning_rate': 3, 'momentum': 2\}",
    ):
        sweep.paired(learning_rate=[0.1, 0.01, 0.001], momentum=[0.9, 0.0])
    with pytest.raises(ValueError, match="seed must list integers"):
        sweep.grid(seed=[0.5])


def test_result_table_and_json(tmp_path, digits):
    result = sweep.run(
        layers.mlp([64, 8, 10]),
        losses.softmax_cross_entropy,
        sgd_of,
        sweep.grid(learning_rate=[0.1, 0.01]),
        digits.train,
        val=digits.val,
        test=digits.test,
        epochs=2,
    )
    table = result.table().splitlines()
    assert table[0].split() == [
        "learning_rate",
        "best_epoch",
        "best_val_loss",
        "test_accuracy",
        "test_loss",
        "status",
    ]
    assert len(table) == 4
    result.to_json(tmp_path / "sweep.json")
    import json

    record = json.loads((tmp_path / "sweep.json").read_text())
    assert record["grid_shape"] == [2]
    assert len(record["members"]) == 2
    assert result.best() in (0, 1)


def test_a_member_diverged_before_its_first_good_epoch(tmp_path, digits):
    # lr 1e6 diverges within the first epoch: no finite validation loss ever.
    result = sweep.run(
        layers.mlp([64, 16, 10], "relu"),
        losses.softmax_cross_entropy,
        sgd_of,
        sweep.paired(learning_rate=[0.05, 1e6]),
        digits.train,
        val=digits.val,
        test=digits.test,
        epochs=2,
    )
    assert result.status == ["finished", "diverged"]
    assert result.best_epoch[1] == -1
    assert np.isnan(result.best_metric[1])
    # Its params are still the initial ones; no test metric describes them.
    assert np.isnan(result.test["loss"][1]) and np.isnan(result.test["accuracy"][1])
    assert np.isfinite(result.test["accuracy"][0])
    rows = result.rows()
    assert rows[0]["best_epoch"] == 2 and rows[1]["best_epoch"] is None
    last = result.table().splitlines()[-1].split()
    assert last[0] == "1e+06" and last[1] == "-" and last[-1] == "diverged"

    result.to_json(tmp_path / "sweep.json")
    import json

    member = json.loads((tmp_path / "sweep.json").read_text())["members"][1]
    assert member["best_epoch"] is None
    assert member["best_val_loss"] is None
    assert member["test_accuracy"] is None and member["test_loss"] is None
    assert member["status"] == "diverged"


def quadratic_sweep(learning_rates, **kwargs):
    """SGD on 0.5 (w - 3)^2 from w = 0, full batch: one step an epoch."""
    net = layers.Dense(1, W_init="zeros", use_bias=False)
    x, t = np.ones((1, 1), np.float32), np.full((1, 1), 3.0, np.float32)
    return sweep.run(
        net,
        losses.mse,
        sgd_of,
        sweep.paired(learning_rate=learning_rates),
        (x, t),
        batch_size=None,
        **kwargs,
    )


def test_params_that_overflow_on_the_last_step_mean_diverged():
    # One step: the loss at w = 0 is 4.5 (finite), then w = 3e38 * 3 = inf.
    result = quadratic_sweep([0.1, 3e38], epochs=1)
    assert result.status == ["finished", "diverged"]
    assert result.best_epoch.tolist() == [0, -1]
    # The diverged member keeps its initial params as its best, not inf.
    np.testing.assert_array_equal(result.best_params["W"][1], [[0.0]])
    np.testing.assert_allclose(result.best_params["W"][0], [[0.3]], rtol=1e-6)


def test_a_non_finite_validation_loss_means_diverged():
    # Finite params, but w * 1e20 squared overflows float32 unless w = 0.
    val = (np.full((1, 1), 1e20, np.float32), np.zeros((1, 1), np.float32))
    result = quadratic_sweep([0.0, 0.1], val=val, epochs=3)
    assert np.isinf(result.history["val_loss"][1, 0])
    assert np.all(np.isfinite(result.best_params["W"]))
    assert result.status == ["finished", "diverged"]
    np.testing.assert_array_equal(result.history["val_loss"][0], [0.0, 0.0, 0.0])
    assert np.all(np.isnan(result.history["val_loss"][1, 1:]))


# bad input


def quadratic(**overrides):
    """The arguments of a small sweep on 0.5 (w - 3)^2, to be overridden."""
    x, t = np.ones((1, 1), np.float32), np.full((1, 1), 3.0, np.float32)
    return (
        dict(
            network=layers.Dense(1, W_init="zeros", use_bias=False),
            loss=losses.mse,
            optimizer=sgd_of,
            train=(x, t),
            epochs=2,
            batch_size=None,
        )
        | overrides
    )


@pytest.mark.parametrize(
    "lists, message",
    [
        (
            dict(seed=[2**40]),
            r"seed must list integers in \[0, 2\*\*32 - 1\].*got 1099511627776",
        ),
        (dict(seed=[-1]), r"seed must list integers in .*got -1"),
        (dict(seed=[0.5]), r"seed must list integers"),
        (dict(learning_rate=[0.1, 0.1 + 1j]), r"learning_rate must list real numbers"),
        (dict(learning_rate=[0.1, np.nan]), r"learning_rate must list finite"),
        (
            dict(momentum=[1e39]),
            r"momentum must list finite float32 numbers; got \[1e\+39\]",
        ),
        (dict(l2=[0.0, -1e-3]), r"l2, the L2 strength, must be >= 0; got \[-0.001\]"),
        (dict(dropout=[True, False]), r"dropout must list numbers"),
    ],
)
def test_bad_hyperparameter_values_name_the_hyperparameter(lists, message):
    for make in (sweep.grid, sweep.paired):
        with pytest.raises(ValueError, match=message):
            make(**lists)


def test_the_largest_seed_is_jax_random_keys():
    import jax

    net = layers.Dense(1)
    result = sweep.run(
        **quadratic(network=net, optimizer=lambda hp: optim.sgd(0.0), epochs=1),
        hyperparams=sweep.paired(seed=[2**32 - 1, 7]),
    )
    for i, seed in enumerate([2**32 - 1, 7]):
        _, params, _ = net.init(jax.random.split(jax.random.key(seed))[0], (1,))
        np.testing.assert_array_equal(result.best_params["W"][i], params["W"])


def test_lowering_first_still_records_what_the_factories_read():
    # The learning rate is read only inside a schedule, that is while the
    # program is traced; lowering it first must record that read too.
    sweep_fn = sweep.make_sweep(
        **quadratic(optimizer=lambda hp: optim.sgd(lambda count: hp["learning_rate"]))
    )
    hp = sweep.paired(learning_rate=[0.1, 0.01])
    assert "while" in sweep_fn.lower(hp).as_text()
    w = np.asarray(sweep_fn(hp).best_params["W"]).ravel()
    np.testing.assert_allclose(w, 3 * (1 - (1 - np.array([0.1, 0.01])) ** 2), rtol=1e-5)


def test_a_misspelt_hyperparameter_is_an_error_before_training():
    sweep_fn = sweep.make_sweep(**quadratic())
    hp = sweep.paired(learning_rate=[0.1, 0.1], wieght_decay=[0.0, 1.0])
    with pytest.raises(
        ValueError, match=r"\['wieght_decay'\] are never read.*read \['learning_rate'\]"
    ):
        sweep_fn(hp)
    # The sweep stays usable.
    assert sweep_fn(sweep.paired(learning_rate=[0.1, 0.2])).status == ["finished"] * 2


def test_a_missing_hyperparameter_lists_the_names_there_are():
    kwargs = quadratic(optimizer=lambda hp: optim.sgd(hp["lr"]))
    hp = sweep.paired(learning_rate=[0.1], seed=[0])
    with pytest.raises(
        KeyError,
        match=r"optimizer read the hyperparameter 'lr', which this sweep does not "
        r"have; its hyperparameters are \['learning_rate', 'seed'\]",
    ):
        sweep.run(hyperparams=hp, **kwargs)


def test_optional_and_lazily_read_hyperparameters_count_as_read():
    def optimizer(hp):
        # A default through get, and a schedule that reads when it is called.
        momentum = hp.get("momentum", 0.0)
        return optim.sgd(lambda count: hp["learning_rate"], momentum=momentum)

    hp = sweep.paired(learning_rate=[0.1, 0.01])
    result = sweep.run(hyperparams=hp, **quadratic(optimizer=optimizer, epochs=50))
    # w_50 = 3 (1 - (1 - lr)^50): the schedule read each member's rate.
    np.testing.assert_allclose(
        result.best_params["W"].ravel(), [2.984539, 1.184982], rtol=1e-5
    )
    both = sweep.paired(learning_rate=[0.1, 0.1], momentum=[0.0, 0.5])
    result = sweep.run(hyperparams=both, **quadratic(optimizer=optimizer))
    assert result.best_params["W"][0] != result.best_params["W"][1]


@pytest.mark.parametrize(
    "argument, value, error, message",
    [
        (
            "optimizer",
            optim.sgd(0.1),
            TypeError,
            r"optimizer must be a function hp -> GradientTransformation, e\.g\. "
            r"lambda hp: optim\.sgd\(hp\['learning_rate'\]\); "
            r"got GradientTransformation",
        ),
        (
            "optimizer",
            lambda hp: hp["learning_rate"],
            TypeError,
            r"optimizer\(hp\) must return an optax\.GradientTransformation; "
            r"got float 0\.1",
        ),
        (
            "network",
            "mlp",
            TypeError,
            r"network must be a layers\.Layer, or a function hp -> Layer .*; "
            r"got str 'mlp'",
        ),
        (
            "network",
            lambda hp: "mlp",
            TypeError,
            r"network\(hp\) must return a layers\.Layer; got str 'mlp'",
        ),
        (
            "loss",
            jnp.sum,
            TypeError,
            r"loss must be a funcnet\.losses\.Loss, such as .*; "
            r"got function <function sum",
        ),
    ],
)
def test_bad_factories_and_loss_name_the_argument(argument, value, error, message):
    with pytest.raises(error, match=message):
        sweep.run(
            hyperparams=sweep.paired(learning_rate=[0.1]),
            **quadratic(**{argument: value}),
        )


def test_each_members_values_meet_the_factories_checks_before_tracing():
    traces = []
    kwargs = quadratic(trace_counter=lambda: traces.append(1))
    with pytest.raises(
        ValueError, match=r"learning_rate must lie in \[0.0, inf\); got \[?-0.1\]?\."
    ):
        sweep.run(hyperparams=sweep.paired(learning_rate=[0.1, -0.1]), **kwargs)
    net = lambda hp: layers.serial(layers.Dropout(hp["rate"]), layers.Dense(1))  # noqa: E731
    with pytest.raises(ValueError, match=r"rate"):
        sweep.run(
            hyperparams=sweep.paired(learning_rate=[0.1, 0.1], rate=[0.5, 1.5]),
            **(kwargs | {"network": net}),
        )
    assert traces == []


def test_the_heatmap_marks_diverged_members(tmp_path):
    pytest.importorskip("matplotlib", reason="the docs extra installs matplotlib")
    import matplotlib.image

    # lr 3e38 sends w to inf in the first step: no best value, diverged.
    result = quadratic_sweep_grid(
        sweep.grid(learning_rate=[0.1, 0.5, 3e38], l2=[0.0, 0.01])
    )
    assert result.status == ["finished"] * 4 + ["diverged"] * 2
    paths = result.plot(tmp_path)
    assert [p.name for p in paths] == [
        "sweep_curves.png",
        "sweep_train_loss_vs_learning_rate.png",
        "sweep_heatmap.png",
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(paths[-1])[..., :3]
    # The diverged cells are light red (#f4a582) under black hatching, a
    # colour viridis never draws; a blank cell would be white.
    face = np.array([0xF4, 0xA5, 0x82]) / 255
    light_red = np.all(np.abs(pixels - face) < 0.02, axis=-1)
    assert light_red.sum() > 1000


def quadratic_sweep_grid(hyperparams):
    x, t = np.ones((1, 1), np.float32), np.full((1, 1), 3.0, np.float32)
    return sweep.run(
        layers.Dense(1, W_init="zeros", use_bias=False),
        losses.mse,
        sgd_of,
        hyperparams,
        (x, t),
        epochs=3,
        batch_size=None,
    )


def test_every_public_function_documents_its_arguments_and_result():
    import inspect

    functions = [getattr(sweep, name) for name in sweep.__all__]
    for cls in (sweep.Hyperparams, sweep.SweepResult):
        functions += [
            f
            for name, f in vars(cls).items()
            if inspect.isfunction(f) and not name.startswith("_")
        ]
    for f in functions:
        if inspect.isclass(f):
            continue
        doc = inspect.getdoc(f) or ""
        takes = [p for p in inspect.signature(f).parameters if p != "self"]
        assert "Returns:" in doc, f"{f.__qualname__} has no Returns: section"
        if takes:
            assert "Args:" in doc, f"{f.__qualname__} has no Args: section"
