"""The one data-parallel layout, shared by ``train.fit`` and ``sweep.run``.

A minibatch is split along a mesh's data axis and everything else (params,
optimizer state, the data sets) is replicated; XLA's partitioner turns the
backward pass's batch sums into per-device partial sums and an all-reduce.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from funcnet import checkpoint as _checkpoint


def layouts(mesh, data_axis):
    """Sharding constraints for a batch (split) and a train state (replicated)."""
    if mesh is None:
        return (lambda tree: tree), (lambda tree: tree)
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh; got {type(mesh).__name__}.")
    if data_axis not in mesh.axis_names:
        raise ValueError(
            f"data_axis {data_axis!r} is not an axis of the mesh, whose axes are "
            f"{mesh.axis_names}."
        )
    split = NamedSharding(mesh, PartitionSpec(data_axis))
    whole = NamedSharding(mesh, PartitionSpec())

    def split_batch(batch):
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, split), batch)

    def replicate(tree):
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, whole), tree)

    return split_batch, replicate


def check_divisible(batch_size, n, mesh, data_axis):
    devices = mesh.shape[data_axis]
    size = n if batch_size is None else min(batch_size, n)
    if size % devices:
        what = (
            f"batch_size={size}"
            if batch_size is not None and batch_size < n
            else f"the full batch of {size} examples"
        )
        raise ValueError(
            f"{what} is not divisible by the {devices} devices on mesh axis "
            f"{data_axis!r}: each device must get the same share of every batch. "
            f"Choose a batch size that is a multiple of {devices}."
        )


def replicate(leaf, sharding):
    """``leaf`` replicated on ``sharding``'s devices, on one host or several."""
    if _checkpoint._is_key(leaf):
        # device_put cannot place a typed key on devices of other hosts.
        data = replicate(jax.random.key_data(leaf), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
        return leaf
    if sharding.is_fully_addressable:
        return jax.device_put(leaf, sharding)
    # Across hosts every process holds the whole value and places its copies;
    # a transfer from one host's device to the others' is not possible.
    return jax.make_array_from_process_local_data(sharding, np.asarray(leaf))
