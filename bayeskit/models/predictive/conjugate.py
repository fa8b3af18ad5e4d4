"""Conjugate exponential-family predictives: the Bayesian posterior predictive as a predictive rule.

For a conjugate model the predictive P_i is the posterior predictive after i observations, and
its parameters are the posterior's. Predictive resampling draws Y_{i+1} ~ P_i and updates them; by
Doob's theorem the limit of the predictive's mean is a draw from the Bayesian posterior of the
mean parameter, so these rules recover the usual posterior exactly (``exact_posterior`` gives it,
for checks) and the finite-horizon law shows how fast the martingale settles.

    rule                  observation model          predictive P_i              mean functional → posterior of
    NormalNormal          N(θ, noise²), θ ~ N(m, s²)  N(mᵢ, noise² + sᵢ²)        θ: N(mₙ, sₙ²)
    NormalInverseGamma    N(μ, σ²), NIG(m, κ, a, b)   Student-t(2aᵢ, mᵢ, …)      μ: Student-t(2aₙ, mₙ, √(bₙ/(aₙκₙ)))
    BetaBernoulli         Bernoulli(p), p ~ Beta      Bernoulli(aᵢ/(aᵢ+bᵢ))      p: Beta(aₙ, bₙ)
    GammaPoisson          Poisson(λ), λ ~ Gamma(a, b) NegBinomial(aᵢ, 1/(bᵢ+1))  λ: Gamma(aₙ, bₙ)
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ...core.checks import check_positive, check_real
from ...core.errors import DataError
from ...core.module import Module, field
from .base import PredictiveRule, float_dtype


class Parameters(Module):
    """The conjugate posterior's parameters after ``count`` observations."""

    values: tuple
    count: object


class Conjugate(PredictiveRule):
    """A conjugate model's posterior predictive. Subclasses give ``prior()``, ``update(params, y)``
    (one observation), ``predictive(params)`` (a NumPyro distribution) and ``exact_posterior``."""

    def prior(self) -> tuple:
        raise NotImplementedError

    def update(self, params: tuple, y) -> tuple:
        raise NotImplementedError

    def predictive(self, params: tuple):
        raise NotImplementedError

    def check_values(self, y: np.ndarray) -> None:
        """Reject values outside the observation model's support."""

    def posterior_parameters(self, data) -> tuple:
        """The posterior's parameters given ``data`` (one update per observation, in float64)."""
        _, y = self.check_data(data)
        if y.ndim != 1:
            raise DataError(f"`y` for {type(self).__name__} must be a 1-D array of scalar observations, got "
                            f"shape {y.shape}")
        self.check_values(y)
        params = tuple(np.float64(p) for p in self.prior())
        for value in y:
            params = tuple(np.float64(p) for p in self.update(params, value))
        return params

    def exact_posterior(self, data):
        """The Bayesian posterior of the parameter the ``mean`` functional converges to."""
        raise NotImplementedError

    def condition(self, data, horizon: int) -> Parameters:
        params = self.posterior_parameters(data)
        _, y = self.check_data(data)
        return Parameters(tuple(jnp.asarray(p, float_dtype()) for p in params), jnp.asarray(y.shape[0], jnp.int32))

    def forward(self, state: Parameters, key) -> Parameters:
        y = self.predictive(state.values).sample(key)
        return Parameters(tuple(self.update(state.values, y)), state.count + 1)

    def distribution(self, state: Parameters):
        return self.predictive(state.values)


class NormalNormal(Conjugate):
    """Y ~ N(θ, noise²) with θ ~ N(loc, scale²): the predictive is N(mᵢ, noise² + sᵢ²)."""

    loc: float = field(default=0.0, domain="real")
    scale: float = 1.0
    noise: float = 1.0

    def __check_init__(self):
        check_real("loc", self.loc)
        check_positive("scale", self.scale)
        check_positive("noise", self.noise)

    def prior(self):
        return (self.loc, self.scale**2)

    def update(self, params, y):
        mean, var = params
        precision = 1.0 / var + 1.0 / self.noise**2
        return ((mean / var + y / self.noise**2) / precision, 1.0 / precision)

    def predictive(self, params):
        import numpyro.distributions as dist

        mean, var = params
        return dist.Normal(mean, jnp.sqrt(self.noise**2 + var))

    def exact_posterior(self, data):
        import numpyro.distributions as dist

        mean, var = self.posterior_parameters(data)
        return dist.Normal(mean, np.sqrt(var))


class NormalInverseGamma(Conjugate):
    """Y ~ N(μ, σ²) with σ² ~ InvGamma(concentration, rate), μ | σ² ~ N(loc, σ²/kappa): the predictive
    is Student-t(2a, m, √(b(κ + 1)/(aκ)))."""

    loc: float = field(default=0.0, domain="real")
    kappa: float = 1.0
    concentration: float = 1.0
    rate: float = 1.0

    def __check_init__(self):
        check_real("loc", self.loc)
        check_positive("kappa", self.kappa)
        check_positive("concentration", self.concentration)
        check_positive("rate", self.rate)

    def prior(self):
        return (self.loc, self.kappa, self.concentration, self.rate)

    def update(self, params, y):
        m, kappa, a, b = params
        return ((kappa * m + y) / (kappa + 1), kappa + 1, a + 0.5, b + kappa * (y - m) ** 2 / (2 * (kappa + 1)))

    def predictive(self, params):
        import numpyro.distributions as dist

        m, kappa, a, b = params
        return dist.StudentT(2 * a, m, jnp.sqrt(b * (kappa + 1) / (a * kappa)))

    def exact_posterior(self, data):
        import numpyro.distributions as dist

        m, kappa, a, b = self.posterior_parameters(data)
        return dist.StudentT(2 * a, m, np.sqrt(b / (a * kappa)))


class BetaBernoulli(Conjugate):
    """Y ~ Bernoulli(p) with p ~ Beta(a, b): the predictive is Bernoulli(aᵢ / (aᵢ + bᵢ))."""

    a: float = 1.0
    b: float = 1.0

    def __check_init__(self):
        check_positive("a", self.a)
        check_positive("b", self.b)

    def check_values(self, y):
        if not np.all((y == 0) | (y == 1)):
            raise DataError("`y` for BetaBernoulli must hold only 0 and 1")

    def prior(self):
        return (self.a, self.b)

    def update(self, params, y):
        a, b = params
        return (a + y, b + 1 - y)

    def predictive(self, params):
        import numpyro.distributions as dist

        a, b = params
        return dist.Bernoulli(probs=a / (a + b))

    def exact_posterior(self, data):
        import numpyro.distributions as dist

        return dist.Beta(*self.posterior_parameters(data))


class GammaPoisson(Conjugate):
    """Y ~ Poisson(λ) with λ ~ Gamma(a, b) (rate b): the predictive is NegativeBinomial(aᵢ, 1 / (bᵢ + 1))."""

    a: float = 1.0
    b: float = 1.0

    def __check_init__(self):
        check_positive("a", self.a)
        check_positive("b", self.b)

    def check_values(self, y):
        if not np.all((y >= 0) & (y == np.round(y))):
            raise DataError("`y` for GammaPoisson must hold only non-negative integers (counts)")

    def prior(self):
        return (self.a, self.b)

    def update(self, params, y):
        a, b = params
        return (a + y, b + 1)

    def predictive(self, params):
        import numpyro.distributions as dist

        a, b = params
        return dist.NegativeBinomialProbs(a, 1.0 / (b + 1.0))

    def exact_posterior(self, data):
        import numpyro.distributions as dist

        a, b = self.posterior_parameters(data)
        return dist.Gamma(a, b)
