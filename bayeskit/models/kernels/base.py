"""Kernels: positive-definite covariance functions k(x, x') as small frozen pytrees.

A kernel is a `core.module.Module`: a frozen dataclass and a JAX pytree whose hyperparameters
are leaves (so ``jax.grad`` differentiates through them and ``jit``/``vmap`` see arrays) and whose
structural settings (depth, activation, smoothness) are ``field(static=True)``; range checks live
in ``__check_init__`` (`core.checks`). ``kernel(x1, x2)`` returns the
``(n1, n2)`` matrix, ``kernel.diag(x)`` the ``(n,)`` diagonal. Inputs are ``(n, d)`` arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ...core.errors import DataError
from ...core.module import Module


def check_kernel(kernel) -> None:
    """Raise ModelError unless `kernel` is a bayeskit kernel (models built on kernels call this)."""
    from ...core.errors import ModelError

    if not isinstance(kernel, Kernel):
        raise ModelError(f"`kernel` must be a bayeskit kernel (e.g. NNGP(), RBF()), got {type(kernel).__name__}")


def safe_sqrt(x, xp=jnp):
    """sqrt(max(x, 0)) with a zero (not infinite) derivative at 0; ``xp`` is jax.numpy or torch."""
    positive = x > 0
    return xp.where(positive, xp.sqrt(xp.where(positive, x, xp.ones_like(x))), xp.zeros_like(x))


def as_inputs(x, name: str = "x") -> jax.Array:
    """Inputs as a 2-D ``(n, d)`` array (a 1-D array is n points in one dimension)."""
    x = jnp.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise DataError(f"`{name}` must be an (n, d) array of inputs, got shape {x.shape}")
    return x


class Kernel(Module):
    """Base class: subclasses implement ``matrix(x1, x2)`` and ``diagonal(x)`` on 2-D inputs."""

    def __call__(self, x1, x2=None) -> jax.Array:
        x1 = as_inputs(x1, "x1")
        x2 = x1 if x2 is None else as_inputs(x2, "x2")
        if x1.shape[1] != x2.shape[1]:
            raise DataError(f"`x1` and `x2` must have the same number of columns, got {x1.shape[1]} and {x2.shape[1]}")
        return self.matrix(x1, x2)

    def diag(self, x) -> jax.Array:
        return self.diagonal(as_inputs(x))

    def matrix(self, x1, x2):  # pragma: no cover - abstract
        raise NotImplementedError

    def diagonal(self, x):
        return jnp.diagonal(self.matrix(x, x))
