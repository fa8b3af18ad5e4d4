"""Kernels: positive-definite covariance functions k(x, x') as small frozen pytrees.

A kernel is a frozen dataclass registered as a JAX pytree: its hyperparameters are leaves
(so ``jax.grad`` differentiates through them and ``jit``/``vmap`` see arrays), its structural
settings (depth, activation, smoothness) are static. ``kernel(x1, x2)`` returns the
``(n1, n2)`` matrix, ``kernel.diag(x)`` the ``(n,)`` diagonal. Inputs are ``(n, d)`` arrays.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ...core.errors import ConfigError, DataError


def kernel_dataclass(cls=None, *, static: tuple[str, ...] = ()):
    """Make `cls` a frozen dataclass and a pytree; fields in `static` are not differentiated."""

    def wrap(c):
        c = dataclasses.dataclass(frozen=True)(c)
        fields = [f.name for f in dataclasses.fields(c)]
        return jax.tree_util.register_dataclass(
            c, data_fields=[f for f in fields if f not in static], meta_fields=[f for f in fields if f in static]
        )

    return wrap if cls is None else wrap(cls)


def check_kernel(kernel) -> None:
    """Raise ModelError unless `kernel` is a bayeskit kernel (models built on kernels call this)."""
    from ...core.errors import ModelError

    if not isinstance(kernel, Kernel):
        raise ModelError(f"`kernel` must be a bayeskit kernel (e.g. NNGP(), RBF()), got {type(kernel).__name__}")


def _check_values(owner: str, values: dict, allow_zero: bool) -> None:
    """Raise ConfigError for a concrete value that is non-finite, negative, or zero unless allowed
    (traced values are skipped: they are checked where they were concrete)."""
    for name, value in values.items():
        if isinstance(value, jax.core.Tracer):
            continue
        v = np.asarray(value)
        if not np.all(np.isfinite(v)) or np.any(v < 0) or (not allow_zero and np.any(v == 0)):
            what = "must be >= 0 and finite" if allow_zero else "must be positive and finite"
            raise ConfigError(f"{owner}: `{name}` {what}, got {value!r}")


def check_positive(owner: str, **values) -> None:
    """Raise ConfigError for a concrete hyperparameter that is not > 0."""
    _check_values(owner, values, allow_zero=False)


def check_non_negative(owner: str, **values) -> None:
    """Raise ConfigError for a concrete hyperparameter that is not >= 0."""
    _check_values(owner, values, allow_zero=True)


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


class Kernel:
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
