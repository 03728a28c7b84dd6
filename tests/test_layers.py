"""Dense, Activation, serial and mlp: shapes, hand-computed values, bad input."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import checkpoint, layers, train


def test_dense_shapes_and_dtype(key, dtype):
    dense = layers.Dense(3, dtype=dtype)
    out_shape, params, state = dense.init(key, (5,))
    assert out_shape == (3,) and state == ()
    assert params["W"].shape == (5, 3) and params["b"].shape == (3,)
    assert params["W"].dtype == dtype and params["b"].dtype == dtype
    np.testing.assert_array_equal(params["b"], np.zeros(3))

    x = jax.random.normal(key, (4, 5), dtype)
    y, new_state, residuals = dense.forward(params, state, x)
    assert y.shape == (4, 3) and y.dtype == dtype and new_state == ()
    grads, dx = dense.backward(params, residuals, jnp.ones_like(y))
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert grads["W"].shape == (5, 3) and dx.shape == x.shape


def test_dense_values_by_hand():
    # x @ W + b with W[i, j] from input i to unit j:
    #   [1, 2] @ [[1, 0, 2], [3, 1, 0]] = [7, 2, 2]; + [0.5, 0, -1] = [7.5, 2, 1].
    dense = layers.Dense(3)
    params = {
        "W": jnp.array([[1.0, 0.0, 2.0], [3.0, 1.0, 0.0]]),
        "b": jnp.array([0.5, 0.0, -1.0]),
    }
    x = jnp.array([[1.0, 2.0]])
    y, _, residuals = dense.forward(params, (), x)
    np.testing.assert_array_equal(y, [[7.5, 2.0, 1.0]])
    # With delta = [1, 0, 1]: dW = x.T @ delta, db = delta, dx = delta @ W.T.
    delta = jnp.array([[1.0, 0.0, 1.0]])
    grads, dx = dense.backward(params, residuals, delta)
    np.testing.assert_array_equal(grads["W"], [[1.0, 0.0, 1.0], [2.0, 0.0, 2.0]])
    np.testing.assert_array_equal(grads["b"], [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(dx, [[3.0, 3.0]])


def test_activation_layer_has_no_params_and_keeps_shape(key):
    layer = layers.Activation("tanh")
    out_shape, params, state = layer.init(key, (6,))
    assert out_shape == (6,) and params == () and state == ()
    z = jnp.array([[0.0, 1.0]])
    a, _, residuals = layer.forward(params, state, z)
    grads, dz = layer.backward(params, residuals, jnp.ones_like(a))
    assert grads == ()
    # tanh'(z) = 1 - tanh(z) ** 2: 1 at 0, 0.419974 at 1.
    np.testing.assert_allclose(dz, [[1.0, 0.419974]], rtol=1e-5)


def test_mlp_structure_and_param_count(key):
    net = layers.mlp([64, 128, 10], "relu")
    assert [layer.name for layer in net.sublayers] == [
        "Dense(128)",
        "relu",
        "Dense(10)",
    ]
    out_shape, params, state = net.init(key)
    assert out_shape == (10,)
    assert len(params) == len(state) == 3
    # 64 * 128 + 128 + 128 * 10 + 10 = 9610 trainable scalars.
    assert layers.count_params(params) == 9610
    y, _, _ = net.forward(params, state, jnp.ones((7, 64)))
    assert y.shape == (7, 10)


def test_mlp_output_activation_and_dtype(key):
    net = layers.mlp([2, 2, 2, 1], "sigmoid", output_activation="sigmoid")
    names = [layer.name for layer in net.sublayers]
    assert names == [
        "Dense(2)",
        "sigmoid",
        "Dense(2)",
        "sigmoid",
        "Dense(1)",
        "sigmoid",
    ]
    with jax.enable_x64(True):
        net64 = layers.mlp([3, 4, 2], "tanh", dtype=jnp.float64)
        _, params, _ = net64.init(key)
        assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(params))


def test_serial_backward_returns_grads_and_input_cotangent(key):
    net = layers.mlp([3, 5, 2], "tanh")
    _, params, state = net.init(key)
    x = jax.random.normal(key, (4, 3))
    y, _, residuals = net.forward(params, state, x)
    grads, dx, cotangents = net.backward(
        params, residuals, jnp.ones_like(y), return_cotangents=True
    )
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert dx.shape == x.shape
    assert [c.shape for c in cotangents] == [(4, 5), (4, 5), (4, 2)]


# Bad input: a clear error that names the argument.


@pytest.mark.parametrize("sizes", [[], [5], (5,)])
def test_mlp_needs_two_sizes(sizes):
    with pytest.raises(ValueError, match="sizes must list at least two layer sizes"):
        layers.mlp(sizes)


@pytest.mark.parametrize(
    "sizes,index", [([4, 0, 2], 1), ([4, 3, -1], 2), ([2.5, 1], 0)]
)
def test_mlp_sizes_must_be_positive_integers(sizes, index):
    with pytest.raises(
        ValueError, match=rf"sizes\[{index}\] must be a positive integer"
    ):
        layers.mlp(sizes)


def test_unknown_activation_name():
    with pytest.raises(ValueError, match="activation must be an Activation or one of"):
        layers.mlp([2, 3, 1], "sigmoidd")
    with pytest.raises(ValueError, match="got 'swish'"):
        layers.mlp([2, 3, 1], "tanh", output_activation="swish")
    with pytest.raises(ValueError, match="activation must be an Activation or one of"):
        layers.Activation("rectifier")


def test_unknown_initializer_name():
    with pytest.raises(ValueError, match="initializer must be a callable or one of"):
        layers.Dense(3, W_init="orthogonal")
    with pytest.raises(ValueError, match="got 'ones'"):
        layers.mlp([2, 1], b_init="ones")


@pytest.mark.parametrize("n_out", [0, -2, 1.5, True])
def test_dense_n_out_must_be_a_positive_integer(n_out):
    with pytest.raises(ValueError, match="n_out must be a positive integer"):
        layers.Dense(n_out)


def test_dense_rejects_the_wrong_input_width(key):
    dense = layers.Dense(3)
    _, params, state = dense.init(key, (4,))
    with pytest.raises(
        ValueError,
        match=r"W of shape \(4, 3\) expects inputs whose last axis has 4 features; "
        r"got x of shape \(2, 5\)",
    ):
        dense.forward(params, state, jnp.ones((2, 5)))


def test_mlp_rejects_the_wrong_input_width(key):
    net = layers.mlp([4, 3, 2])
    with pytest.raises(ValueError, match=r"expects inputs of 4 features"):
        net.init(key, (5,))
    _, params, state = net.init(key)
    with pytest.raises(ValueError, match="expects inputs whose last axis has 4"):
        net.forward(params, state, jnp.ones((2, 5)))


def test_serial_needs_layers():
    with pytest.raises(ValueError, match="serial needs at least one layer"):
        layers.serial()
    with pytest.raises(TypeError, match="serial takes Layer values; argument 1"):
        layers.serial(layers.Dense(2), "relu")


def test_serial_checks_one_params_entry_per_layer(key):
    net = layers.mlp([3, 4, 2])
    _, params, state = net.init(key)
    with pytest.raises(
        ValueError, match="params of a serial network of 3 layers must be a tuple"
    ):
        net.forward(params[:2], state, jnp.ones((1, 3)))
    with pytest.raises(ValueError, match="got list of length 3"):
        net.forward(list(params), state, jnp.ones((1, 3)))


def test_numpy_integer_sizes_are_integers(key):
    # A width computed with numpy (here 1 + the largest label) is a positive
    # integer; it must build the layer, not fail with "must be a positive
    # integer; got np.int64(10)".
    n_classes = np.array([0, 3, 9]).max() + 1
    net = layers.mlp([4, np.int64(3), n_classes])
    out_shape, params, _ = net.init(key)
    assert out_shape == (10,) and params[2]["W"].shape == (3, 10)
    assert layers.Dense(np.int32(2)).init(key, (4,))[0] == (2,)


@pytest.mark.parametrize(
    "sizes",
    [np.array([3, 4, 1]), jnp.array([3, 4, 1]), range(3, 6, 1), (3, np.int32(4), 1)],
)
def test_mlp_takes_any_1d_integer_sequence_or_array(key, sizes):
    net = layers.mlp(sizes)
    want = [int(s) for s in sizes]
    out_shape, params, _ = net.init(key)
    assert out_shape == (want[-1],)
    assert [p["W"].shape for p in params[::2]] == list(zip(want[:-1], want[1:]))
    assert net.name == f"mlp({want})"


def test_mlp_sizes_of_the_wrong_kind_are_named():
    with pytest.raises(ValueError, match=r"1-D sequence .* array of shape \(1, 3\)"):
        layers.mlp(np.array([[3, 4, 1]]))
    with pytest.raises(ValueError, match=r"sizes\[0\] must be a positive integer"):
        layers.mlp(np.array([3.0, 4.0]))
    with pytest.raises(ValueError, match="sizes must be a sequence .* got int: 3"):
        layers.mlp(3)


def _public_functions(module):
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj):
            for method, fn in vars(obj).items():
                if not method.startswith("_") and inspect.isfunction(fn):
                    yield f"{name}.{method}", fn


@pytest.mark.parametrize(
    "module", [layers, train, checkpoint], ids=lambda m: m.__name__
)
def test_every_public_function_has_args_and_returns(module):
    missing = [
        f"{name} lacks {section}"
        for name, fn in _public_functions(module)
        for section in ("Args:", "Returns:")
        if section not in (inspect.getdoc(fn) or "")
    ]
    assert not missing, missing
