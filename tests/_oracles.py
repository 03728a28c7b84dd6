"""Comparison helpers shared by the gradient tests."""

import jax
import numpy as np

RTOL = {"float32": 1e-5, "float64": 1e-10}


def assert_trees_close(actual, expected, rtol):
    """Leafwise ``|actual - expected| <= rtol * (|expected| + max|expected|)``.

    The tolerance is relative to each entry and to the leaf's scale: an entry
    that is a sum cancelling to nearly zero differs in float32 by rounding of
    the leaf's magnitude, not of its own.
    """
    paths = jax.tree_util.tree_flatten_with_path(expected)[0]
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for (path, e), a in zip(paths, jax.tree.leaves(actual)):
        e, a = np.asarray(e), np.asarray(a)
        assert a.shape == e.shape, jax.tree_util.keystr(path)
        assert a.dtype == e.dtype, jax.tree_util.keystr(path)
        scale = np.abs(e).max(initial=0.0)
        np.testing.assert_allclose(
            a, e, rtol=rtol, atol=rtol * scale, err_msg=jax.tree_util.keystr(path)
        )
