"""Losses, averaged over the batch, each with its hand-written gradient.

A :class:`Loss` maps ``(outputs, targets)`` to a scalar and has a ``grad``
with the same signature that returns ``dL/d(outputs)``. ``outputs`` always
has the batch on its first axis. Every loss sums over the output units of
one example and averages over the examples:

.. math::

    L = \\frac{1}{\\sum_n m_n} \\sum_n m_n \\, \\ell(o_n, t_n)

where ``m`` is an optional ``mask`` of per-example weights (all ones by
default; padded examples get 0). The gradient with respect to ``o_n`` is
``m_n * d ell / d o_n / sum(m)``, which is where the ``1 / batch`` in the
output delta comes from.

Per example (``o`` the outputs, ``t`` the targets):

* :data:`mse`: ``ell = 0.5 * sum((o - t) ** 2)``, ``d ell / d o = o - t``;
* :data:`sigmoid_binary_cross_entropy`: ``ell = sum(softplus(o) - t * o)``,
  ``d ell / d o = sigmoid(o) - t``;
* :data:`softmax_cross_entropy`: ``ell = -sum(t * log_softmax(o))``,
  ``d ell / d o = softmax(o) * sum(t) - t``.

**Which MSE.** :data:`mse` keeps the textbook's one half and sums over the
output units: ``L = mean_n 0.5 * ||o_n - t_n||^2``. With it the output delta
of an identity output layer is ``(a_L - t) / batch``, with no factor 2. It is
``n_out / 2`` times the "mean over every element" of Keras or
``torch.nn.MSELoss``; for a single output it is half of theirs.

The two cross-entropies take **logits** (no sigmoid or softmax on the
network's last layer): that is what makes them finite for every finite
logit and collapses the output delta to ``(p - t) / batch``.
:data:`softmax_cross_entropy` accepts integer labels of shape ``(batch,)``
or one-hot / probability targets of the outputs' shape.

Example:
    >>> import jax.numpy as jnp
    >>> from funcnet import losses
    >>> logits = jnp.array([[2.0, 1.0, 0.1]])
    >>> round(float(losses.softmax_cross_entropy(logits, jnp.array([0]))), 6)
    0.41703
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnet._checks import concrete_values
from funcnet._typing import Array, ArrayLike


class Loss(NamedTuple):
    r"""A batch-averaged loss and its hand-written gradient.

    Call it as ``loss(outputs, targets, mask=None)`` for the batch's loss and
    as ``loss.grad(outputs, targets, mask=None)`` for its gradient with
    respect to ``outputs``. With per-example values :math:`\ell(o_n, t_n)`
    and weights :math:`w_n = m_n / \sum_k m_k` (:math:`1/B` without a
    ``mask``):

    .. math::

        L = \sum_n w_n \, \ell(o_n, t_n), \qquad
        \frac{\partial L}{\partial o_n}
        = w_n \, \frac{\partial \ell}{\partial o_n}(o_n, t_n).

    Attributes:
        name: the name :func:`get` knows it by.
        per_example: ``(outputs, targets) -> ell``, the unaveraged
            :math:`\ell(o_n, t_n)` of shape ``(batch,)`` (summed over the
            output units), for prepared targets.
        per_example_grad: ``(outputs, targets) -> dell``, the hand-written
            :math:`\partial \ell / \partial o_n`, one row per example, of the
            outputs' shape.
        prepare: ``(outputs, targets) -> targets``: checks the targets
            against the outputs and converts them (integer labels to one-hot
            for :data:`softmax_cross_entropy`).
        classification: whether :func:`accuracy` means something for it.
    """

    name: str
    per_example: Callable[[Array, Array], Array]
    per_example_grad: Callable[[Array, Array], Array]
    prepare: Callable[[Array, ArrayLike], Array]
    classification: bool

    def __call__(
        self, outputs: ArrayLike, targets: ArrayLike, mask: ArrayLike | None = None
    ) -> Array:
        r"""The loss of the batch, :math:`L = \sum_n w_n \, \ell(o_n, t_n)`.

        Args:
            outputs: the network's outputs, floating point, the batch on the
                first axis (logits for the cross-entropies).
            targets: the targets, as the loss takes them (see each loss).
            mask: per-example weights :math:`m_n` of shape ``(batch,)``
                (0 for padded examples), or ``None`` for all ones.

        Returns:
            A scalar of the outputs' dtype.

        Raises:
            ValueError: when ``outputs`` has no batch axis, or ``targets`` or
                ``mask`` do not fit the outputs' shape.
            TypeError: when ``outputs`` is not floating point.
        """
        outputs, targets, weights = self._inputs(outputs, targets, mask)
        ell = self.per_example(outputs, targets)
        return jnp.sum(weights * ell)

    def grad(
        self, outputs: ArrayLike, targets: ArrayLike, mask: ArrayLike | None = None
    ) -> Array:
        r"""The hand-written :math:`\partial L / \partial o`: the output delta.

        Row ``n`` is :math:`w_n \, \partial \ell / \partial o_n`, where
        :math:`w_n = 1/B` without a mask. For a network without an output
        activation (the cross-entropies take logits) this is
        :math:`\delta_L`; otherwise the last activation's backward multiplies
        it by :math:`f'(z_L)`.

        Args:
            outputs: as for calling the loss.
            targets: likewise.
            mask: likewise.

        Returns:
            An array of the outputs' shape and dtype.
        """
        outputs, targets, weights = self._inputs(outputs, targets, mask)
        dell = self.per_example_grad(outputs, targets)
        return _batch_broadcast(weights, dell) * dell

    def _inputs(self, outputs, targets, mask):
        outputs = jnp.asarray(outputs)
        if outputs.ndim < 1:
            raise ValueError(
                f"outputs must have a batch axis first; got a scalar of shape "
                f"{outputs.shape}."
            )
        if not jnp.issubdtype(outputs.dtype, jnp.floating):
            raise TypeError(
                f"outputs must be floating point; got dtype {outputs.dtype}."
            )
        targets = self.prepare(outputs, targets)
        return outputs, targets, _weights(mask, outputs)


def _batch_broadcast(weights, like):
    return weights.reshape(weights.shape + (1,) * (like.ndim - 1))


def _weights(mask, outputs):
    """Per-example weights ``m_n / sum(m)`` (``1 / batch`` without a mask)."""
    batch = outputs.shape[0]
    if mask is None:
        return jnp.full((batch,), 1.0 / batch, outputs.dtype)
    mask = jnp.asarray(mask)
    if mask.shape != (batch,):
        raise ValueError(
            f"mask must have shape (batch,) = ({batch},), one weight per "
            f"example; got shape {mask.shape}."
        )
    mask = mask.astype(outputs.dtype)
    return mask / jnp.maximum(jnp.sum(mask), 1.0)


def _same_shape(outputs, targets):
    targets = jnp.asarray(targets)
    if targets.shape != outputs.shape:
        hint = ""
        if targets.ndim == outputs.ndim - 1 and outputs.shape[-1] == 1:
            hint = " Add the unit axis with targets[:, None]."
        raise ValueError(
            f"targets must have the shape of outputs {outputs.shape}; got "
            f"{targets.shape}. funcnet never broadcasts the two, since "
            f"(n, 1) against (n,) would silently compare n x n pairs.{hint}"
        )
    return targets.astype(outputs.dtype)


def _sum_units(values):
    return values.reshape(values.shape[0], -1).sum(axis=1)


# mse


def _mse(outputs, targets):
    return _sum_units(0.5 * (outputs - targets) ** 2)


def _mse_grad(outputs, targets):
    return outputs - targets


mse = Loss("mse", _mse, _mse_grad, _same_shape, classification=False)
r"""Half the squared error, summed over the output units, averaged over the batch.

.. math::

    \ell(o_n, t_n) = \tfrac12 \lVert o_n - t_n \rVert^2, \qquad
    \frac{\partial \ell}{\partial o_n} = o_n - t_n,
    \qquad\text{so}\qquad
    \frac{\partial L}{\partial o} = \frac{1}{B}(o - t).

``mse.grad`` is the output delta of an identity output layer; under an
output activation ``f`` its backward multiplies by :math:`f'(z_L)`. The one
half keeps the factor 2 out of the delta: this is ``n_out / 2`` times the
"mean over every element" of Keras or ``torch.nn.MSELoss``. ``targets`` must
have the outputs' shape.
"""


# sigmoid binary cross-entropy, from logits


def _bce(logits, targets):
    # softplus(z) - t z; softplus is logaddexp(z, 0), so no exp overflows, and
    # its autodiff derivative at z = 0 is the true 0.5 (a max/abs form gives
    # jax.grad a kink there).
    return _sum_units(jax.nn.softplus(logits) - targets * logits)


def _bce_grad(logits, targets):
    return jax.nn.sigmoid(logits) - targets


sigmoid_binary_cross_entropy = Loss(
    "sigmoid_binary_cross_entropy",
    _bce,
    _bce_grad,
    _same_shape,
    classification=True,
)
r"""Binary cross-entropy of ``sigmoid(logits)``, finite for every finite logit.

It takes the logits :math:`z` (no sigmoid on the last layer) and 0/1 or
probability targets of the same shape. With :math:`p = \sigma(z)`:

.. math::

    \ell(z_n, t_n) = -\sum_j \big[t_{nj} \log p_{nj}
        + (1 - t_{nj}) \log(1 - p_{nj})\big]
    = \sum_j \big[\operatorname{softplus}(z_{nj}) - t_{nj} z_{nj}\big],

.. math::

    \frac{\partial \ell}{\partial z_n} = \sigma(z_n) - t_n,
    \qquad\text{so}\qquad
    \delta_L = \frac{\partial L}{\partial z} = \frac{1}{B}(p - t).

The softplus form is what the code computes: no ``exp`` overflows and no
``log(0)`` appears when the sigmoid saturates.
"""


# softmax cross-entropy, from logits


def _labels_or_probs(logits, targets):
    targets = jnp.asarray(targets)
    if not jnp.issubdtype(targets.dtype, jnp.integer):
        if targets.shape == logits.shape[:-1] and logits.shape[-1] > 1:
            raise ValueError(
                f"targets of shape {targets.shape} look like class labels, but "
                f"have dtype {targets.dtype}; labels must have an integer dtype "
                f"(targets.astype(int)), and probability targets the logits' "
                f"shape {logits.shape}."
            )
        return _same_shape(logits, targets)
    classes = logits.shape[-1]
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"targets of integer labels must have shape {logits.shape[:-1]} "
            f"(the logits' shape {logits.shape} without the class axis); got "
            f"shape {targets.shape}. Pass one-hot or probability targets of "
            f"the logits' shape instead if that is what they are."
        )
    values = concrete_values(targets)
    if values is not None and values.size:
        bad = values[(values < 0) | (values >= classes)]
        if bad.size:
            raise ValueError(
                f"targets of integer labels must lie in [0, {classes}) for "
                f"logits with {classes} classes; got {np.unique(bad).tolist()}."
            )
    return jax.nn.one_hot(targets, classes, dtype=logits.dtype)


def _softmax_ce(logits, targets):
    return _sum_units(-targets * jax.nn.log_softmax(logits))


def _softmax_ce_grad(logits, targets):
    total = targets.sum(axis=-1, keepdims=True)
    return jax.nn.softmax(logits) * total - targets


softmax_cross_entropy = Loss(
    "softmax_cross_entropy",
    _softmax_ce,
    _softmax_ce_grad,
    _labels_or_probs,
    classification=True,
)
r"""Cross-entropy of ``softmax(logits)`` against integer labels or probabilities.

It takes the logits :math:`z` (no softmax on the last layer) and either
integer labels of shape ``(batch,)`` in ``[0, classes)``, one-hot encoded
first, or one-hot / probability targets of the logits' shape. With
:math:`p_n = \operatorname{softmax}(z_n)`:

.. math::

    \ell(z_n, t_n) = -\sum_j t_{nj} \log p_{nj}, \qquad
    \log p_{nj} = z_{nj} - \log \sum_k e^{z_{nk}},

.. math::

    \frac{\partial \ell}{\partial z_n} = p_n \sum_j t_{nj} - t_n,
    \qquad\text{so}\qquad
    \delta_L = \frac{\partial L}{\partial z} = \frac{1}{B}(p - t)

for labels or one-hot targets (:math:`\sum_j t_{nj} = 1`); soft targets
that do not sum to one keep the exact gradient.
"""


def accuracy(outputs: ArrayLike, targets: ArrayLike) -> Array:
    """Per-example correctness (1.0 or 0.0) of a classifier's logits.

    Several outputs: the argmax against an integer label, or against the
    argmax of one-hot / probability targets. One output: the logit's sign
    against a 0/1 target (logit ``> 0`` predicts 1). Average it, weighted by
    the batch's mask, for the accuracy.

    Args:
        outputs: logits of shape ``(batch, classes)``, or ``(batch, 1)`` for
            a binary classifier.
        targets: integer labels of shape ``(batch,)``, one-hot or
            probability targets of the outputs' shape, or 0/1 targets for a
            single output.

    Returns:
        An array of shape ``(batch,)`` and the outputs' dtype, 1.0 where the
        prediction is right and 0.0 where it is wrong.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnet import losses
        >>> logits = jnp.array([[2.0, 0.5], [0.1, 0.3], [1.0, -1.0]])
        >>> losses.accuracy(logits, jnp.array([0, 0, 1])).tolist()
        [1.0, 0.0, 0.0]
    """
    outputs, targets = jnp.asarray(outputs), jnp.asarray(targets)
    if outputs.shape[-1] == 1 and outputs.ndim >= 2:
        predicted = (outputs[..., 0] > 0).astype(jnp.int32)
        target = targets.reshape(predicted.shape).round().astype(jnp.int32)
    else:
        predicted = jnp.argmax(outputs, axis=-1)
        integer = jnp.issubdtype(targets.dtype, jnp.integer)
        target = targets if integer else jnp.argmax(targets, axis=-1)
    correct = (predicted == target).astype(outputs.dtype)
    return correct.reshape(correct.shape[0], -1).mean(axis=1)


_BY_NAME = {
    loss.name: loss
    for loss in (mse, sigmoid_binary_cross_entropy, softmax_cross_entropy)
}


def get(loss: str | Loss) -> Loss:
    """Looks up a loss by name; a :class:`Loss` passes through.

    Args:
        loss: ``"mse"``, ``"sigmoid_binary_cross_entropy"``,
            ``"softmax_cross_entropy"``, or a :class:`Loss`.

    Returns:
        The :class:`Loss`.

    Raises:
        ValueError: for an unknown name or a value that is not a Loss.
    """
    if isinstance(loss, Loss):
        return loss
    try:
        return _BY_NAME[loss]
    except (KeyError, TypeError):
        raise ValueError(
            f"loss must be a Loss or one of {sorted(_BY_NAME)}; got {loss!r}."
        ) from None


__all__ = [
    "Loss",
    "accuracy",
    "get",
    "mse",
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
]
