"""funcnet: a functional JAX training framework with hand-written gradients.

A network is a :class:`~funcnet.layers.Layer`: pure ``init``, ``forward``
and a hand-written ``backward``. Its parameters are a pytree. Its gradient
is computed twice on purpose, by the delta rule
(:func:`~funcnet.grad.manual_value_and_grad`) and by ``jax.grad``
(:func:`~funcnet.grad.autodiff_value_and_grad`), and the two agree.

Submodules: :mod:`~funcnet.activations`, :mod:`~funcnet.audit`,
:mod:`~funcnet.bridge`, :mod:`~funcnet.checkpoint`, :mod:`~funcnet.data`,
:mod:`~funcnet.grad`, :mod:`~funcnet.initializers`, :mod:`~funcnet.layers`,
:mod:`~funcnet.losses`, :mod:`~funcnet.optim`, :mod:`~funcnet.regularizers`,
:mod:`~funcnet.sweep`, :mod:`~funcnet.trace`, :mod:`~funcnet.train`.
"""

from funcnet import activations as activations
from funcnet import audit as audit
from funcnet import bridge as bridge
from funcnet import checkpoint as checkpoint
from funcnet import data as data
from funcnet import grad as grad
from funcnet import initializers as initializers
from funcnet import layers as layers
from funcnet import losses as losses
from funcnet import optim as optim
from funcnet import regularizers as regularizers
from funcnet import sweep as sweep
from funcnet import trace as trace
from funcnet import train as train
from funcnet.grad import (
    autodiff_value_and_grad as autodiff_value_and_grad,
)
from funcnet.grad import deltas as deltas
from funcnet.grad import (
    manual_value_and_grad as manual_value_and_grad,
)
from funcnet.layers import BatchNorm as BatchNorm
from funcnet.layers import Dense as Dense
from funcnet.layers import Dropout as Dropout
from funcnet.layers import Layer as Layer
from funcnet.layers import mlp as mlp
from funcnet.layers import serial as serial
from funcnet.train import TrainState as TrainState
from funcnet.train import fit as fit

__version__ = "0.1.0"

__all__ = [
    "BatchNorm",
    "Dense",
    "Dropout",
    "Layer",
    "TrainState",
    "activations",
    "audit",
    "bridge",
    "checkpoint",
    "autodiff_value_and_grad",
    "data",
    "deltas",
    "fit",
    "grad",
    "initializers",
    "layers",
    "losses",
    "manual_value_and_grad",
    "mlp",
    "optim",
    "regularizers",
    "serial",
    "sweep",
    "trace",
    "train",
]
