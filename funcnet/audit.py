"""The gradient audit: a network's hand-written backward against two oracles.

:func:`audit` runs one batch through any funcnet network (a
:class:`~funcnet.layers.Layer`, your own layers included) and compares the
gradient of the manual backward pass, leaf by leaf, with

* ``jax.grad`` of the same forward pass and loss, always; and
* central finite differences of the loss, by default in float64 only.

For a parameter leaf with manual gradient ``m`` and autodiff gradient ``a``
the report gives

.. math::

    \\text{max\\_abs} = \\max_i |m_i - a_i|, \\qquad
    \\text{max\\_rel} = \\frac{\\text{max\\_abs}}{\\max_i |a_i|}, \\qquad
    \\cos = \\frac{\\langle m, a \\rangle}{\\|m\\| \\, \\|a\\|}

(``max_rel`` is relative to the leaf's scale, so exact zeros in both, such
as a dead relu unit's weights, do not divide by zero). The leaf passes when
``max_abs <= atol + rtol * max|a|`` with a tolerance of the leaf's dtype
(see :data:`RTOL`), and when the finite-difference check below passes.

**Finite differences.** Along ``fd_directions`` random unit directions
``v`` of each leaf, the directional derivative ``<m, v>`` is compared with

.. math::

    \\frac{L(p + h v) - L(p - h v)}{2 h}, \\qquad
    h = \\epsilon^{1/3} \\max(1, \\mathrm{rms}(p)),

the step that balances the truncation error ``O(h^2)`` against rounding
``O(\\epsilon / h)``, and again at ``h / 16`` (so that a step which happens
to cross a relu kink does not fail a correct gradient). The error, relative
to ``||m||``, must stay under :data:`FD_RTOL` plus the rounding floor
``100 * eps * max(|L|, 1) / h``. Float16 and bfloat16 are refused: their
``eps^(2/3)`` is about 1e-2, too coarse to tell a missing term from noise.

The report is a pytree of arrays (static paths and tolerances), so an audit
runs under ``jit`` and ``vmap``: ``jax.vmap`` of a function returning an
:class:`AuditReport` audits every member of a sweep in one call, and the
stacked report prints one row per member and leaf.

Writing your own layer: give it ``init``, ``forward`` and a hand-written
``backward`` (the contract is in :mod:`funcnet.layers`), then audit it in
one call with :func:`audit_layer`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from funcnet import audit, layers
    >>> def Scale():
    ...     '''y = x * s, one trained factor per feature.'''
    ...     def init(key, input_shape):
    ...         return input_shape, {"s": jnp.ones(input_shape[-1:])}, ()
    ...     def forward(params, state, x, *, key=None, train=True):
    ...         return x * params["s"][None], state, x
    ...     def backward(params, residuals, dy):
    ...         x = residuals
    ...         return {"s": (dy * x).sum(0)}, dy * params["s"][None]
    ...     return layers.Layer(init, forward, backward, name="Scale")
    >>> net = layers.serial(layers.Dense(3), Scale(), layers.Dense(1))
    >>> report = audit.audit_layer(net, (2,), key=jax.random.key(0))
    >>> report.passed
    True
    >>> print(report)  # doctest: +ELLIPSIS
    leaf      shape   max_abs  max_rel  cosine    fd  status
    [0]['W']  (2, 3)  ...  ok
    ...
    [2]['b']  (1,)    ...  ok
    >>> report.raise_if_failed() is report
    True
"""

import functools
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnet import losses as _losses
from funcnet._checks import is_concrete
from funcnet.bridge import _check_key, _check_state
from funcnet.grad import autodiff_value_and_grad, manual_value_and_grad
from funcnet.layers import Layer
from funcnet.losses import Loss

RTOL = {"float64": 1e-10, "float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}
"""Default ``rtol`` of manual vs ``jax.grad``, relative to each leaf's scale.

Both sides compute the same sums in a different order, so they differ by
rounding: a few hundred ``eps`` in practice (float32 ``eps`` = 1.2e-7, float64
2.2e-16), more where a sum cancels. These leave a margin of about 1000x in
float32 and 1e5x in float64, and sit far below the O(1) error of a wrong
term.
"""

FD_RTOL = {"float64": 1e-6, "float32": 1e-2}
"""Default relative tolerance of finite differences against ``<m, v>``.

Central differences at ``h = eps^(1/3)`` carry an error of about
``eps^(2/3)`` (4e-11 in float64, 2e-5 in float32) times the loss's curvature.
"""

FD_DIRECTIONS = 4
"""Random directions per leaf for the finite-difference check."""

_FD_SHRINK = 16.0


class AuditMetrics(NamedTuple):
    """The audit's numbers, one entry per parameter leaf (last axis).

    Under ``vmap`` every field gains the mapped axes in front.

    Attributes:
        max_abs: ``max |m - a|``, manual minus autodiff.
        max_rel: ``max_abs / max |a|`` (``max_abs`` where ``a`` is all zero).
        cosine: the cosine of the angle between ``m`` and ``a`` (1 when both
            are zero).
        fd_max_rel: the largest finite-difference error relative to ``||m||``
            (NaN when finite differences did not run).
        fd_kinks: how many finite-difference directions met a kink at the
            audited point (a relu at exactly ``z = 0``), where the loss has
            no derivative to compare with; they are left out of
            ``fd_max_rel`` and of the verdict.
        passed: whether the leaf passed every check that ran.
    """

    max_abs: jax.Array
    max_rel: jax.Array
    cosine: jax.Array
    fd_max_rel: jax.Array
    fd_kinks: jax.Array
    passed: jax.Array


class GradientMismatchError(AssertionError):
    """The hand-written gradient disagrees with an oracle; carries the table.

    Raised by :meth:`AuditReport.raise_if_failed`. An ``AssertionError``, so
    that a test that audits a layer fails like any other assertion.

    Args:
        message: the failing leaves' paths and the report's table.
        report: the :class:`AuditReport` that failed.

    Attributes:
        report: the :class:`AuditReport` (``None`` when not given), for the
            numbers behind the message.
    """

    def __init__(self, message: str, report: "AuditReport | None" = None):
        super().__init__(message)
        self.report = report


@jax.tree_util.register_pytree_node_class
class AuditReport:
    """Per-leaf results of :func:`audit`, printable as a table.

    A pytree: the :class:`AuditMetrics` are its children; the leaf paths,
    shapes, dtypes and tolerances are static. ``str(report)`` renders the
    table, one row per leaf (per member and leaf after ``vmap``).

    Attributes:
        paths: each parameter leaf's path, such as ``"[0]['W']"``.
        shapes: each leaf's shape (of one member).
        dtypes: each leaf's dtype name.
        rtol: each leaf's tolerance of manual vs ``jax.grad``.
        atol: the absolute tolerance added to it.
        fd_rtol: the finite-difference tolerance, or ``None`` when finite
            differences did not run.
        metrics: the :class:`AuditMetrics`.
    """

    def __init__(self, paths, shapes, dtypes, rtol, atol, fd_rtol, metrics):
        self.paths = tuple(paths)
        self.shapes = tuple(shapes)
        self.dtypes = tuple(dtypes)
        self.rtol = tuple(rtol)
        self.atol = atol
        self.fd_rtol = fd_rtol
        self.metrics = metrics

    def tree_flatten(self):
        static = (self.paths, self.shapes, self.dtypes, self.rtol, self.atol)
        return (self.metrics,), static + (self.fd_rtol,)

    @classmethod
    def tree_unflatten(cls, static, children):
        return cls(*static, *children)

    @property
    def members(self) -> tuple[int, ...]:
        """The mapped axes in front of the leaf axis (``()`` without vmap)."""
        return tuple(np.shape(self.metrics.passed)[:-1])

    @property
    def passed(self) -> bool:
        """Whether every leaf (of every member) passed."""
        return bool(np.all(np.asarray(self.metrics.passed)))

    @property
    def failed(self) -> list[str]:
        """The paths of the leaves that failed (in any member)."""
        passed = np.asarray(self.metrics.passed).reshape(-1, len(self.paths))
        return [p for p, ok in zip(self.paths, passed.all(axis=0)) if not ok]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per member and leaf: the table as plain Python values.

        Returns:
            A list of dicts with the keys ``path``, ``shape``, ``dtype`` and
            the :class:`AuditMetrics` fields (``passed`` a bool, ``fd_kinks``
            an int, the rest floats), plus ``member`` (a tuple of indices)
            after ``vmap``; members in row-major order, leaves in the order
            of :attr:`paths`.
        """
        fields = {k: np.asarray(v) for k, v in self.metrics._asdict().items()}
        rows = []
        for member in np.ndindex(*self.members):
            for i, path in enumerate(self.paths):
                row = {"member": member} if self.members else {}
                row.update(path=path, shape=self.shapes[i], dtype=self.dtypes[i])
                for name, values in fields.items():
                    value = values[member + (i,)]
                    kind = {"passed": bool, "fd_kinks": int}.get(name, float)
                    row[name] = kind(value)
                rows.append(row)
        return rows

    def raise_if_failed(self) -> "AuditReport":
        """Raises :class:`GradientMismatchError` with the table if any leaf failed.

        Returns:
            The report itself, when every leaf passed.
        """
        if not self.passed:
            raise GradientMismatchError(
                f"the hand-written gradient disagrees with an oracle in "
                f"{', '.join(self.failed)}:\n{self}",
                self,
            )
        return self

    def __str__(self) -> str:
        header = ["leaf", "shape", "max_abs", "max_rel", "cosine", "fd", "status"]
        if self.members:
            header.insert(0, "member")
        table = [header]
        for row in self.rows():
            fd = "-" if np.isnan(row["fd_max_rel"]) else f"{row['fd_max_rel']:.1e}"
            if row["fd_kinks"]:
                fd = f"{fd} ({row['fd_kinks']} kink)"
            line = [
                row["path"],
                str(row["shape"]),
                f"{row['max_abs']:.1e}",
                f"{row['max_rel']:.1e}",
                f"{row['cosine']:.6f}",
                fd,
                "ok" if row["passed"] else "FAIL",
            ]
            if self.members:
                line.insert(0, ",".join(map(str, row["member"])))
            table.append(line)
        widths = [max(len(r[c]) for r in table) for c in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        try:
            verdict = "passed" if self.passed else f"failed={self.failed}"
        except jax.errors.ConcretizationTypeError:
            verdict = "traced"
        return f"AuditReport({len(self.paths)} leaves, {verdict})"


def audit(
    network: Layer,
    loss: Loss,
    params,
    state,
    x,
    targets,
    *,
    key=None,
    train: bool = True,
    mask=None,
    l2=0.0,
    l2_mask=None,
    fd: bool | None = None,
    fd_key=None,
    fd_directions: int = FD_DIRECTIONS,
    rtol: float | None = None,
    atol: float = 0.0,
) -> AuditReport:
    """Audits the hand-written gradient of ``network`` on one batch.

    Args:
        network: any :class:`~funcnet.layers.Layer` (a ``serial`` network,
            ``mlp``'s, or a single layer of your own).
        loss: a :class:`~funcnet.losses.Loss`; its hand-written ``grad``
            starts the manual backward pass.
        params: the network's params, as its ``init`` returns them.
        state: its state (``None`` for a stateless ``serial`` network).
        x: a batch of inputs, the batch on the first axis.
        targets: the batch's targets, as ``loss`` takes them.
        key: the forward key (dropout); the same on every side.
        train: the forward's mode.
        mask: per-example loss weights, passed to ``loss``.
        l2: the L2 strength, passed to both value-and-grad functions.
        l2_mask: the L2 mask, passed on likewise.
        fd: ``True`` to add the finite-difference check, ``False`` to skip
            it, ``None`` (default) to run it when every leaf is float64.
        fd_key: the key of the random directions; ``None`` for a fixed one,
            so that an audit is reproducible.
        fd_directions: the number of random directions per leaf.
        rtol: the tolerance of manual vs ``jax.grad`` relative to each leaf's
            scale ``max |a|``; ``None`` for :data:`RTOL` of the leaf's dtype.
        atol: an absolute tolerance added to it. Needed where a leaf's true
            gradient is zero by structure, such as a Dense bias right before
            batch norm (``mlp`` leaves that bias out): both sides then hold
            only rounding, which no relative tolerance accepts. An ``atol``
            of about ``1e3 * eps`` times the largest gradient entry accepts
            it; a float64 audit makes the rounding far smaller.

    Returns:
        An :class:`AuditReport`. It raises nothing by itself: check
        ``report.passed`` or call ``report.raise_if_failed()``.

    Raises:
        ValueError: for a bad argument (a ``key`` or ``fd_key`` that is not a
            PRNG key, ``state=None`` for a network with batch norm, a
            negative or non-numeric ``rtol`` or ``atol``), for ``fd=True``
            with float16 or bfloat16 params, or when the backward returns
            gradients of the wrong structure or shape (the message names the
            leaf).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnet import audit, layers, losses
        >>> net = layers.mlp([3, 4, 2], "tanh")
        >>> _, params, state = net.init(jax.random.key(0))
        >>> x, t = jnp.ones((5, 3)), jnp.zeros((5, 2))
        >>> report = audit.audit(net, losses.mse, params, state, x, t)
        >>> report.paths, report.passed
        (("[0]['W']", "[0]['b']", "[2]['W']", "[2]['b']"), True)
    """
    _check_arguments(network, loss, fd, fd_directions, rtol, atol)
    _check_key("key", key)
    _check_key("fd_key", fd_key)
    _check_state(network, state, x)
    rtol = None if rtol is None else float(rtol)
    atol = float(atol)
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    dtypes = [jnp.dtype(leaf.dtype) for _, leaf in leaves]
    for (path, _), dtype in zip(leaves, dtypes):
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(
                f"params must hold floating-point leaves to be differentiated; "
                f"leaf {jax.tree_util.keystr(path)} has dtype {dtype.name}."
            )
    low = sorted({d.name for d in dtypes if d.name in ("float16", "bfloat16")})
    if fd and low:
        raise ValueError(
            f"fd=True needs float32 or float64 params; got {', '.join(low)}, "
            f"whose finite differences err by about eps^(2/3) ~ 1e-2, too "
            f"coarse to trust. Audit in float64 (inside jax.enable_x64(True), "
            f"params and inputs cast with .astype) or pass fd=False."
        )
    if fd is None:
        fd = bool(dtypes) and all(d == jnp.float64 for d in dtypes)
    fd_rtol = None
    if fd:
        fd_rtol = max(FD_RTOL.get(d.name, FD_RTOL["float32"]) for d in dtypes)
    if fd_key is None:
        fd_key = jax.random.key(0)

    paths = [jax.tree_util.keystr(path) for path, _ in leaves]
    shapes = [tuple(leaf.shape) for _, leaf in leaves]
    rtols = [
        RTOL.get(d.name, RTOL["float32"]) if rtol is None else rtol for d in dtypes
    ]
    directions = _directions(fd_key, params, fd_directions) if fd else None
    metrics_fn = _compiled_metrics(
        network, loss, l2, l2_mask, train, fd, tuple(rtols), atol, fd_rtol,
        tuple(paths),
    )  # fmt: skip
    metrics = metrics_fn(params, state, x, targets, key, mask, directions)
    names = [d.name for d in dtypes]
    return AuditReport(paths, shapes, names, rtols, atol, fd_rtol, metrics)


def audit_layer(
    layer: Layer,
    input_shape,
    *,
    key,
    batch_size: int = 4,
    loss: Loss = _losses.mse,
    dtype=None,
    train: bool = True,
    fd: bool | None = None,
    rtol: float | None = None,
    atol: float = 0.0,
) -> AuditReport:
    """Initialises ``layer``, draws a random batch and targets, and audits it.

    The one-call check for a layer of your own: inputs and targets are
    standard normal (targets of the output's shape, for the default
    :data:`~funcnet.losses.mse`). Run it inside ``jax.enable_x64(True)``
    with a float64 layer to add finite differences.

    Args:
        layer: the layer or network to audit.
        input_shape: the shape of one example, without the batch axis.
        key: split into the init, input, target and forward keys.
        batch_size: the number of examples.
        loss: the loss on the layer's output (targets are drawn for ``mse``;
            other losses need :func:`audit` with your own targets).
        dtype: the inputs' dtype; ``None`` for that of the first param leaf
            (float32 for a layer without params).
        train: the forward's mode.
        fd: as for :func:`audit`.
        rtol: as for :func:`audit`.
        atol: as for :func:`audit`.

    Returns:
        The :class:`AuditReport`.
    """
    if not isinstance(layer, Layer):
        raise ValueError(
            f"layer must be a funcnet Layer (init, forward, backward); got "
            f"{type(layer).__name__}."
        )
    _check_key("key", key, required=True)
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    init_key, x_key, t_key, forward_key = jax.random.split(key, 4)
    input_shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    out_shape, params, state = layer.init(init_key, input_shape)
    if dtype is None:
        first = jax.tree.leaves(params)[:1]
        dtype = first[0].dtype if first else jnp.float32
    x = jax.random.normal(x_key, (batch_size,) + input_shape, dtype)
    targets = jax.random.normal(t_key, (batch_size,) + tuple(out_shape), dtype)
    return audit(
        layer, loss, params, state, x, targets,
        key=forward_key, train=train, fd=fd, rtol=rtol, atol=atol,
    )  # fmt: skip


def _compiled_metrics(*config):
    """The jitted audit of one configuration, reused while it is hashable.

    Auditing a sweep member by member, or before and after training, then
    traces and compiles once (a bounded cache, like ``jax.jit``'s own).
    """
    try:
        hash(config)
    except TypeError:  # an array l2 or mask: build afresh
        return jax.jit(_metrics(*config))
    return _cached_metrics(*config)


@functools.lru_cache(maxsize=32)
def _cached_metrics(*config):
    return jax.jit(_metrics(*config))


def _metrics(network, loss, l2, l2_mask, train, fd, rtols, atol, fd_rtol, paths):
    manual_fn = manual_value_and_grad(network, loss, l2=l2, l2_mask=l2_mask)
    auto_fn = autodiff_value_and_grad(network, loss, l2=l2, l2_mask=l2_mask)

    def metrics_fn(params, state, x, targets, key, mask, directions):
        options = {"key": key, "train": train, "mask": mask}
        (value, _), manual = manual_fn(params, state, x, targets, **options)
        (_, _), auto = auto_fn(params, state, x, targets, **options)
        _check_structure(params, manual, paths)

        def objective(params):
            return manual_fn(params, state, x, targets, **options)[0][0]

        rows = []
        flat_params, treedef = jax.tree.flatten(params)
        flat_manual, flat_auto = jax.tree.leaves(manual), jax.tree.leaves(auto)
        for i, (m, a) in enumerate(zip(flat_manual, flat_auto)):
            max_abs, max_rel, cosine, scale = _compare(m, a)
            passed = max_abs <= atol + rtols[i] * scale
            fd_rel = jnp.full((), jnp.nan, max_abs.dtype)
            kinks = jnp.zeros((), jnp.int32)
            if fd:
                fd_rel, fd_passed, kinks = _finite_differences(
                    objective,
                    value,
                    flat_params,
                    treedef,
                    i,
                    m,
                    directions[i],
                    fd_rtol,
                )
                passed = passed & fd_passed
            fd_rel = fd_rel.astype(max_abs.dtype)
            rows.append((max_abs, max_rel, cosine, fd_rel, kinks, passed))
        if not rows:
            empty = jnp.zeros((0,))
            none = jnp.zeros((0,), jnp.int32)
            return AuditMetrics(empty, empty, empty, empty, none, empty > 0)
        return AuditMetrics(*(jnp.stack(column) for column in zip(*rows)))

    return metrics_fn


def _check_arguments(network, loss, fd, fd_directions, rtol, atol):
    if not isinstance(network, Layer):
        raise ValueError(
            f"network must be a funcnet Layer (init, forward, backward); got "
            f"{type(network).__name__}."
        )
    if not callable(loss) or not callable(getattr(loss, "grad", None)):
        raise ValueError(
            f"loss must be a funcnet Loss with a hand-written grad (such as "
            f"funcnet.losses.mse); got {type(loss).__name__}."
        )
    if fd not in (None, True, False):
        raise ValueError(f"fd must be None, True or False; got {fd!r}.")
    if (
        isinstance(fd_directions, bool)
        or not isinstance(fd_directions, int)
        or fd_directions < 1
    ):
        raise ValueError(
            f"fd_directions must be a positive integer; got {fd_directions!r}."
        )
    for name, value, optional in (("rtol", rtol, True), ("atol", atol, False)):
        if value is None and optional:
            continue
        number = (
            np.ndim(value) == 0
            and isinstance(value, (numbers.Real, np.generic, jax.Array))
            and not isinstance(value, (bool, np.bool_))
            and np.issubdtype(np.asarray(value).dtype, np.number)
            and not np.iscomplexobj(value)
        )
        if not (number and float(value) >= 0):
            expected = "a non-negative number" + (" or None" if optional else "")
            raise ValueError(
                f"{name} must be {expected}; got {value!r} of type "
                f"{type(value).__name__}."
            )


def _check_structure(params, grads, paths):
    if jax.tree.structure(grads) != jax.tree.structure(params):
        raise ValueError(
            f"the hand-written backward returned gradients of structure "
            f"{jax.tree.structure(grads)}; expected the structure of params, "
            f"{jax.tree.structure(params)}."
        )
    for path, p, g in zip(paths, jax.tree.leaves(params), jax.tree.leaves(grads)):
        if g.shape != p.shape:
            hint = " (transposed?)" if g.shape == p.shape[::-1] else ""
            raise ValueError(
                f"the hand-written backward returned a gradient of shape "
                f"{g.shape} for leaf {path} of shape {p.shape}{hint}."
            )


def _wide(*arrays):
    """The arrays in a dtype wide enough to measure their differences."""
    dtype = jnp.result_type(jnp.float32, *(a.dtype for a in arrays))
    return [a.astype(dtype) for a in arrays]


def _compare(m, a):
    m, a = _wide(m, a)
    max_abs = jnp.max(jnp.abs(m - a), initial=0.0)
    scale = jnp.max(jnp.abs(a), initial=0.0)
    max_rel = max_abs / jnp.where(scale > 0, scale, 1)
    norms = jnp.linalg.norm(m.ravel()) * jnp.linalg.norm(a.ravel())
    both_zero = (jnp.linalg.norm(m.ravel()) == 0) & (jnp.linalg.norm(a.ravel()) == 0)
    cosine = jnp.where(
        both_zero, 1.0, jnp.vdot(m.ravel(), a.ravel()) / jnp.where(norms > 0, norms, 1)
    )
    return max_abs, max_rel, cosine, scale


def _directions(fd_key, params, count):
    """``count`` random unit directions per leaf, ``(count,) + leaf.shape``.

    Drawn with numpy from a concrete ``fd_key`` (compiling jax's generator
    into the audit costs seconds on a CPU); from ``jax.random`` under a trace.
    """
    out = []
    for i, leaf in enumerate(jax.tree.leaves(params)):
        shape = (count,) + tuple(leaf.shape)
        if is_concrete(fd_key):
            seed = np.asarray(jax.random.key_data(fd_key)).ravel().tolist()
            v = np.random.default_rng(seed + [i]).standard_normal(shape)
        else:
            v = jax.random.normal(jax.random.fold_in(fd_key, i), shape)
        norms = jnp.sqrt(jnp.sum(jnp.reshape(v, (count, -1)) ** 2, axis=1))
        norms = jnp.where(norms > 0, norms, 1).reshape((count,) + (1,) * leaf.ndim)
        out.append((v / norms).astype(leaf.dtype))
    return out


def _finite_differences(
    objective: Callable, value, flat_params, treedef, i, m, v, fd_rtol
):
    """Central differences of ``objective`` along random directions of leaf i.

    Returns the largest error relative to ``||m||`` over the smooth
    directions, whether they all passed, and how many directions met a kink.
    """
    p = flat_params[i]
    eps = float(jnp.finfo(p.dtype).eps)
    directions = v.shape[0]
    rms = jnp.sqrt(jnp.mean(p**2)) if p.size else jnp.zeros((), p.dtype)
    h = eps ** (1 / 3) * jnp.maximum(1, rms)

    def at(offset):
        leaves = list(flat_params)
        leaves[i] = p + offset
        return objective(jax.tree.unflatten(treedef, leaves))

    # One vmapped forward for every (step, sign, direction): rows h+, h-,
    # (h/16)+, (h/16)-.
    steps = jnp.stack([h, h / _FD_SHRINK])
    signed = jnp.stack([steps, -steps], axis=1).reshape(4, 1)
    offsets = signed.reshape((4, 1) + (1,) * p.ndim) * v[None]
    values = jax.vmap(at)(offsets.reshape((4 * directions,) + p.shape))
    values = values.reshape(2, 2, directions)

    exact = jnp.sum(v.reshape(directions, -1) * m.reshape(1, -1), axis=1)
    m_norm = jnp.linalg.norm(m.ravel())
    noise = 100 * eps * jnp.maximum(jnp.abs(value), 1)
    ratios, errors, curvatures = [], [], []
    for s in range(2):
        plus, minus = values[s, 0], values[s, 1]
        error = jnp.abs((plus - minus) / (2 * steps[s]) - exact)
        ratios.append(error / (noise / steps[s] + fd_rtol * m_norm))
        errors.append(error)
        curvatures.append(jnp.abs(plus + minus - 2 * value))

    # A kink at p itself (relu at exactly z = 0): the second difference
    # shrinks like the step, not its square, and no step resolves the slope.
    kink = curvatures[1] > curvatures[0] / _FD_SHRINK**1.5 + noise
    best = jnp.where(ratios[0] <= ratios[1], errors[0], errors[1])
    best = jnp.where(kink, 0, best)
    fd_rel = jnp.max(best) / jnp.where(m_norm > 0, m_norm, 1)
    passed = jnp.all(kink | (jnp.minimum(ratios[0], ratios[1]) <= 1))
    return fd_rel, passed, jnp.sum(kink, dtype=jnp.int32)


__all__ = [
    "FD_DIRECTIONS",
    "FD_RTOL",
    "RTOL",
    "AuditMetrics",
    "AuditReport",
    "GradientMismatchError",
    "audit",
    "audit_layer",
]
