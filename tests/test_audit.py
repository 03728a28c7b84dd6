"""The gradient audit catches wrong backward passes and passes right ones."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import audit, layers, losses


def scale_layer(*, bug=None):
    """``y = x * s + c`` per feature; ``bug`` breaks its backward on purpose."""

    def init(key, input_shape):
        del key
        features = input_shape[-1:]
        params = {"s": jnp.full(features, 1.5), "c": jnp.zeros(features)}
        return input_shape, params, ()

    def forward(params, state, x, *, key=None, train=True):
        y = x * params["s"][None] + params["c"][None]
        return y, state, x

    def backward(params, residuals, dy):
        x = residuals
        grads = {"s": (dy * x).sum(0), "c": dy.sum(0)}
        dx = dy * params["s"][None]
        if bug == "missing_factor":
            dx = dy
        if bug == "double":
            grads["s"] = 2 * grads["s"]
        if bug == "negate":
            grads["s"] = -grads["s"]
        return grads, dx

    return layers.Layer(init, forward, backward, name="Scale")


def transposed_dense(n_out):
    """A Dense layer whose backward returns dW transposed."""
    dense = layers.Dense(n_out)

    def backward(params, residuals, delta):
        grads, dx = dense.backward(params, residuals, delta)
        return {**grads, "W": grads["W"].T}, dx

    return dense._replace(backward=backward)


def problem(net, key, n_in, batch=6, dtype=jnp.float32):
    init_key, x_key, t_key = jax.random.split(key, 3)
    out_shape, params, state = net.init(init_key, (n_in,))
    x = jax.random.normal(x_key, (batch, n_in), dtype)
    t = jax.random.normal(t_key, (batch,) + tuple(out_shape), dtype)
    return params, state, x, t


def test_correct_network_passes_with_finite_differences(key, dtype):
    net = layers.mlp([4, 5, 3], "tanh", dtype=dtype)
    params, state, x, t = problem(net, key, 4, dtype=dtype)

    report = audit.audit(net, losses.mse, params, state, x, t, fd=True)

    assert report.passed, str(report)
    assert report.paths == ("[0]['W']", "[0]['b']", "[2]['W']", "[2]['b']")
    assert report.shapes == ((4, 5), (5,), (5, 3), (3,))
    assert np.all(np.isfinite(report.metrics.fd_max_rel))
    assert report.raise_if_failed() is report


def test_metrics_match_an_independent_comparison(key):
    # Oracle: jax.grad of the forward and the layer's own backward, compared
    # here with numpy.
    with jax.enable_x64(True):
        net = layers.serial(layers.Dense(3, dtype=jnp.float64), scale_layer())
        params, state, x, t = problem(net, key, 2, dtype=jnp.float64)

        report = audit.audit(net, losses.mse, params, state, x, t)

        def objective(p):
            return losses.mse(net.forward(p, state, x)[0], t)

        auto = jax.tree.leaves(jax.grad(objective)(params))
        y, _, residuals = net.forward(params, state, x)
        manual = jax.tree.leaves(
            net.backward(params, residuals, losses.mse.grad(y, t))[0]
        )
    for i, (m, a) in enumerate(zip(manual, auto)):
        m, a = np.asarray(m), np.asarray(a)
        max_abs = np.abs(m - a).max()
        assert report.metrics.max_abs[i] == pytest.approx(max_abs, abs=1e-18)
        assert report.metrics.max_rel[i] == pytest.approx(
            max_abs / np.abs(a).max(), abs=1e-15
        )
    assert report.passed


@pytest.mark.parametrize(
    "bug,max_rel,cosine", [("double", 1.0, 1.0), ("negate", 2.0, -1.0)]
)
def test_scaled_gradients_have_hand_computed_metrics(key, bug, max_rel, cosine):
    # m = 2a gives |m - a| = |a|, so max_rel = 1 and the angle is 0; m = -a
    # gives max_rel = 2 and cosine -1.
    net = layers.serial(layers.Dense(3), scale_layer(bug=bug))
    params, state, x, t = problem(net, key, 2)

    report = audit.audit(net, losses.mse, params, state, x, t)

    row = report.paths.index("[1]['s']")
    assert report.metrics.max_rel[row] == pytest.approx(max_rel, rel=1e-6)
    assert report.metrics.cosine[row] == pytest.approx(cosine, rel=1e-6)
    assert report.failed == ["[1]['s']"]


def test_transposed_weight_gradient_is_caught_and_named(key):
    net = layers.serial(transposed_dense(4), layers.Activation("tanh"), layers.Dense(1))
    params, state, x, t = problem(net, key, 4)

    report = audit.audit(net, losses.mse, params, state, x, t)

    assert not report.passed
    assert report.failed == ["[0]['W']"]
    with pytest.raises(audit.GradientMismatchError) as caught:
        report.raise_if_failed()
    message = str(caught.value)
    assert "disagrees with an oracle in [0]['W']" in message
    failing = [line for line in message.splitlines() if line.endswith("FAIL")]
    assert len(failing) == 1 and failing[0].startswith("[0]['W']")
    assert isinstance(caught.value, AssertionError)
    assert caught.value.report is report


def test_missing_term_is_caught_in_the_layer_below(key):
    # The Scale layer forgets the factor s in dx: its own leaves are right,
    # the Dense below it receives the wrong delta.
    net = layers.serial(layers.Dense(3), scale_layer(bug="missing_factor"))
    params, state, x, t = problem(net, key, 2)

    report = audit.audit(net, losses.mse, params, state, x, t)

    assert report.failed == ["[0]['W']", "[0]['b']"]


def test_transposed_non_square_gradient_is_a_shape_error(key):
    net = layers.serial(transposed_dense(3), layers.Dense(1))
    params, state, x, t = problem(net, key, 2)

    with pytest.raises(ValueError, match=re.escape("leaf [0]['W'] of shape (2, 3)")):
        audit.audit(net, losses.mse, params, state, x, t)


def hidden_term_layer():
    """y = x + stop_gradient(x ** 2): jax.grad and the backward both miss 2x."""

    def init(key, input_shape):
        return input_shape, (), ()

    def forward(params, state, x, *, key=None, train=True):
        return x + jax.lax.stop_gradient(x**2), state, ()

    def backward(params, residuals, dy):
        return (), dy

    return layers.Layer(init, forward, backward, name="hidden")


def test_finite_differences_catch_what_jax_grad_agrees_with(key):
    with jax.enable_x64(True):
        net = layers.serial(layers.Dense(3, dtype=jnp.float64), hidden_term_layer())
        params, state, x, t = problem(net, key, 2, dtype=jnp.float64)

        without_fd = audit.audit(net, losses.mse, params, state, x, t, fd=False)
        report = audit.audit(net, losses.mse, params, state, x, t)

    assert without_fd.passed
    assert np.all(np.asarray(report.metrics.max_abs) == 0)
    assert report.failed == ["[0]['W']", "[0]['b']"]
    assert np.all(np.asarray(report.metrics.fd_max_rel) > 1e-3)


def test_a_kink_at_the_audited_point_is_counted_not_failed(key):
    # All-zero first layer: every relu sits at exactly z = 0.
    with jax.enable_x64(True):
        net = layers.mlp([3, 4, 2], "relu", dtype=jnp.float64)
        params, state, x, t = problem(net, key, 3, dtype=jnp.float64)
        params = (jax.tree.map(jnp.zeros_like, params[0]),) + params[1:]

        report = audit.audit(net, losses.mse, params, state, x, t)

    assert report.passed, str(report)
    assert np.asarray(report.metrics.fd_kinks).sum() > 0
    assert "kink" in str(report)


def test_dropout_and_batch_norm_audit_with_one_key(key):
    with jax.enable_x64(True):
        net = layers.mlp(
            [4, 6, 2], "tanh", dropout=0.3, batch_norm=True, dtype=jnp.float64
        )
        params, state, x, t = problem(net, key, 4, batch=8, dtype=jnp.float64)

        report = audit.audit(
            net, losses.mse, params, state, x, t, key=jax.random.key(3)
        )

    assert report.passed, str(report)
    assert np.all(np.isfinite(report.metrics.fd_max_rel))


def test_vmap_audits_every_member(key):
    net = layers.mlp([3, 4, 2], "sigmoid")
    _, state, x, t = problem(net, key, 3)
    members = jax.vmap(lambda k: net.init(k)[1])(jax.random.split(key, 3))

    def run(params):
        return audit.audit(net, losses.mse, params, state, x, t)

    stacked = jax.vmap(run)(members)

    assert stacked.members == (3,)
    assert stacked.passed
    alone = run(jax.tree.map(lambda leaf: leaf[2], members))
    np.testing.assert_allclose(
        stacked.metrics.cosine[2], alone.metrics.cosine, rtol=1e-6
    )
    table = str(stacked).splitlines()
    assert table[0].split()[:2] == ["member", "leaf"]
    assert len(table) == 1 + 3 * 4
    assert jax.jit(run)(jax.tree.map(lambda leaf: leaf[0], members)).passed


def test_vmap_runs_finite_differences_for_every_member(key):
    # The hidden term is missed by the backward and by jax.grad alike, so
    # only the finite differences can fail it: in every member's rows. The
    # fd_key is mapped too, so the directions come from jax.random under the
    # trace; a correct network passes the same vmapped audit.
    with jax.enable_x64(True):
        wrong = layers.serial(layers.Dense(3, dtype=jnp.float64), hidden_term_layer())
        right = layers.mlp([2, 3, 2], "tanh", dtype=jnp.float64)
        keys = jax.random.split(key, 3)
        fd_keys = jax.random.split(jax.random.key(7), 3)
        reports, alone = {}, {}
        for name, net in (("wrong", wrong), ("right", right)):
            _, state, x, t = problem(net, key, 2, dtype=jnp.float64)
            members = jax.vmap(lambda k, net=net: net.init(k, (2,))[1])(keys)

            def run(params, fd_key, net=net, state=state, x=x, t=t):
                return audit.audit(net, losses.mse, params, state, x, t, fd_key=fd_key)

            reports[name] = jax.vmap(run)(members, fd_keys)
            member = jax.tree.map(lambda leaf: leaf[1], members)
            alone[name] = jax.jit(run)(member, fd_keys[1])

    right = reports["right"]
    assert right.members == (3,) and right.passed, str(right)
    assert np.all(np.isfinite(right.metrics.fd_max_rel))
    assert right.fd_rtol == audit.FD_RTOL["float64"]

    wrong = reports["wrong"]
    assert wrong.members == (3,)
    assert wrong.failed == ["[0]['W']", "[0]['b']"]
    assert not np.asarray(wrong.metrics.passed).any()
    # jax.grad agrees to rounding; the finite differences do not.
    assert np.all(np.asarray(wrong.metrics.max_rel) < 1e-12)
    assert np.all(np.asarray(wrong.metrics.fd_max_rel) > 1e-3)
    rows = str(wrong).splitlines()[1:]
    for member in range(3):
        for leaf in ("[0]['W']", "[0]['b']"):
            (row,) = [r for r in rows if r.split()[:2] == [str(member), leaf]]
            assert row.endswith("FAIL"), row
    # Member 1 of the stacked audit is the audit of member 1 alone (jitted,
    # so that its fd_key is traced and draws the same directions).
    assert alone["right"].passed
    np.testing.assert_allclose(
        np.asarray(wrong.metrics.fd_max_rel)[1],
        np.asarray(alone["wrong"].metrics.fd_max_rel),
        rtol=1e-9,
    )


def test_float16_finite_differences_are_refused(key):
    net = layers.mlp([3, 2], "tanh", dtype=jnp.float16)
    params, state, x, t = problem(net, key, 3, dtype=jnp.float16)

    with pytest.raises(ValueError, match="fd=True needs float32 or float64"):
        audit.audit(net, losses.mse, params, state, x, t, fd=True)
    report = audit.audit(net, losses.mse, params, state, x, t)
    assert report.rtol == (audit.RTOL["float16"],) * 2
    assert np.all(np.isnan(report.metrics.fd_max_rel))


def test_bfloat16_uses_its_own_tolerance(key):
    net = layers.mlp([3, 4, 2], "tanh", dtype=jnp.bfloat16)
    params, state, x, t = problem(net, key, 3, dtype=jnp.bfloat16)

    report = audit.audit(net, losses.mse, params, state, x, t)

    assert report.dtypes == ("bfloat16",) * 4
    assert report.passed, str(report)


def test_audit_layer_checks_a_custom_layer_in_one_call(key):
    with jax.enable_x64(True):
        good = audit.audit_layer(
            layers.serial(layers.Dense(3, dtype=jnp.float64), scale_layer()),
            (2,),
            key=key,
        )
        bad = audit.audit_layer(
            layers.serial(
                layers.Dense(3, dtype=jnp.float64), scale_layer(bug="missing_factor")
            ),
            (2,),
            key=key,
        )

    assert good.passed, str(good)
    assert np.all(np.isfinite(good.metrics.fd_max_rel))
    assert bad.failed == ["[0]['W']", "[0]['b']"]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"fd": "yes"}, "fd must be None, True or False; got 'yes'"),
        ({"fd_directions": 0}, "fd_directions must be a positive integer; got 0"),
        ({"rtol": -1.0}, "rtol must be a non-negative number or None; got -1.0"),
        (
            {"rtol": "abc"},
            "rtol must be a non-negative number or None; got 'abc' of type str",
        ),
        ({"rtol": True}, "rtol must be a non-negative number or None; got True"),
        ({"atol": None}, "atol must be a non-negative number; got None"),
        ({"atol": "1e-6"}, "atol must be a non-negative number; got '1e-6'"),
        (
            {"key": 3},
            "key must be one JAX PRNG key, such as jax.random.key(0), or None; "
            "got 3 of type int",
        ),
        (
            {"fd_key": 3, "fd": True},
            "fd_key must be one JAX PRNG key, such as jax.random.key(0), or None; "
            "got 3 of type int",
        ),
        ({"fd_key": 3, "fd": False}, "fd_key must be one JAX PRNG key"),
        (
            {"key": jax.random.split(jax.random.key(0), 2)},
            "key must be one JAX PRNG key, such as jax.random.key(0), or None; "
            "got an array of dtype key<fry> and shape (2,)",
        ),
    ],
)
def test_bad_options_are_named(key, kwargs, message):
    net = layers.mlp([3, 2], "tanh")
    params, state, x, t = problem(net, key, 3)

    with pytest.raises(ValueError, match=re.escape(message)):
        audit.audit(net, losses.mse, params, state, x, t, **kwargs)


def test_numpy_scalars_and_a_legacy_key_are_accepted(key):
    net = layers.mlp([3, 2], "tanh")
    params, state, x, t = problem(net, key, 3)

    report = audit.audit(
        net, losses.mse, params, state, x, t,
        key=jax.random.PRNGKey(0), rtol=np.float32(1e-4), atol=np.int64(0),
    )  # fmt: skip

    assert report.passed and report.rtol == (pytest.approx(1e-4),) * 2


def test_jax_scalars_are_accepted_as_tolerances(key):
    net = layers.mlp([3, 2], "tanh")
    params, state, x, t = problem(net, key, 3)

    report = audit.audit(
        net, losses.mse, params, state, x, t,
        rtol=jnp.float32(1e-4), atol=jnp.zeros(()),
    )  # fmt: skip

    assert report.passed and report.rtol == (pytest.approx(1e-4),) * 2


def test_no_state_for_a_batch_norm_network_is_named(key):
    net = layers.mlp([3, 4, 2], "tanh", batch_norm=True)
    params, _, x, t = problem(net, key, 3)

    with pytest.raises(
        ValueError,
        match=re.escape(
            "state must be the state that network.init returns; got None, but "
            "mlp([3, 4, 2]) keeps 2 state arrays"
        ),
    ):
        audit.audit(net, losses.mse, params, None, x, t)
    # Without batch norm, None stands for the empty state.
    plain = layers.mlp([3, 4, 2], "tanh")
    params, _, x, t = problem(plain, key, 3)
    assert audit.audit(plain, losses.mse, params, None, x, t).passed


@pytest.mark.parametrize("bad_key", [3, None])
def test_audit_layer_needs_a_key(bad_key):
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"key must be one JAX PRNG key, such as jax.random.key(0); got "
            f"{bad_key!r} of type {type(bad_key).__name__}"
        ),
    ):
        audit.audit_layer(layers.Dense(2), (3,), key=bad_key)


def test_bad_network_and_loss_are_named(key):
    net = layers.mlp([3, 2], "tanh")
    params, state, x, t = problem(net, key, 3)

    with pytest.raises(ValueError, match="network must be a funcnet Layer"):
        audit.audit(lambda p: p, losses.mse, params, state, x, t)
    with pytest.raises(ValueError, match="loss must be a funcnet Loss"):
        audit.audit(net, jnp.sum, params, state, x, t)


def test_the_custom_layer_guide_runs(capsys):
    import pathlib

    guide = pathlib.Path(__file__).resolve().parents[1] / "docs" / "custom_layer.md"
    blocks = re.findall(r"```python\n(.*?)```", guide.read_text(), flags=re.S)
    namespace = {"__name__": "guide"}
    for block in blocks:
        exec(compile(block, str(guide), "exec"), namespace)
    assert "[1]['s']  (8,)" in capsys.readouterr().out
