"""Bundled real data, splits, scaling and shuffled minibatches.

Nothing is downloaded: :func:`load_digits` reads scikit-learn's bundled
copy of the UCI handwritten digits (1,797 images of 8 x 8 pixels, 10
classes), installed by the ``experiments`` extra.

Example:
    >>> from funcnet import data
    >>> splits = data.load_digits()
    >>> splits.train.x.shape, splits.val.x.shape, splits.test.x.shape
    ((1078, 64), (359, 64), (360, 64))
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnet._checks import positive_int
from funcnet._typing import Array, PRNGKey


class Dataset(NamedTuple):
    """Inputs and targets of one part of a data set, row ``i`` one example.

    Attributes:
        x: the inputs, shape ``(n, features)``.
        y: the targets, ``n`` rows (for the digits, ``int32`` labels of shape
            ``(n,)``).
    """

    x: Array
    y: Array


class Splits(NamedTuple):
    """A train / validation / test split.

    Attributes:
        train: the :class:`Dataset` to fit on (and to fit a
            :class:`Standardizer` on).
        val: the validation part, for early stopping and model choice.
        test: the test part, held out until the end.
    """

    train: Dataset
    val: Dataset
    test: Dataset


class Standardizer(NamedTuple):
    """Per-feature ``(x - mean) / scale``, fitted on the training part.

    Call it on any part, ``standardizer(x)``, to scale it with the training
    part's statistics (see :func:`fit_standardizer`).

    Attributes:
        mean: the per-feature mean, shape ``(features,)``.
        scale: the per-feature standard deviation, 1 for a constant feature.
    """

    mean: Array
    scale: Array

    def __call__(self, x):
        """Standardizes ``x`` with the fitted statistics.

        Args:
            x: inputs of shape ``(n, features)``.

        Returns:
            ``(x - mean) / scale``, of the shape of ``x``.
        """
        return (x - self.mean) / self.scale


def fit_standardizer(x) -> Standardizer:
    """Mean and standard deviation per feature; constant features get scale 1.

    Computed in float64, with the biased standard deviation (``ddof=0``).

    Args:
        x: the training inputs, shape ``(n, features)``.

    Returns:
        A :class:`Standardizer`; ``standardizer(x)`` has mean 0 and standard
        deviation 1 per feature on ``x`` (0 on a constant feature).
    """
    x = np.asarray(x, np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    return Standardizer(mean, np.where(std > 0, std, 1.0))


def split(x, y, fractions=(0.6, 0.2, 0.2), *, seed: int = 0) -> Splits:
    """Shuffles once with ``seed`` and splits by ``fractions`` (train, val, test).

    The train and validation sizes are ``round(fraction * n)``; the test part
    takes the rest, so no example is lost or repeated.

    Args:
        x: the inputs, one row per example.
        y: the targets, as many rows as ``x``.
        fractions: three non-negative numbers summing to 1.
        seed: the seed of numpy's shuffle; the same seed, the same split.

    Returns:
        :class:`Splits` of numpy arrays.

    Raises:
        ValueError: for bad ``fractions``, or ``x`` and ``y`` of different
            lengths.
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(
            f"fractions must be three non-negative numbers (train, val, test) "
            f"summing to 1; got {fractions!r}."
        )
    if len(x) != len(y):
        raise ValueError(
            f"x and y must have the same number of rows; got {len(x)} and {len(y)}."
        )
    order = np.random.default_rng(seed).permutation(len(x))
    n_train = int(round(fractions[0] * len(x)))
    n_val = int(round(fractions[1] * len(x)))
    parts = np.split(order, [n_train, n_train + n_val])
    return Splits(*(Dataset(x[idx], y[idx]) for idx in parts))


def load_digits(
    fractions=(0.6, 0.2, 0.2),
    *,
    seed: int = 0,
    standardize: bool = True,
    dtype=np.float32,
) -> Splits:
    """scikit-learn's bundled handwritten digits, split and standardized.

    Args:
        fractions: train, validation and test fractions.
        seed: the seed of the one shuffle before splitting (fixed split).
        standardize: scale each pixel by the training part's mean and
            standard deviation.
        dtype: the dtype of ``x``; labels ``y`` are ``int32`` in ``[0, 10)``.

    Returns:
        :class:`Splits` of numpy arrays.
    """
    try:
        from sklearn.datasets import load_digits as _sklearn_digits
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            "load_digits needs scikit-learn, which bundles the data set; install "
            "it with: pip install 'funcnet[experiments]'"
        ) from error
    bunch = _sklearn_digits()
    splits = split(bunch.data, bunch.target.astype(np.int32), fractions, seed=seed)
    if standardize:
        scaler = fit_standardizer(splits.train.x)
        splits = Splits(*(Dataset(scaler(s.x), s.y) for s in splits))
    return Splits(*(Dataset(s.x.astype(dtype), s.y) for s in splits))


def permutation(key: PRNGKey, n: int) -> Array:
    """A uniformly random permutation of ``range(n)``, by sorting packed words.

    Each round draws one 32-bit word per position, keeps its high bits and
    puts the position in the low ``b = bit_length(n - 1)`` bits, and sorts
    that one array: on the CPU about five times faster than the key-value
    sort of ``jax.random.permutation``, which is most of an epoch's cost
    beyond its steps. A tie in a round's random bits keeps the two
    positions in the order of the round before (random after the first);
    there are enough rounds, ``2^((32 - b) * rounds) >= n^2``, that a
    shuffle has fewer than half a tie in expectation (for ``n = 1078``, one
    round of 21 random bits: about 0.28 ties). Above ``2^20`` positions it
    falls back to ``jax.random.permutation``. Jit-able for a static ``n``.

    Args:
        key: the PRNG key of the shuffle.
        n: the number of positions, a Python int.

    Returns:
        An ``int32`` array of shape ``(n,)`` holding each of ``0 .. n - 1``
        once.

    Example:
        >>> import jax
        >>> sorted(permutation(jax.random.key(0), 5).tolist())
        [0, 1, 2, 3, 4]
    """
    index_bits = max(1, (n - 1).bit_length())
    if index_bits > 20:
        return jax.random.permutation(key, n)
    rounds = max(1, math.ceil(2 * math.log2(n) / (32 - index_bits)))
    low = (1 << index_bits) - 1
    position = jnp.arange(n, dtype=jnp.uint32)
    order = position
    for round_key in jax.random.split(key, rounds):
        bits = jax.random.bits(round_key, (n,), jnp.uint32)
        packed = (bits & jnp.uint32(0xFFFFFFFF ^ low)) | position
        order = order[jax.lax.sort(packed) & jnp.uint32(low)]
    return order.astype(jnp.int32)


def batch_indices(
    key: PRNGKey,
    n: int,
    batch_size: int | None,
    *,
    shuffle: bool = True,
    drop_last: bool = False,
) -> tuple[Array, Array]:
    """An epoch's minibatches as ``(indices, mask)`` of shape ``(steps, batch_size)``.

    The order is :func:`permutation` of ``key`` (or ``range(n)`` without
    ``shuffle``). The last, shorter batch is padded (with index 0) to
    ``batch_size`` and masked out, so every step has one shape: one
    compilation, and a loss weighted by ``mask`` counts each real example
    once. With ``drop_last`` the ``n % batch_size`` examples left over are
    skipped instead. ``batch_size=None`` means full batch: one step over all
    ``n`` examples; a size above ``n`` is treated as ``n``.

    Args:
        key: the PRNG key of the shuffle (unused without ``shuffle``).
        n: the number of examples.
        batch_size: a positive int, or ``None`` for one full batch.
        shuffle: whether to shuffle the order.
        drop_last: whether to skip the last, shorter batch instead of padding
            it.

    Returns:
        ``(indices, mask)``: ``int32`` indices into the data set and a
        ``float32`` mask, 1 for a real example and 0 for padding, both of
        shape ``(steps, batch_size)`` with ``steps = ceil(n / batch_size)``
        (``floor`` with ``drop_last``).

    Raises:
        ValueError: when ``batch_size`` is not a positive integer or None.

    Example:
        >>> import jax
        >>> indices, mask = batch_indices(jax.random.key(0), 10, 4)
        >>> indices.shape, mask.sum(axis=1).tolist()
        ((3, 4), [4.0, 4.0, 2.0])
    """
    size = (
        n
        if batch_size is None
        else min(positive_int("batch_size", batch_size, "or None"), n)
    )
    steps = n // size if drop_last else -(-n // size)
    order = permutation(key, n) if shuffle else jnp.arange(n, dtype=jnp.int32)
    mask = jnp.ones(steps * size, jnp.float32)
    if steps * size > n:
        order = jnp.concatenate([order, jnp.zeros(steps * size - n, order.dtype)])
        mask = (jnp.arange(steps * size) < n).astype(jnp.float32)
    order = order[: steps * size].reshape(steps, size)
    return order, mask.reshape(steps, size)


__all__ = [
    "Dataset",
    "Splits",
    "Standardizer",
    "batch_indices",
    "fit_standardizer",
    "load_digits",
    "permutation",
    "split",
]
