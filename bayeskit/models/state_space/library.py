"""A library of state-space models: linear-Gaussian (any dimensions), stochastic volatility and
the nonlinear growth model, each with its transition-density bound for accept-reject smoothing."""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from ...core.checks import check_positive_values, check_real
from ...core.errors import ConfigError, ModelError
from .base import StateSpaceModel


def _concrete(*values) -> bool:
    return not any(isinstance(v, jax.core.Tracer) for v in values)


def _model_check(owner: str, check, *args, **kwargs) -> None:
    """Run a `core.checks` check of a parameter of model `owner`, raising ModelError (what `validate` raises)."""
    try:
        check(*args, **kwargs)
    except ConfigError as err:
        message = str(err)
        raise ModelError(message if message.startswith(f"{owner}:") else f"{owner}: {message}") from None


def _gaussian_log_prob(residual, cov):
    """log N(residual | 0, cov) over the last axis."""
    L = jnp.linalg.cholesky(cov)
    z = jax.scipy.linalg.solve_triangular(L, jnp.moveaxis(residual, -1, 0).reshape(L.shape[0], -1), lower=True)
    quad = jnp.sum(z**2, 0).reshape(residual.shape[:-1])
    return -0.5 * quad - jnp.sum(jnp.log(jnp.diagonal(L))) - 0.5 * L.shape[0] * jnp.log(2 * jnp.pi)


class LinearGaussian(StateSpaceModel):
    """x_0 ~ N(m0, P0),  x_{t+1} = A x_t + N(0, Q),  y_t = C x_t + N(0, R)  (d states, p observations)."""

    A: jnp.ndarray
    C: jnp.ndarray
    Q: jnp.ndarray
    R: jnp.ndarray
    m0: jnp.ndarray
    P0: jnp.ndarray

    name: ClassVar[str] = "LinearGaussian"
    # learnable as written for scalar models; a d x d covariance would need a Cholesky parameterisation
    constraints: ClassVar[dict] = {"Q": "positive", "R": "positive", "P0": "positive"}

    def validate(self):
        if not _concrete(self.A, self.C, self.Q, self.R, self.m0, self.P0):
            return
        A, C, Q, R, m0, P0 = (np.atleast_1d(np.asarray(v, dtype=float)) for v in
                              (self.A, self.C, self.Q, self.R, self.m0, self.P0))
        d, p = m0.shape[0], (C.shape[0] if C.ndim == 2 else 1)
        expected = {"A": (d, d), "C": (p, d), "Q": (d, d), "R": (p, p), "m0": (d,), "P0": (d, d)}
        for name, value in zip(expected, (A, C, Q, R, m0, P0), strict=True):
            if value.shape != expected[name]:
                raise ModelError(f"LinearGaussian: `{name}` must have shape {expected[name]} "
                                 f"(d = {d} states, p = {p} observations), got {value.shape}")
        for name, value in (("Q", Q), ("R", R), ("P0", P0)):
            if not np.allclose(value, value.T) or np.min(np.linalg.eigvalsh(value)) <= 0:
                raise ModelError(f"LinearGaussian: `{name}` must be symmetric positive definite")

    @property
    def state_dim(self):
        return jnp.shape(self.m0)[0]

    @property
    def obs_dim(self):
        return jnp.shape(self.R)[0]

    def initial(self):
        return dist.MultivariateNormal(self.m0, self.P0)

    def transition(self, x, t):
        return dist.MultivariateNormal(x @ self.A.T, self.Q)

    def observation(self, x, t):
        return dist.MultivariateNormal(x @ self.C.T, self.R)

    def transition_log_bound(self, t):
        return -0.5 * jnp.linalg.slogdet(2 * jnp.pi * self.Q)[1]

    # closed forms: the smoothers evaluate q_t on N x N pairs, where a batched MultivariateNormal
    # would refactor Q for every pair
    def transition_log_prob(self, x, x_next, t):
        return _gaussian_log_prob(x_next - x @ self.A.T, self.Q)

    def observation_log_prob(self, x, y, t):
        return _gaussian_log_prob(y - x @ self.C.T, self.R)

    @classmethod
    def scalar(cls, a=0.9, c=1.0, q=1.0, r=1.0, m0=0.0, p0=1.0):
        """The 1-D model x_{t+1} = a x_t + N(0, q), y_t = c x_t + N(0, r)."""
        f = lambda v: jnp.asarray(v, dtype=float).reshape(1, 1)  # noqa: E731
        return cls(f(a), f(c), f(q), f(r), jnp.asarray([m0], dtype=float), f(p0))


class StochasticVolatility(StateSpaceModel):
    """x_0 ~ N(μ, σ²/(1 − ρ²)),  x_{t+1} = μ + ρ(x_t − μ) + σ ε,  y_t ~ N(0, exp(x_t)).

    The model of `particles`' ``StochVol`` (Chopin & Papaspiliopoulos 2020), |ρ| < 1.
    """

    mu: float = -1.0
    rho: float = 0.95
    sigma: float = 0.3

    name: ClassVar[str] = "StochasticVolatility"
    constraints: ClassVar[dict] = {"sigma": "positive", "rho": "symmetric_unit"}

    def validate(self):
        if _concrete(self.rho, self.sigma):
            _model_check("StochasticVolatility", check_positive_values, "StochasticVolatility", sigma=self.sigma)
            rho = float(np.asarray(self.rho)) if np.size(self.rho) == 1 else self.rho
            _model_check("StochasticVolatility", check_real, "rho", rho, -1.0, 1.0, low_open=True, high_open=True)

    def initial(self):
        sd = self.sigma / jnp.sqrt(1 - self.rho**2)
        return dist.Normal(jnp.reshape(self.mu, (1,)), jnp.reshape(sd, (1,))).to_event(1)

    def transition(self, x, t):
        return dist.Normal(self.mu + self.rho * (x - self.mu), self.sigma).to_event(1)

    def observation(self, x, t):
        return dist.Normal(jnp.zeros_like(x), jnp.exp(0.5 * x)).to_event(1)

    def transition_log_bound(self, t):
        return -0.5 * jnp.log(2 * jnp.pi * self.sigma**2)


class NonlinearGrowth(StateSpaceModel):
    """The univariate nonlinear growth model (Kitagawa 1996; Gordon, Salmond & Smith 1993):

        x_{t+1} = x_t/2 + 25 x_t/(1 + x_t²) + 8 cos(1.2 (t + 1)) + N(0, q),   y_t = x_t²/20 + N(0, r),

    x_0 ~ N(0, p0). Bimodal filtering distributions (the sign of x is barely identified).
    """

    q: float = 10.0
    r: float = 1.0
    p0: float = 5.0

    name: ClassVar[str] = "NonlinearGrowth"
    constraints: ClassVar[dict] = {"q": "positive", "r": "positive", "p0": "positive"}

    def validate(self):
        if _concrete(self.q, self.r, self.p0):
            _model_check("NonlinearGrowth", check_positive_values, "NonlinearGrowth", q=self.q, r=self.r, p0=self.p0)

    def initial(self):
        return dist.Normal(jnp.zeros(1), jnp.sqrt(jnp.reshape(self.p0, (1,)))).to_event(1)

    def transition(self, x, t):
        mean = x / 2 + 25 * x / (1 + x**2) + 8 * jnp.cos(1.2 * (t + 1))
        return dist.Normal(mean, jnp.sqrt(self.q)).to_event(1)

    def observation(self, x, t):
        return dist.Normal(x**2 / 20, jnp.sqrt(self.r)).to_event(1)

    def transition_log_bound(self, t):
        return -0.5 * jnp.log(2 * math.pi * self.q)
