"""Digits splits, the train-fitted standardizer, and padded, masked epochs."""

import jax
import numpy as np
import pytest

from funcnet import data

N_DIGITS = 1797


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


@pytest.fixture(scope="module")
def raw():
    return data.load_digits(standardize=False, dtype=np.float64)


def test_split_sizes(digits):
    # round(0.6 * 1797) = 1078, round(0.2 * 1797) = 359, and the rest, 360.
    sizes = [len(part.x) for part in digits]
    assert sizes == [1078, 359, 360]
    assert [len(part.y) for part in digits] == sizes
    assert all(part.x.shape[1:] == (64,) for part in digits)
    assert all(part.x.dtype == np.float32 for part in digits)
    assert all(part.y.dtype == np.int32 for part in digits)
    assert set(np.unique(digits.train.y)) == set(range(10))


def test_split_is_a_partition_that_keeps_rows_together():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10) * 10
    splits = data.split(x, y, (0.5, 0.3, 0.2), seed=3)
    assert [len(part.x) for part in splits] == [5, 3, 2]
    rows = np.concatenate([part.x[:, 0] // 2 for part in splits])
    np.testing.assert_array_equal(np.sort(rows), np.arange(10))
    for part in splits:
        np.testing.assert_array_equal(part.y, part.x[:, 0] // 2 * 10)


def test_fixed_split_is_deterministic(digits, raw):
    again = data.load_digits()
    for part, part_again in zip(digits, again):
        np.testing.assert_array_equal(part.x, part_again.x)
        np.testing.assert_array_equal(part.y, part_again.y)
    other = data.load_digits(seed=1, standardize=False, dtype=np.float64)
    assert not np.array_equal(other.train.x, raw.train.x)


def test_standardizer_is_fitted_on_the_train_part_only(digits, raw):
    train_std = raw.train.x.std(axis=0)
    varying = train_std > 0
    assert 50 < varying.sum() < 64  # some border pixels are always 0

    x = digits.train.x.astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x[:, varying].std(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(x[:, ~varying], 0.0)

    # Validation and test use the training mean and scale (numpy's, here),
    # not their own, so their means are not 0.
    mean, scale = raw.train.x.mean(axis=0), np.where(varying, train_std, 1.0)
    for part, raw_part in [(digits.val, raw.val), (digits.test, raw.test)]:
        expected = (raw_part.x - mean) / scale
        np.testing.assert_allclose(part.x, expected, rtol=1e-5, atol=1e-5)
        assert np.abs(part.x.mean(axis=0)).max() > 1e-3


def test_fit_standardizer_gives_constant_features_scale_one():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    scaler = data.fit_standardizer(x)
    np.testing.assert_array_equal(scaler.mean, [2.0, 5.0])
    np.testing.assert_array_equal(scaler.scale, [1.0, 1.0])
    np.testing.assert_array_equal(scaler(x), [[-1.0, 0.0], [1.0, 0.0]])


@pytest.mark.parametrize("n,batch_size", [(10, 4), (12, 4), (7, 7), (5, 8), (9, 1)])
def test_batch_indices_cover_each_example_once(key, n, batch_size):
    indices, mask = data.batch_indices(key, n, batch_size)
    size = min(batch_size, n)  # a batch larger than the data is the data
    steps = -(-n // size)
    assert indices.shape == mask.shape == (steps, size)
    indices, mask = np.asarray(indices), np.asarray(mask)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    np.testing.assert_array_equal(np.sort(indices[mask == 1]), np.arange(n))
    # Only the tail of the last batch is padding, and it points at a real row.
    padding = steps * size - n
    np.testing.assert_array_equal(mask.ravel()[:n], 1.0)
    np.testing.assert_array_equal(mask.ravel()[n:], np.zeros(padding))
    assert np.all((indices >= 0) & (indices < n))


def test_batch_indices_pad_and_mask_the_last_batch(key):
    indices, mask = data.batch_indices(key, 10, 4)
    np.testing.assert_array_equal(mask[-1], [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(mask[:-1], np.ones((2, 4)))


def test_batch_indices_shuffle_by_key(key):
    first, _ = data.batch_indices(key, 50, 10)
    again, _ = data.batch_indices(key, 50, 10)
    other, _ = data.batch_indices(jax.random.key(1), 50, 10)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(np.asarray(first).ravel(), np.arange(50))


def test_full_batch(key):
    indices, mask = data.batch_indices(key, 6, None)
    assert indices.shape == (1, 6)
    np.testing.assert_array_equal(mask, np.ones((1, 6)))


@pytest.mark.parametrize("batch_size", [0, -3, 2.0, True])
def test_batch_size_must_be_a_positive_integer(key, batch_size):
    with pytest.raises(
        ValueError, match="batch_size must be a positive integer or None"
    ):
        data.batch_indices(key, 10, batch_size)


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.7, 0.2, 0.2), (1.2, -0.1, -0.1)])
def test_split_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions must be three non-negative"):
        data.split(np.zeros((10, 2)), np.zeros(10), fractions)


def test_split_rejects_mismatched_rows():
    with pytest.raises(
        ValueError, match="x and y must have the same number of rows; got 10 and 9"
    ):
        data.split(np.zeros((10, 2)), np.zeros(9))
