"""Priors on the scale σ² of a scale-mixture process (Lee et al., ICLR 2022).

Given σ², f ~ GP(0, σ² K) and y | f ~ N(f, σ² ε I). A prior on σ² mixes these Gaussians:
none gives the GP, an inverse gamma gives the Student-t process in closed form, and any
other positive prior is integrated over σ² by quadrature (`quadrature.py`): a 1-D integral,
so exact to quadrature tolerance rather than the paper's 1000-draw importance sampling.

Each prior is a `core.module.Module` pytree (its parameters are differentiable leaves) with ``log_prob(s2)``, the
log density of σ² itself (for priors stated on σ, the change of variables is included), and
``sample(key, shape)`` (draws of σ², what simulating datasets from the process needs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from ...core.checks import check_positive_values
from ...core.module import Module, field


class ScalePrior(Module):
    """Base class: ``log_prob(s2)`` is the log density of σ² > 0."""

    closed_form = False

    def log_prob(self, s2):  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, key, shape=()):
        """Draws of σ² (a JAX array of `shape`)."""
        raise NotImplementedError(f"{type(self).__name__} has no sampler: only its density is known")


class Fixed(ScalePrior):
    """σ² fixed at `value` (a point mass): the process is the Gaussian process GP(0, value · K)."""

    value: float = 1.0

    def __check_init__(self):
        check_positive_values("Fixed", value=self.value)

    def sample(self, key, shape=()):
        return jnp.full(shape, self.value, dtype=jnp.result_type(float))


class InverseGamma(ScalePrior):
    """σ² ~ IG(a, b), density b^a/Γ(a) s^{-a-1} e^{-b/s}: the Student-t process (2a dof)."""

    a: float = 2.0
    b: float = 2.0
    closed_form = True

    def __check_init__(self):
        check_positive_values("InverseGamma", a=self.a, b=self.b)

    def log_prob(self, s2):
        return self.a * jnp.log(self.b) - gammaln(self.a) - (self.a + 1) * jnp.log(s2) - self.b / s2

    def sample(self, key, shape=()):
        return self.b / jax.random.gamma(key, self.a, shape)


class Gamma(ScalePrior):
    """σ² ~ Gamma(shape, rate)."""

    shape: float = 2.0
    rate: float = 2.0

    def __check_init__(self):
        check_positive_values("Gamma", shape=self.shape, rate=self.rate)

    def log_prob(self, s2):
        return self.shape * jnp.log(self.rate) - gammaln(self.shape) + (self.shape - 1) * jnp.log(s2) - self.rate * s2

    def sample(self, key, shape=()):
        return jax.random.gamma(key, self.shape, shape) / self.rate


class LogNormal(ScalePrior):
    """log σ² ~ N(loc, scale²)."""

    loc: float = field(default=0.0, domain="real")
    scale: float = 1.0

    def __check_init__(self):
        check_positive_values("LogNormal", scale=self.scale)

    def log_prob(self, s2):
        z = (jnp.log(s2) - self.loc) / self.scale
        return -0.5 * z**2 - jnp.log(self.scale * s2) - 0.5 * jnp.log(2 * jnp.pi)

    def sample(self, key, shape=()):
        return jnp.exp(self.loc + self.scale * jax.random.normal(key, shape))


class BurrXII(ScalePrior):
    """σ² ~ Burr type XII(c, d, scale): density (c d/λ)(s/λ)^{c-1} (1 + (s/λ)^c)^{-d-1} (the paper's choice)."""

    c: float = 2.0
    d: float = 1.0
    scale: float = 1.0

    def __check_init__(self):
        check_positive_values("BurrXII", c=self.c, d=self.d, scale=self.scale)

    def log_prob(self, s2):
        z = s2 / self.scale
        return (jnp.log(self.c * self.d / self.scale) + (self.c - 1) * jnp.log(z)
                - (self.d + 1) * jnp.log1p(z**self.c))

    def sample(self, key, shape=()):
        # inverse cdf: F(s) = 1 − (1 + (s/λ)^c)^(−d)
        u = jax.random.uniform(key, shape)
        return self.scale * jnp.expm1(-jnp.log1p(-u) / self.d) ** (1 / self.c)


class HalfCauchy(ScalePrior):
    """σ ~ half-Cauchy(0, scale) on the standard deviation; as a density of σ² = s:
    p(s) = p_σ(√s) / (2√s) = 1 / (π · scale · √s · (1 + s/scale²))."""

    scale: float = 1.0

    def __check_init__(self):
        check_positive_values("HalfCauchy", scale=self.scale)

    def log_prob(self, s2):
        return -jnp.log(jnp.pi * self.scale) - 0.5 * jnp.log(s2) - jnp.log1p(s2 / self.scale**2)

    def sample(self, key, shape=()):
        return (self.scale * jax.random.cauchy(key, shape)) ** 2


class Custom(ScalePrior):
    """Any prior given by ``fn(s2) -> log density of σ²`` (a JAX function; normalised or not,
    the marginal likelihood is then up to that constant)."""

    fn: object = field(static=True, default=None)

    def log_prob(self, s2):
        return self.fn(s2)
