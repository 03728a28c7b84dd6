"""Strict JAX for every test: rank promotion raises, warnings are errors."""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    """A fresh PRNG key for each test."""
    return jax.random.key(0)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Runs a test in float32 and again in float64 (with x64 enabled)."""
    if request.param == "float64":
        with jax.enable_x64(True):
            yield jax.numpy.float64
    else:
        yield jax.numpy.float32
