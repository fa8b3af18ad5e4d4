"""Stationary kernels for comparison: RBF and Matérn (ν = 1/2, 3/2, 5/2)."""

from __future__ import annotations

import jax.numpy as jnp

from ...core.checks import check_positive_values
from ...core.errors import ConfigError
from ...core.module import field
from .base import Kernel, safe_sqrt


def _scaled_sqdist(x1, x2, lengthscale):
    a, b = x1 / lengthscale, x2 / lengthscale
    d2 = jnp.sum(a**2, -1)[:, None] + jnp.sum(b**2, -1)[None, :] - 2 * a @ b.T
    return jnp.maximum(d2, 0.0)


class RBF(Kernel):
    """k(x, x') = variance · exp(-|x - x'|² / (2 lengthscale²)); `lengthscale` scalar or per dimension."""

    variance: float = 1.0
    lengthscale: float = 1.0

    def __check_init__(self):
        check_positive_values("RBF", variance=self.variance, lengthscale=self.lengthscale)

    def matrix(self, x1, x2):
        return self.variance * jnp.exp(-0.5 * _scaled_sqdist(x1, x2, self.lengthscale))

    def diagonal(self, x):
        return jnp.full(x.shape[0], self.variance, dtype=jnp.result_type(x, self.variance))


class Matern(Kernel):
    """Matérn kernel with smoothness ``nu`` in {0.5, 1.5, 2.5}; r = |x - x'| / lengthscale."""

    variance: float = 1.0
    lengthscale: float = 1.0
    nu: float = field(static=True, default=2.5)

    def __check_init__(self):
        if self.nu not in (0.5, 1.5, 2.5):
            raise ConfigError(f"Matern: `nu` must be 0.5, 1.5 or 2.5, got {self.nu!r}")
        check_positive_values("Matern", variance=self.variance, lengthscale=self.lengthscale)

    def matrix(self, x1, x2):
        r = safe_sqrt(_scaled_sqdist(x1, x2, self.lengthscale))  # zero gradient at duplicate points
        if self.nu == 0.5:
            k = jnp.exp(-r)
        elif self.nu == 1.5:
            s = jnp.sqrt(3.0) * r
            k = (1 + s) * jnp.exp(-s)
        else:
            s = jnp.sqrt(5.0) * r
            k = (1 + s + s**2 / 3) * jnp.exp(-s)
        return self.variance * k

    def diagonal(self, x):
        return jnp.full(x.shape[0], self.variance, dtype=jnp.result_type(x, self.variance))


class Periodic(Kernel):
    """k(x, x') = variance · exp(−2 Σ_d sin²(π |x_d − x'_d| / period) / lengthscale²) (MacKay's periodic
    kernel, as GPyTorch's ``PeriodicKernel``)."""

    variance: float = 1.0
    lengthscale: float = 1.0
    period: float = 1.0

    def __check_init__(self):
        check_positive_values("Periodic", variance=self.variance, lengthscale=self.lengthscale, period=self.period)

    def matrix(self, x1, x2):
        s = jnp.sin(jnp.pi * (x1[:, None, :] - x2[None, :, :]) / self.period)
        return self.variance * jnp.exp(-2.0 * jnp.sum(s**2, -1) / self.lengthscale**2)

    def diagonal(self, x):
        return jnp.full(x.shape[0], self.variance, dtype=jnp.result_type(x, self.variance))
