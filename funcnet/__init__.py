"""funcnet: a functional JAX training framework with hand-written gradients."""

__version__ = "0.1.0"
