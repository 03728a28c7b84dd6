"""The epoch scan, fit, early stopping, divergence, resume and determinism.

Expected values come from hand calculations and from ``jax.grad`` of a loss
written out here, never from the code under test.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnet import checkpoint, data, layers, losses, optim, train

SIZES = [3, 8, 3]


@pytest.fixture
def dataset(key):
    x_key, y_key = jax.random.split(jax.random.fold_in(key, 1))
    x = jax.random.normal(x_key, (10, 3))
    y = jax.random.randint(y_key, (10,), 0, 3)
    return x, y


def _reference_loss(params, x, y):
    """Mean softmax cross-entropy of the 3-8-3 relu mlp, written out by hand."""
    hidden = jax.nn.relu(x @ params[0]["W"] + params[0]["b"][None, :])
    logits = hidden @ params[2]["W"] + params[2]["b"][None, :]
    picked = jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)
    return -jnp.mean(picked)


def _sgd_steps(params, batches, learning_rate):
    for x, y in batches:
        grads = jax.grad(_reference_loss)(params, x, y)
        params = jax.tree.map(lambda p, g: p - learning_rate * g, params, grads)
    return params


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _fit(dataset, **kwargs):
    kwargs = {
        "epochs": 3,
        "batch_size": 4,
        "key": jax.random.key(0),
        **kwargs,
    }
    return train.fit(
        layers.mlp(SIZES),
        losses.softmax_cross_entropy,
        optim.adam(1e-2),
        dataset,
        **kwargs,
    )


# epoch


def test_epoch_metrics_are_weighted_by_example_count(key):
    # Zero params and a zero update: example i has loss 0.5 * t_i**2 = i.
    net = layers.mlp([1, 1])
    optimizer = optax.set_to_zero()
    _, params, state = net.init(key)
    params = jax.tree.map(jnp.zeros_like, params)
    ts = train.TrainState(params, state, optimizer.init(params), jnp.int32(0), key)
    x = jnp.ones((10, 1))
    t = jnp.sqrt(2.0 * jnp.arange(1.0, 11.0))[:, None]

    epoch = train.make_epoch(
        net, losses.mse, optimizer, batch_size=4, shuffle=False, donate=False
    )
    _, metrics = epoch(ts, x, t)
    np.testing.assert_allclose(metrics["step_loss"], [2.5, 6.5, 9.5], rtol=1e-6)
    np.testing.assert_allclose(metrics["loss"], 5.5, rtol=1e-6)
    assert float(metrics["count"]) == 10.0

    shuffled = train.make_epoch(net, losses.mse, optimizer, batch_size=4, donate=False)
    _, metrics = shuffled(ts, x, t)
    np.testing.assert_allclose(metrics["loss"], 5.5, rtol=1e-6)

    dropping = train.make_epoch(
        net, losses.mse, optimizer, batch_size=4, shuffle=False, drop_last=True
    )
    _, metrics = dropping(ts, x, t)
    np.testing.assert_allclose(metrics["loss"], (2.5 + 6.5) / 2, rtol=1e-6)
    assert float(metrics["count"]) == 8.0


@pytest.mark.parametrize("mode", ["manual", "autodiff"])
def test_padded_last_batch_matches_unpadded_steps(dataset, key, mode):
    x, y = dataset
    net, optimizer = layers.mlp(SIZES), optax.sgd(0.1)
    ts = train.init_train_state(net, optimizer, key=key)
    expected = _sgd_steps(
        ts.params, [(x[:4], y[:4]), (x[4:8], y[4:8]), (x[8:], y[8:])], 0.1
    )

    epoch = train.make_epoch(
        net,
        losses.softmax_cross_entropy,
        optimizer,
        batch_size=4,
        mode=mode,
        shuffle=False,
    )
    ts, _ = epoch(ts, x, y)

    assert int(ts.step) == 3
    for got, want in zip(jax.tree.leaves(ts.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_full_batch_is_one_gradient_step(dataset, key):
    x, y = dataset
    net, optimizer = layers.mlp(SIZES), optax.sgd(0.5)
    ts = train.init_train_state(net, optimizer, key=key)
    expected = _sgd_steps(ts.params, [(x, y)], 0.5)

    epoch = train.make_epoch(
        net, losses.softmax_cross_entropy, optimizer, batch_size=None
    )
    ts, metrics = epoch(ts, x, y)

    assert int(ts.step) == 1 and metrics["step_loss"].shape == (1,)
    for got, want in zip(jax.tree.leaves(ts.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [3, 8, 10, 13])
def test_one_compilation_per_epoch_function(key, n):
    traces = []
    base = layers.mlp(SIZES)

    def forward(*args, **kwargs):
        traces.append(1)
        return base.forward(*args, **kwargs)

    net, optimizer = base._replace(forward=forward), optim.adam(1e-3)
    ts = train.init_train_state(net, optimizer, key=key)
    x, y = jnp.ones((n, 3)), jnp.zeros((n,), jnp.int32)
    epoch = train.make_epoch(net, losses.softmax_cross_entropy, optimizer, batch_size=4)

    ts, _ = epoch(ts, x, y)
    traced_once = len(traces)
    for _ in range(3):
        ts, _ = epoch(ts, x, y)

    assert traced_once >= 1
    assert len(traces) == traced_once
    assert int(ts.step) == 4 * -(-n // 4)


def _counting(network):
    """``network`` whose forward counts the times it is traced (or run)."""
    traces = []

    def forward(*args, **kwargs):
        traces.append(1)
        return network.forward(*args, **kwargs)

    return network._replace(forward=forward), traces


def test_fit_compiles_its_epoch_once(dataset, tmp_path):
    # Run eagerly, the forward would be called once per step (9 steps in 3
    # epochs of 10 examples in batches of 4) and once per validation. Traced
    # once, it is called twice: the epoch's scan and the evaluation, however
    # many epochs run, and again twice in a resumed run.
    net, traces = _counting(layers.mlp(SIZES))

    def run(epochs, **kwargs):
        traces.clear()
        train.fit(
            net,
            losses.softmax_cross_entropy,
            optim.adam(1e-2),
            dataset,
            dataset,
            epochs=epochs,
            batch_size=4,
            key=jax.random.key(0),
            checkpoint_dir=tmp_path,
            **kwargs,
        )
        return len(traces)

    assert run(1) == 2
    assert run(3) == 2
    assert run(5, resume=True) == 2


def test_layer_state_and_keys_are_carried(key):
    # A layer whose state counts its training calls and sums one draw of
    # its key: the count checks the state is carried, the sums that every
    # step gets a key of its own.
    def init(key, input_shape):
        del key
        return input_shape, (), (jnp.int32(0), jnp.zeros(4))

    def forward(params, state, x, *, key=None, train=True):
        count, draws = state
        draw = jax.random.uniform(key, ())
        draws = draws.at[count].set(draw)
        return x, (count + 1, draws), None

    def backward(params, residuals, dy):
        return (), dy

    probe = layers.Layer(init, forward, backward, name="probe")
    net = layers.serial(layers.Dense(2), probe)
    optimizer = optim.sgd(0.1)
    ts = train.init_train_state(net, optimizer, key=key, input_shape=(3,))
    epoch = train.make_epoch(net, losses.mse, optimizer, batch_size=2)
    ts, _ = epoch(ts, jnp.ones((7, 3)), jnp.zeros((7, 2)))

    count, draws = ts.state[1]
    assert int(count) == 4
    assert len(set(np.asarray(draws).tolist())) == 4


def test_dropout_and_batch_norm_train_and_update_statistics(dataset, key):
    net = layers.mlp(SIZES, dropout=0.5, batch_norm=True)
    optimizer = optim.adam(1e-2)
    ts = train.init_train_state(net, optimizer, key=key)
    before = jax.tree.map(np.asarray, ts.state)
    epoch = train.make_epoch(net, losses.softmax_cross_entropy, optimizer, batch_size=4)
    ts, metrics = epoch(ts, *dataset)

    assert np.isfinite(metrics["loss"])
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(ts.state))
    ]
    assert any(changed)


@pytest.mark.parametrize("n", [1, 2, 7, 1078, 5000])
def test_epoch_order_is_a_permutation(n):
    order = jax.jit(data.permutation, static_argnums=1)(jax.random.key(n), n)
    np.testing.assert_array_equal(np.sort(np.asarray(order)), np.arange(n))


def test_epoch_order_is_uniform_over_permutations():
    keys = jax.random.split(jax.random.key(7), 12000)
    draws = np.asarray(jax.vmap(lambda k: data.permutation(k, 5))(keys))
    _, counts = np.unique(draws, axis=0, return_counts=True)
    expected = len(keys) / 120
    chi2 = np.sum((counts - expected) ** 2 / expected)
    # All 5! = 120 orders appear; chi-square with 119 degrees of freedom has
    # its 99.9% quantile at about 170.
    assert len(counts) == 120
    assert chi2 < 170


def test_epoch_validation_messages(key):
    net, optimizer = layers.mlp(SIZES), optim.sgd(0.1)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        train.make_epoch(net, losses.mse, optimizer, batch_size=0)
    with pytest.raises(ValueError, match="drop_last must be True or False"):
        train.make_epoch(net, losses.mse, optimizer, drop_last="yes")
    epoch = train.make_epoch(net, losses.softmax_cross_entropy, optimizer)
    ts = train.init_train_state(net, optimizer, key=key)
    with pytest.raises(ValueError, match=r"same number of rows.*\(5, 3\) and \(4,\)"):
        epoch(ts, jnp.ones((5, 3)), jnp.zeros((4,), jnp.int32))


# fit


def test_same_seed_is_bit_identical(dataset):
    first = _fit(dataset, val_data=dataset)
    second = _fit(dataset, val_data=dataset)
    _assert_trees_equal(first.train_state, second.train_state)
    for name in first.history:
        np.testing.assert_array_equal(first.history[name], second.history[name])

    other = _fit(dataset, key=jax.random.key(1))
    assert not np.array_equal(
        other.train_state.params[0]["W"], first.best_params[0]["W"]
    )


def test_resume_after_save_and_restore_is_bit_identical(dataset, key, tmp_path):
    net, optimizer = layers.mlp(SIZES), optim.adam(1e-2)
    epoch = train.make_epoch(net, losses.softmax_cross_entropy, optimizer, batch_size=4)

    uninterrupted = train.init_train_state(net, optimizer, key=key)
    for _ in range(5):
        uninterrupted, _ = epoch(uninterrupted, *dataset)

    ts = train.init_train_state(net, optimizer, key=key)
    for _ in range(3):
        ts, _ = epoch(ts, *dataset)
    path = checkpoint.save(tmp_path / "three.npz", ts)
    template = train.init_train_state(net, optimizer, key=jax.random.key(42))
    restored, _ = checkpoint.restore(path, template)
    assert jax.tree.structure(restored) == jax.tree.structure(ts)
    for _ in range(2):
        restored, _ = epoch(restored, *dataset)

    _assert_trees_equal(restored, uninterrupted)


def test_fit_resumes_from_its_checkpoint_exactly(dataset, tmp_path):
    stop = train.EarlyStopping("val_loss", patience=10)
    full = _fit(dataset, val_data=dataset, epochs=5, early_stopping=stop)

    first = _fit(
        dataset,
        val_data=dataset,
        epochs=3,
        early_stopping=stop,
        checkpoint_dir=tmp_path,
        checkpoint_every=2,
    )
    assert checkpoint.read_metadata(tmp_path / train.CHECKPOINT_NAME)["epoch"] == 3
    resumed = _fit(
        dataset,
        val_data=dataset,
        epochs=5,
        early_stopping=stop,
        checkpoint_dir=tmp_path,
        resume=True,
    )

    assert len(first.history["loss"]) == 3
    _assert_trees_equal(resumed.train_state, full.train_state)
    _assert_trees_equal(resumed.best_params, full.best_params)
    assert resumed.best_epoch == full.best_epoch
    for name in full.history:
        np.testing.assert_array_equal(resumed.history[name], full.history[name])

    with pytest.raises(train.ResumeMismatchError, match="written by a run with"):
        _fit(dataset, epochs=6, batch_size=5, checkpoint_dir=tmp_path, resume=True)


@pytest.mark.parametrize(
    "given,message",
    [
        (
            {"early_stopping": train.EarlyStopping("val_loss", patience=4)},
            "early_stopping.patience=3, but this one has early_stopping.patience=4",
        ),
        (
            {"early_stopping": train.EarlyStopping("val_accuracy", "max", 3)},
            "early_stopping.monitor='val_loss', but this one has "
            "early_stopping.monitor='val_accuracy'",
        ),
        (
            {
                "early_stopping": train.EarlyStopping(
                    "val_loss", patience=3, min_delta=0.1
                )
            },
            "early_stopping.min_delta=0.0, but this one has "
            "early_stopping.min_delta=0.1",
        ),
        (
            {"early_stopping": None},
            "early_stopping={'monitor': 'val_loss', .*}, but this one has "
            "early_stopping=None",
        ),
        (
            {"run_config": {"lr": 0.02, "activation": "relu"}},
            r"run_config\['lr'\]=0.01, but this one has run_config\['lr'\]=0.02",
        ),
        (
            {"run_config": {"lr": 0.01}},
            r"run_config\['activation'\]='relu', but this one has "
            r"run_config\['activation'\]=<not set>",
        ),
        ({"batch_size": 5}, "batch_size=4, but this one has batch_size=5"),
    ],
)
def test_resume_with_other_settings_names_the_setting(
    dataset, tmp_path, given, message
):
    settings = {
        "early_stopping": train.EarlyStopping("val_loss", patience=3),
        "run_config": {"lr": np.float64(0.01), "activation": "relu"},
    }
    _fit(dataset, val_data=dataset, epochs=2, checkpoint_dir=tmp_path, **settings)
    with pytest.raises(
        train.ResumeMismatchError, match=f"written by a run with {message}"
    ):
        _fit(
            dataset,
            val_data=dataset,
            epochs=3,
            checkpoint_dir=tmp_path,
            resume=True,
            **(settings | given),
        )
    # The same settings resume.
    _fit(
        dataset,
        val_data=dataset,
        epochs=3,
        checkpoint_dir=tmp_path,
        resume=True,
        **settings,
    )


def test_early_stopping_returns_the_best_epochs_params(dataset):
    scripted = iter([1.0, 0.8, 0.7, 0.75, 0.9, 0.95, 0.6])
    stop = train.EarlyStopping("val_loss", mode="min", patience=3, min_delta=0.0)

    result = _fit(
        dataset,
        epochs=7,
        early_stopping=stop,
        validate=lambda train_state: {"loss": next(scripted)},
    )
    third = _fit(dataset, epochs=3)

    assert result.stopped_epoch == 6
    assert result.best_epoch == 3
    np.testing.assert_array_equal(
        result.history["val_loss"], [1.0, 0.8, 0.7, 0.75, 0.9, 0.95]
    )
    assert int(result.train_state.step) == 6 * 3
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(result.best_params))
    _assert_trees_equal(result.best_params, third.train_state.params)


def test_a_nan_monitored_value_is_no_improvement(dataset):
    # The first value is NaN: it is not a best that nothing can beat. The
    # run goes on, 1.0 is the first best, 0.9 the last, and three epochs
    # without improvement stop it after the sixth.
    scripted = iter([float("nan"), 1.0, 0.9, 0.95, float("nan"), 0.99, 0.5])
    stop = train.EarlyStopping("val_loss", patience=3)

    result = _fit(
        dataset,
        epochs=7,
        early_stopping=stop,
        validate=lambda train_state: {"loss": next(scripted)},
    )
    third = _fit(dataset, epochs=3)

    assert (result.best_epoch, result.stopped_epoch) == (3, 6)
    _assert_trees_equal(result.best_params, third.train_state.params)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_improves_with_nan_or_no_best(mode):
    stop = train.EarlyStopping(mode=mode)
    nan = float("nan")
    assert stop.improves(0.5, best=None) and stop.improves(0.5, best=nan)
    assert not stop.improves(nan, best=0.5)
    assert not stop.improves(nan, best=None) and not stop.improves(nan, best=nan)


def test_resume_mid_patience_keeps_the_wait(dataset, tmp_path):
    # The sequence of the early-stopping test, interrupted after epoch 4:
    # one epoch without improvement (0.75) is already counted, so the
    # resumed run still stops after epoch 6, before the 0.6 of epoch 7.
    stop = train.EarlyStopping("val_loss", mode="min", patience=3)
    before = iter([1.0, 0.8, 0.7, 0.75])
    after = iter([0.9, 0.95, 0.6])

    first = _fit(
        dataset,
        epochs=4,
        early_stopping=stop,
        validate=lambda train_state: {"loss": next(before)},
        checkpoint_dir=tmp_path,
    )
    resumed = _fit(
        dataset,
        epochs=7,
        early_stopping=stop,
        validate=lambda train_state: {"loss": next(after)},
        checkpoint_dir=tmp_path,
        resume=True,
    )
    third = _fit(dataset, epochs=3)

    assert first.stopped_epoch is None
    assert (resumed.best_epoch, resumed.stopped_epoch) == (3, 6)
    np.testing.assert_array_equal(
        resumed.history["val_loss"], [1.0, 0.8, 0.7, 0.75, 0.9, 0.95]
    )
    _assert_trees_equal(resumed.best_params, third.train_state.params)


def test_early_stopping_direction_and_min_delta():
    higher = train.EarlyStopping("val_accuracy", mode="max", min_delta=0.01)
    assert higher.improves(0.82, best=0.8)
    assert not higher.improves(0.805, best=0.8)
    lower = train.EarlyStopping(min_delta=0.1)
    assert lower.improves(0.5, best=0.7)
    assert not lower.improves(0.65, best=0.7)


def _poison(at_update):
    """An optimizer stage that turns the update of step ``at_update`` to NaN."""

    def init(params):
        del params
        return jnp.zeros((), jnp.int32)

    def update(updates, count, params=None):
        del params
        bad = jnp.where(count == at_update, jnp.nan, 0.0)
        return jax.tree.map(lambda u: u + bad.astype(u.dtype), updates), count + 1

    return optax.GradientTransformation(init, update)


def test_nan_params_stop_naming_epoch_and_step(dataset):
    # 3 steps an epoch; the update of global step 6, the first step of epoch
    # 3, makes the params NaN while that step's loss and gradient are finite.
    optimizer = optax.chain(optim.sgd(0.01), _poison(6))
    with pytest.raises(
        train.TrainingDivergedError,
        match=r"params became non-finite \(global norm nan\) at epoch 3, step 1 "
        r"of 3 \(global step 6\), whose loss was finite",
    ) as err:
        train.fit(
            layers.mlp(SIZES),
            losses.softmax_cross_entropy,
            optimizer,
            dataset,
            epochs=5,
            batch_size=4,
            key=jax.random.key(0),
        )
    assert isinstance(err.value, FloatingPointError)
    assert (err.value.epoch, err.value.step, err.value.global_step) == (3, 1, 6)
    assert len(err.value.history["loss"]) == 2


def _relu_fit(train_data, **kwargs):
    return train.fit(
        layers.mlp(SIZES, "relu"),
        losses.softmax_cross_entropy,
        train_data=train_data,
        key=jax.random.key(0),
        **kwargs,
    )


def test_a_nan_input_row_stops_a_relu_network(dataset):
    # Row 5 is in the second batch of the unshuffled first epoch: relu
    # passes its NaN on to the logits, so that step's loss is NaN.
    x, y = dataset
    x = x.at[5, 1].set(jnp.nan)
    with pytest.raises(
        train.TrainingDivergedError,
        match=r"training loss became nan at epoch 1, step 2 of 3 \(global step 1\)",
    ):
        _relu_fit(
            (x, y), optimizer=optim.sgd(0.1), epochs=3, batch_size=4, shuffle=False
        )


def test_params_overflowed_by_the_last_update_stop_the_run(dataset):
    # One full-batch step: its loss (about 1e3) and gradient are finite, but
    # a learning rate of 1e38 times a gradient entry above 3.4 overflows
    # float32, so the params leave the run infinite or NaN. The loss alone,
    # which no later step computes, would not show it.
    x, y = dataset
    with pytest.raises(
        train.TrainingDivergedError,
        match=r"params became non-finite \(global norm (inf|nan)\) at epoch 1, "
        r"step 1 of 1 .* its update overflowed",
    ):
        _relu_fit((1e3 * x, y), optimizer=optim.sgd(1e38), epochs=1, batch_size=None)


def test_a_nan_gradient_with_a_finite_loss_stops_the_run(key):
    # A layer that passes its input on unchanged but reports a NaN gradient
    # for its one param: the loss stays finite, the gradient does not, and
    # the update makes the param NaN.
    def init(key, input_shape):
        del key
        return input_shape, {"s": jnp.zeros(())}, ()

    def forward(params, state, x, *, key=None, train=True):
        return x, state, None

    def backward(params, residuals, dy):
        return {"s": jnp.full((), jnp.nan)}, dy

    broken = layers.Layer(init, forward, backward, name="broken")
    net = layers.serial(layers.Dense(3), broken)
    x, y = jnp.ones((8, 3)), jnp.zeros((8,), jnp.int32)
    with pytest.raises(
        train.TrainingDivergedError,
        match=r"params became non-finite \(global norm nan\) at epoch 1, step 1 "
        r"of 2 \(global step 0\), whose loss was finite \(1\.\d+\): its "
        r"gradient was NaN",
    ):
        train.fit(
            net,
            losses.softmax_cross_entropy,
            optim.sgd(0.1),
            (x, y),
            epochs=2,
            batch_size=4,
            key=key,
        )


def test_progress_bar_only_when_asked(dataset, capfd):
    pytest.importorskip("tqdm")
    _fit(dataset, epochs=2)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""

    _fit(dataset, epochs=2, val_data=dataset, progress=True)
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "2/2" in captured.err and "val_loss" in captured.err


def test_fit_validation_messages(dataset, key):
    with pytest.raises(ValueError, match="exactly one of key"):
        train.fit(
            layers.mlp(SIZES),
            losses.mse,
            optim.sgd(0.1),
            dataset,
            epochs=1,
        )
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        _fit(dataset, epochs=-1)
    with pytest.raises(ValueError, match="early_stopping.mode must be 'min' or 'max'"):
        _fit(dataset, early_stopping=train.EarlyStopping(mode="lower"))
    with pytest.raises(
        ValueError, match=r"monitor is 'val_loss'.*\['accuracy', 'loss'\]"
    ):
        _fit(dataset, early_stopping=train.EarlyStopping())
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        _fit(dataset, resume=True)
    with pytest.raises(ValueError, match="checkpoint_every=2 needs checkpoint_dir"):
        _fit(dataset, checkpoint_every=2)
    with pytest.raises(ValueError, match="key must be a JAX PRNG key.*got int: 0"):
        _fit(dataset, key=0)
    with pytest.raises(ValueError, match="train_data must be a pair"):
        _fit(dataset[0])
