"""funcnet.optim against optax, closed forms and hand calculations."""

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnet import optim

STEPS = 200


# Problem: a fixed random least-squares fit, gradients depend on the params.


def make_problem(dtype):
    """Inputs, targets and starting params {W (3, 2), b (2,)} in ``dtype``."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    params = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=(2,))}
    cast = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    return cast(x), cast(y), jax.tree.map(cast, params)


def loss(params, x, y):
    return 0.5 * jnp.mean(
        jnp.sum((x @ params["W"] + params["b"][None, :] - y) ** 2, -1)
    )


def trajectory(opt, params, x, y, steps=STEPS):
    """The params after each of ``steps`` steps, stacked along axis 0."""

    def step(carry, _):
        params, opt_state = carry
        grads = jax.grad(loss)(params, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), params

    _, path = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return path


def all_leaves(params):
    return jax.tree.map(lambda _: True, params)


def kernels_only(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


schedule = optax.linear_schedule(0.1, 0.01, STEPS)
cosine = optax.cosine_decay_schedule(0.02, STEPS)

# (id, funcnet optimizer, optax optimizer); built lazily, inside the dtype mode.
CASES = [
    ("sgd", lambda: optim.sgd(0.05), lambda: optax.sgd(0.05)),
    (
        "sgd-momentum",
        lambda: optim.sgd(0.05, momentum=0.9),
        lambda: optax.sgd(0.05, momentum=0.9),
    ),
    (
        "sgd-nesterov",
        lambda: optim.sgd(0.05, momentum=0.9, nesterov=True),
        lambda: optax.sgd(0.05, momentum=0.9, nesterov=True),
    ),
    (
        "sgd-schedule",
        lambda: optim.sgd(schedule, momentum=0.5),
        lambda: optax.sgd(schedule, momentum=0.5),
    ),
    ("rmsprop", lambda: optim.rmsprop(0.01), lambda: optax.rmsprop(0.01)),
    (
        "rmsprop-eps-outside",
        lambda: optim.rmsprop(0.01, eps=1e-3, eps_in_sqrt=False),
        lambda: optax.rmsprop(0.01, eps=1e-3, eps_in_sqrt=False),
    ),
    (
        "rmsprop-initial-scale",
        lambda: optim.rmsprop(0.01, decay=0.95, initial_scale=1.0),
        lambda: optax.rmsprop(0.01, decay=0.95, initial_scale=1.0),
    ),
    (
        "rmsprop-centered",
        lambda: optim.rmsprop(0.01, centered=True),
        lambda: optax.rmsprop(0.01, centered=True),
    ),
    (
        "rmsprop-centered-eps-outside",
        lambda: optim.rmsprop(0.01, eps=1e-3, eps_in_sqrt=False, centered=True),
        lambda: optax.rmsprop(0.01, eps=1e-3, eps_in_sqrt=False, centered=True),
    ),
    (
        "rmsprop-momentum",
        lambda: optim.rmsprop(0.01, momentum=0.9),
        lambda: optax.rmsprop(0.01, momentum=0.9),
    ),
    (
        "rmsprop-nesterov-centered",
        lambda: optim.rmsprop(0.01, centered=True, momentum=0.9, nesterov=True),
        lambda: optax.rmsprop(0.01, centered=True, momentum=0.9, nesterov=True),
    ),
    (
        "rmsprop-schedule",
        lambda: optim.rmsprop(cosine, momentum=0.5),
        lambda: optax.rmsprop(cosine, momentum=0.5),
    ),
    (
        "rmsprop-eps-1-inside",
        lambda: optim.rmsprop(0.01, decay=0.9, eps=1.0),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1.0),
    ),
    (
        "rmsprop-eps-1-outside",
        lambda: optim.rmsprop(0.01, decay=0.9, eps=1.0, eps_in_sqrt=False),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1.0, eps_in_sqrt=False),
    ),
    ("adam", lambda: optim.adam(0.01), lambda: optax.adam(0.01)),
    (
        "adam-eps-1e-3",
        lambda: optim.adam(0.01, eps=1e-3),
        lambda: optax.adam(0.01, eps=1e-3),
    ),
    (
        "adam-eps-root",
        lambda: optim.adam(0.01, b1=0.8, b2=0.99, eps=1e-3, eps_root=1e-8),
        lambda: optax.adam(0.01, b1=0.8, b2=0.99, eps=1e-3, eps_root=1e-8),
    ),
    ("adam-schedule", lambda: optim.adam(cosine), lambda: optax.adam(cosine)),
    (
        "adam-coupled-l2",
        lambda: optim.chain(optim.add_decayed_weights(0.1), optim.adam(0.01)),
        lambda: optax.chain(optax.add_decayed_weights(0.1), optax.adam(0.01)),
    ),
    (
        "adamw-default-mask",
        lambda: optim.adamw(0.01, weight_decay=0.1),
        lambda: optax.adamw(0.01, weight_decay=0.1, mask=kernels_only),
    ),
    (
        "adamw-all-leaves",
        lambda: optim.adamw(0.01, weight_decay=0.1, mask=all_leaves),
        lambda: optax.adamw(0.01, weight_decay=0.1),
    ),
    (
        "adamw-pytree-mask",
        lambda: optim.adamw(0.01, weight_decay=0.1, mask={"W": False, "b": True}),
        lambda: optax.adamw(0.01, weight_decay=0.1, mask={"W": False, "b": True}),
    ),
    (
        "adamw-schedules",
        lambda: optim.adamw(cosine, weight_decay=schedule, eps_root=1e-8),
        lambda: optax.adamw(
            cosine, weight_decay=schedule, eps_root=1e-8, mask=kernels_only
        ),
    ),
]

TOLERANCES = {"float32": 1e-6, "float64": 1e-12}


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize(
    "make_ours, make_theirs", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_trajectory_equals_optax(make_ours, make_theirs, precision):
    with jax.enable_x64(precision == "float64"):
        x, y, params = make_problem(precision)
        run = jax.jit(
            lambda p: (
                trajectory(make_ours(), p, x, y),
                trajectory(make_theirs(), p, x, y),
            )
        )
        ours, theirs = run(params)
        for leaf in jax.tree.leaves(ours):
            assert leaf.dtype == jnp.dtype(precision)
        chex.assert_trees_all_close(ours, theirs, rtol=TOLERANCES[precision], atol=0)
        # The trajectory moves: the test is not comparing two constants.
        assert float(loss(jax.tree.map(lambda p: p[-1], ours), x, y)) < float(
            loss(params, x, y)
        )


# Pinned first steps, by hand.


def first_update(opt, grad, param=0.0):
    params = jnp.full((1,), param)
    updates, _ = opt.update(jnp.full((1,), grad), opt.init(params), params)
    return float(updates[0])


def test_rmsprop_eps_inside_sqrt_first_update():
    # -0.01 / sqrt(0.1 * 1 + 1)
    opt = optim.rmsprop(0.01, decay=0.9, eps=1.0)
    assert first_update(opt, 1.0) == pytest.approx(-0.0095346, abs=5e-8)


def test_rmsprop_eps_outside_sqrt_first_update():
    # -0.01 / (sqrt(0.1 * 1) + 1)
    opt = optim.rmsprop(0.01, decay=0.9, eps=1.0, eps_in_sqrt=False)
    assert first_update(opt, 1.0) == pytest.approx(-0.0075975, abs=5e-8)


def test_adam_first_update_puts_eps_after_bias_correction():
    # m_hat = 1e-3, sqrt(v_hat) = 1e-3: -0.1 * 1e-3 / (1e-3 + 1e-3); TensorFlow's
    # eps-before-correction convention would give -0.00307 instead.
    opt = optim.adam(0.1, eps=1e-3)
    # float32 rounds 1e-3 ** 2 / (1 - 0.999) by a few ulps.
    assert first_update(opt, 1e-3) == pytest.approx(-0.05, rel=1e-5)
    with jax.enable_x64(True):
        assert first_update(opt, 1e-3) == pytest.approx(-0.05, rel=1e-12)


def test_coupled_l2_and_decoupled_weight_decay_differ():
    # w = 1, data gradient 0, lambda = 0.1, lr = 0.01, Adam defaults.
    w = {"W": jnp.ones((1, 1))}
    zero = {"W": jnp.zeros((1, 1))}
    coupled = optim.chain(optim.add_decayed_weights(0.1), optim.adam(0.01))
    decoupled = optim.adamw(0.01, weight_decay=0.1)
    results = []
    for opt in (coupled, decoupled):
        updates, _ = opt.update(zero, opt.init(w), w)
        results.append(float(optim.apply_updates(w, updates)["W"][0, 0]))
    # coupled: the L2 gradient 0.1 is rescaled by Adam to about 1, times lr.
    assert results[0] == pytest.approx(0.99, abs=1e-7)
    # decoupled: Adam's update of a zero gradient is 0; decay is lr * lambda.
    assert results[1] == pytest.approx(0.999, abs=1e-7)


def test_adamw_default_mask_skips_vectors_and_scalars():
    params = {
        "W": jnp.ones((2, 2)),
        "b": jnp.ones(2),
        "bn": {"scale": jnp.ones(2), "shift": jnp.ones(2)},
        "s": jnp.ones(()),
    }
    grads = jax.tree.map(jnp.zeros_like, params)
    opt = optim.adamw(0.01, weight_decay=0.1)
    updates, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(updates["W"], -0.001, rtol=1e-6)
    for leaf in jax.tree.leaves({k: v for k, v in updates.items() if k != "W"}):
        np.testing.assert_array_equal(leaf, 0.0)


# vmap, jit and scan.


def test_vmap_learning_rate_sweep_matches_closed_form_in_one_compilation():
    traces = []

    @jax.jit
    def sweep(learning_rates):
        traces.append(None)

        def run(learning_rate):
            opt = optim.sgd(learning_rate)

            def step(carry, _):
                w, opt_state = carry
                updates, opt_state = opt.update(w - 3.0, opt_state)
                return (optim.apply_updates(w, updates), opt_state), None

            w = jnp.zeros(())
            (w, _), _ = jax.lax.scan(step, (w, opt.init(w)), None, length=50)
            return w

        return jax.vmap(run)(learning_rates)

    learning_rates = jnp.array([0.1, 0.01, 0.001])
    expected = 3 * (1 - (1 - np.array([0.1, 0.01, 0.001])) ** 50)
    np.testing.assert_allclose(expected, [2.984539, 1.184982, 0.146383], atol=1e-6)
    np.testing.assert_allclose(sweep(learning_rates), expected, rtol=1e-5)
    sweep(jnp.array([0.2, 0.02, 0.002]))
    assert len(traces) == 1


OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.1, momentum=0.9, nesterov=True),
    "rmsprop": lambda: optim.rmsprop(0.01, centered=True, momentum=0.9),
    "adam": lambda: optim.adam(optax.linear_schedule(0.1, 0.0, 10)),
    "adamw": lambda: optim.adamw(0.01, weight_decay=lambda count: 1e-3 * count),
    "torch-sgd": lambda: optim.torch.sgd(0.1, momentum=0.9, dampening=0.1),
    "torch-rmsprop": lambda: optim.torch.rmsprop(momentum=0.9, weight_decay=0.1),
    "torch-adam": lambda: optim.torch.adam(weight_decay=0.1),
    "torch-adamw": lambda: optim.torch.adamw(),
}


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_jitted_update_keeps_state_structure_and_does_not_recompile(make):
    opt = make()
    traces = []

    @jax.jit
    def update(grads, opt_state, params):
        traces.append(None)
        return opt.update(grads, opt_state, params)

    x, y, params = make_problem("float32")
    opt_state = opt.init(params)
    grads = jax.grad(loss)(params, x, y)
    updates, new_state = update(grads, opt_state, params)
    chex.assert_trees_all_equal_structs(opt_state, new_state)
    chex.assert_trees_all_equal_shapes_and_dtypes(opt_state, new_state)
    chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
    params = optim.apply_updates(params, updates)
    update(jax.grad(loss)(params, x, y), new_state, params)
    assert len(traces) == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda h: optim.sgd(h, momentum=h, nesterov=True),
        lambda h: optim.rmsprop(
            h, decay=h, eps=h, initial_scale=h, centered=True, momentum=h
        ),
        lambda h: optim.adam(h, b1=h, b2=h, eps=h, eps_root=h),
        lambda h: optim.adamw(h, b1=h, b2=h, eps=h, weight_decay=h),
        lambda h: optim.torch.sgd(h, momentum=h, dampening=h, weight_decay=h),
        lambda h: optim.torch.rmsprop(h, alpha=h, eps=h, weight_decay=h, momentum=h),
        lambda h: optim.torch.adam(h, betas=(h, h), eps=h, weight_decay=h),
        lambda h: optim.torch.adamw(h, betas=(h, h), eps=h, weight_decay=h),
    ],
    ids=["sgd", "rmsprop", "adam", "adamw", "t-sgd", "t-rmsprop", "t-adam", "t-adamw"],
)
def test_traced_hyperparameters_equal_concrete_ones(make):
    # Every hyperparameter a tracer (0.5 stands for all of them), under jit.
    x, y, params = make_problem("float32")

    def run(h):
        return trajectory(make(h), params, x, y, steps=5)

    traced = jax.jit(run)(jnp.float32(0.5))
    concrete = jax.jit(lambda: run(0.5))()
    chex.assert_trees_all_close(traced, concrete, rtol=1e-6)


def test_float64_hyperparameters_keep_float32_state():
    with jax.enable_x64(True):
        params = jnp.ones(3, jnp.float32)
        h = jnp.asarray(0.5, jnp.float64)
        for opt in (
            optim.sgd(h, momentum=h),
            optim.rmsprop(h, decay=h, centered=True, momentum=h),
            optim.adamw(
                h, b1=h, b2=h, weight_decay=h, mask=optim.default_weight_decay_mask
            ),
            optim.torch.sgd(h, momentum=h, dampening=h),
        ):
            opt_state = opt.init(params)
            updates, new_state = opt.update(params, opt_state, params)
            assert updates.dtype == jnp.float32
            chex.assert_trees_all_equal_shapes_and_dtypes(opt_state, new_state)


# Validation: one message per error path; tracers pass.

BAD = [
    (lambda: optim.sgd(-0.1), r"learning_rate must lie in \[0.0, inf\); got -0.1\."),
    (
        lambda: optim.sgd(jnp.array([0.1, -0.2, 0.3])),
        r"learning_rate must lie in \[0.0, inf\); got \[-0.2",
    ),
    (lambda: optim.sgd(0.1, momentum=-0.5), r"momentum must lie in \[0.0, 1.0\]"),
    (lambda: optim.sgd(0.1, momentum=1.5), r"momentum .*; got 1.5\."),
    (
        lambda: optim.sgd(0.1, nesterov=True),
        r"nesterov=True needs a momentum above 0; got momentum=0.0\.",
    ),
    (lambda: optim.rmsprop(-1.0), r"learning_rate must lie in \[0.0, inf\); got -1"),
    (lambda: optim.rmsprop(0.1, decay=1.5), r"decay must lie in \[0.0, 1.0\]; got 1.5"),
    (lambda: optim.rmsprop(0.1, decay=-0.1), r"decay must lie .*; got -0.1"),
    (
        lambda: optim.rmsprop(0.1, eps=-1e-8),
        r"eps must lie in \[0.0, inf\); got -1e-08",
    ),
    (lambda: optim.rmsprop(0.1, initial_scale=-1.0), r"initial_scale .*; got -1.0"),
    (lambda: optim.rmsprop(0.1, momentum=-1.0), r"momentum .*; got -1.0"),
    (
        lambda: optim.rmsprop(0.1, nesterov=True),
        r"nesterov=True needs a momentum above 0; got momentum=0.0\.",
    ),
    (lambda: optim.adam(-0.1), r"learning_rate .*; got -0.1"),
    (lambda: optim.adam(0.1, b1=1.0), r"b1 must lie in \[0.0, 1.0\); got 1.0\."),
    (lambda: optim.adam(0.1, b1=-0.1), r"b1 must lie in \[0.0, 1.0\); got -0.1\."),
    (lambda: optim.adam(0.1, b2=1.0), r"b2 must lie in \[0.0, 1.0\); got 1.0\."),
    (lambda: optim.adam(0.1, eps=-1.0), r"eps must lie in \[0.0, inf\); got -1.0"),
    (lambda: optim.adam(0.1, eps_root=-1.0), r"eps_root .*; got -1.0"),
    (lambda: optim.adamw(0.1, b2=1.5), r"b2 must lie in \[0.0, 1.0\); got 1.5"),
    (lambda: optim.adamw(0.1, weight_decay=-0.1), r"weight_decay .*; got -0.1"),
    (lambda: optim.add_decayed_weights(-0.1), r"weight_decay .*; got -0.1"),
    (lambda: optim.trace(decay=2.0), r"decay must lie in \[0.0, 1.0\]; got 2.0"),
    (lambda: optim.dampened_trace(0.9, dampening=2.0), r"dampening .*; got 2.0"),
    (lambda: optim.scale_by_rms(eps=-1.0), r"eps .*; got -1.0"),
    (lambda: optim.scale_by_stddev(decay=2.0), r"decay .*; got 2.0"),
    (lambda: optim.scale_by_adam(b1=1.0), r"b1 .*; got 1.0"),
    (lambda: optim.scale_by_learning_rate(-1.0), r"learning_rate .*; got -1.0"),
    (lambda: optim.torch.sgd(lr=-1.0), r"lr must lie in \[0.0, inf\); got -1.0"),
    (lambda: optim.torch.sgd(momentum=-1.0), r"momentum .*; got -1.0"),
    (lambda: optim.torch.sgd(dampening=1.5), r"dampening .*; got 1.5"),
    (lambda: optim.torch.sgd(weight_decay=-1.0), r"weight_decay .*; got -1.0"),
    (
        lambda: optim.torch.sgd(nesterov=True),
        r"nesterov=True needs a momentum above 0 and dampening=0; "
        r"got momentum=0.0, dampening=0.0\.",
    ),
    (
        lambda: optim.torch.sgd(momentum=0.9, dampening=0.1, nesterov=True),
        r"got momentum=0.9, dampening=0.1\.",
    ),
    (lambda: optim.torch.rmsprop(alpha=1.5), r"alpha must lie .*; got 1.5"),
    (lambda: optim.torch.rmsprop(eps=-1.0), r"eps .*; got -1.0"),
    (lambda: optim.torch.rmsprop(momentum=-1.0), r"momentum .*; got -1.0"),
    (lambda: optim.torch.adam(lr=-1.0), r"lr .*; got -1.0"),
    (
        lambda: optim.torch.adam(betas=(1.0, 0.999)),
        r"betas\[0\] must lie in \[0.0, 1.0\); got 1.0\.",
    ),
    (
        lambda: optim.torch.adamw(betas=(0.9, -0.1)),
        r"betas\[1\] must lie in \[0.0, 1.0\); got -0.1\.",
    ),
    (
        lambda: optim.torch.adam(betas=(0.9, 0.99, 0.999)),
        r"betas must be a pair \(beta1, beta2\); got \(0.9, 0.99, 0.999\) of type "
        r"tuple\. Pass, for example, betas=\(0.9, 0.999\)\.",
    ),
    (
        lambda: optim.torch.adam(betas=0.9),
        r"betas must be a pair \(beta1, beta2\); got 0.9 of type float\.",
    ),
    (
        lambda: optim.torch.adamw(betas=lambda count: 0.9),
        r"betas must be a pair \(beta1, beta2\); got the callable ",
    ),
    (
        lambda: optim.sgd(0.1, momentum=jnp.array([0.9, 0.0]), nesterov=True),
        r"nesterov=True needs a momentum above 0; got momentum=\[0.899.*, 0.0\]\. "
        r"Pass a momentum such as 0.9 \(every member above 0, for an array\), or "
        r"nesterov=False\.",
    ),
    (
        lambda: optim.rmsprop(0.1, momentum=np.array([0.0, 0.5]), nesterov=True),
        r"nesterov=True needs a momentum above 0; got momentum=\[0.0, 0.5\]\.",
    ),
    (
        lambda: optim.torch.sgd(momentum=np.array([0.9, 0.0]), nesterov=True),
        r"nesterov=True needs a momentum above 0 and dampening=0; "
        r"got momentum=\[0.9, 0.0\], dampening=0.0\. Change one of them",
    ),
    (lambda: optim.torch.adamw(weight_decay=-1.0), r"weight_decay .*; got -1.0"),
    (
        lambda: optim.torch.adam(weight_decay=-1.0, decoupled_weight_decay=True),
        r"weight_decay .*; got -1.0",
    ),
]


@pytest.mark.parametrize("make, message", BAD, ids=range(len(BAD)))
def test_out_of_range_hyperparameters_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_nesterov_accepts_a_momentum_array_with_no_zero_member():
    momentum = jnp.array([0.9, 0.5])
    optim.sgd(0.1, momentum=momentum, nesterov=True)
    optim.rmsprop(0.1, momentum=momentum, nesterov=True)
    optim.torch.sgd(momentum=momentum, nesterov=True)


# Only learning_rate (lr) and weight_decay take schedules; a callable anywhere
# else is rejected when the optimizer is built, not at its first update.

OPTAX_HINT = r"Only learning_rate and weight_decay take schedules\.$"
TORCH_HINT = r"Only lr and weight_decay take schedules\.$"
NOT_SCHEDULES = [
    (optim.sgd, (0.1,), "momentum", OPTAX_HINT),
    *[(optim.rmsprop, (0.1,), n, OPTAX_HINT) for n in ("decay", "eps")],
    *[(optim.rmsprop, (0.1,), n, OPTAX_HINT) for n in ("initial_scale", "momentum")],
    *[(optim.adam, (0.1,), n, OPTAX_HINT) for n in ("b1", "b2", "eps", "eps_root")],
    *[(optim.adamw, (0.1,), n, OPTAX_HINT) for n in ("b1", "b2", "eps", "eps_root")],
    *[(optim.scale_by_rms, (), n, OPTAX_HINT) for n in ("decay", "eps")],
    (optim.scale_by_rms, (), "initial_scale", OPTAX_HINT),
    *[(optim.scale_by_stddev, (), n, OPTAX_HINT) for n in ("decay", "eps")],
    (optim.scale_by_stddev, (), "initial_scale", OPTAX_HINT),
    *[(optim.scale_by_adam, (), n, OPTAX_HINT) for n in ("b1", "b2", "eps")],
    (optim.scale_by_adam, (), "eps_root", OPTAX_HINT),
    (optim.trace, (), "decay", OPTAX_HINT),
    *[(optim.dampened_trace, (), n, OPTAX_HINT) for n in ("decay", "dampening")],
    *[(optim.torch.sgd, (), n, TORCH_HINT) for n in ("momentum", "dampening")],
    *[(optim.torch.rmsprop, (), n, TORCH_HINT) for n in ("alpha", "eps", "momentum")],
    (optim.torch.adam, (), "eps", TORCH_HINT),
    (optim.torch.adamw, (), "eps", TORCH_HINT),
]


@pytest.mark.parametrize(
    "make, args, name, hint",
    NOT_SCHEDULES,
    ids=[
        f"{make.__module__[7:]}.{make.__name__}-{n}" for make, _, n, _ in NOT_SCHEDULES
    ],
)
@pytest.mark.parametrize(
    "schedule",
    [lambda count: 0.9, optax.constant_schedule(0.9)],
    ids=["lambda", "optax"],
)
def test_a_schedule_for_a_hyperparameter_that_takes_none_raises(
    make, args, name, hint, schedule
):
    kwargs = {"decay": 0.9} if make in (optim.trace, optim.dampened_trace) else {}
    kwargs[name] = schedule
    message = rf"^{name} takes no schedule: it must be a number, array or tracer; "
    with pytest.raises(ValueError, match=message + r"got the callable .*" + hint):
        make(*args, **kwargs)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda f: optim.torch.adam(betas=(f, 0.999)), r"^betas\[0\] takes no sch"),
        (lambda f: optim.torch.adamw(betas=(0.9, f)), r"^betas\[1\] takes no sch"),
    ],
)
def test_a_schedule_for_a_torch_beta_raises(make, message):
    with pytest.raises(ValueError, match=message + r".*" + TORCH_HINT):
        make(lambda count: 0.9)


SCHEDULED = {
    "sgd": lambda h: optim.sgd(h, momentum=0.9),
    "rmsprop": lambda h: optim.rmsprop(h, momentum=0.9),
    "adam": lambda h: optim.adam(h),
    "adamw": lambda h: optim.adamw(h, weight_decay=h, mask=all_leaves),
    "scale_by_learning_rate": lambda h: optim.scale_by_learning_rate(h),
    "add_decayed_weights": lambda h: optim.add_decayed_weights(h),
    "torch-sgd": lambda h: optim.torch.sgd(h, momentum=0.9, weight_decay=h),
    "torch-rmsprop": lambda h: optim.torch.rmsprop(h, momentum=0.9, weight_decay=h),
    "torch-adam": lambda h: optim.torch.adam(h, weight_decay=h),
    "torch-adamw": lambda h: optim.torch.adamw(h, weight_decay=h),
}


@pytest.mark.parametrize("make", SCHEDULED.values(), ids=SCHEDULED.keys())
def test_learning_rate_and_weight_decay_take_schedules(make):
    # A constant schedule of 0.1 steps as the number 0.1 does.
    x, y, params = make_problem("float32")
    scheduled = trajectory(make(optax.constant_schedule(0.1)), params, x, y, steps=3)
    chex.assert_trees_all_close(scheduled, trajectory(make(0.1), params, x, y, steps=3))


NOT_NUMBERS = [
    (lambda: optim.sgd("0.1"), "learning_rate", r"got '0.1' of type str\.$"),
    (lambda: optim.sgd(None), "learning_rate", r"got None of type NoneType\.$"),
    (lambda: optim.sgd(True), "learning_rate", r"got True of type bool\. Its dtype"),
    (lambda: optim.sgd(0.1 + 0j), "learning_rate", r"got \(0.1\+0j\) of type complex"),
    (lambda: optim.sgd(0.1, momentum="0.9"), "momentum", r"got '0.9' of type str"),
    (lambda: optim.rmsprop(0.1, eps=None), "eps", r"got None of type NoneType"),
    (lambda: optim.adam(0.1, b1=np.array(0.9j)), "b1", r"got an array of dtype comp"),
    (lambda: optim.adamw(0.1, weight_decay=False), "weight_decay", r"got False of ty"),
    (lambda: optim.add_decayed_weights("0.1"), "weight_decay", r"got '0.1' of type"),
    (lambda: optim.torch.sgd(lr="0.1"), "lr", r"got '0.1' of type str"),
    (lambda: optim.torch.rmsprop(alpha=[0.9]), "alpha", r"got \[0.9\] of type list"),
    (lambda: optim.torch.adam(betas=(0.9, "0.999")), r"betas\[1\]", r"got '0.999'"),
    (lambda: optim.torch.adamw(weight_decay=None), "weight_decay", r"got None of t"),
]


@pytest.mark.parametrize("make, name, got", NOT_NUMBERS, ids=range(len(NOT_NUMBERS)))
def test_hyperparameters_that_are_not_numbers_raise_naming_them(make, name, got):
    takes_schedule = name in ("learning_rate", "lr", "weight_decay")
    expected = (
        "a number, array, tracer or schedule"
        if takes_schedule
        else ("a number, array or tracer")
    )
    with pytest.raises(ValueError, match=rf"^{name} must be {expected}; {got}"):
        make()


def test_add_decayed_weights_without_params_raises():
    opt = optim.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match=r"add_decayed_weights needs the params"):
        opt.update(jnp.ones(1), opt.init(jnp.ones(1)))


def test_tracers_pass_unchecked():
    # A negative traced learning rate is not checked: its value is unknown.
    @jax.jit
    def step(learning_rate, b1):
        opt = optim.adam(learning_rate, b1=b1)
        updates, _ = opt.update(jnp.ones(1), opt.init(jnp.zeros(1)))
        return updates

    assert float(step(-0.1, 0.9)[0]) == pytest.approx(0.1, rel=1e-5)
    assert jnp.isfinite(step(0.1, 1.0)[0]) == jnp.bool_(False)


def test_clip_by_global_norm_chains():
    # g = [3, 4] has norm 5; clipped to norm 1 it is [0.6, 0.8].
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(1.0))
    updates, _ = opt.update(jnp.array([3.0, 4.0]), opt.init(jnp.zeros(2)))
    np.testing.assert_allclose(updates, [-0.6, -0.8], rtol=1e-6)


# Documentation: every public function states its rule and shows it running.

PUBLIC = [
    *[(f"optim.{n}", getattr(optim, n)) for n in optim.__all__],
    *[(f"optim.torch.{n}", getattr(optim.torch, n)) for n in optim.torch.__all__],
]
FUNCTIONS = [(n, f) for n, f in PUBLIC if inspect.isfunction(f)]


def test_the_public_api_is_what_the_docstring_check_covers():
    names = {n for n, _ in FUNCTIONS}
    assert {"optim.sgd", "optim.chain", "optim.torch.adamw"} <= names
    assert len(FUNCTIONS) == 19  # 15 in optim, 4 in optim.torch


@pytest.mark.parametrize(
    "function", [f for _, f in FUNCTIONS], ids=[n for n, _ in FUNCTIONS]
)
def test_public_function_documents_args_returns_math_and_an_example(function):
    doc = inspect.getdoc(function)
    for section in ("Args:", "Returns:", ".. math::", "Example:", ">>> "):
        assert section in doc, f"{function.__qualname__} lacks {section!r}"
    # The example runs: pytest's --doctest-modules collects it from its module.
    assert function.__module__.startswith("funcnet.optim.")
