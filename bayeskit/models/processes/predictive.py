"""Predictive distributions of scale-mixture processes, per test point.

Every family is a mixture over σ² of N(μ, σ² v): a point mass (Normal), an inverse gamma
(Student-t, closed form) or quadrature nodes (a finite Gaussian mixture, exact to quadrature
tolerance).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import stats
from jax.scipy.special import logsumexp

from ...core.errors import ConfigError
from ...core.seeds import as_key


@dataclasses.dataclass(frozen=True)
class ProcessPredictive:
    """Marginal predictive distribution at m points.

    ``family`` is "normal" (σ² = ``s2``), "student_t" (``df`` dof, squared scale ``s2`` · v)
    or "mixture" (σ² = ``s2[k]`` with probability ``weights[k]``).
    """

    mean: np.ndarray  # (m,)
    v: np.ndarray  # (m,) conditional variance per unit σ²
    family: str
    s2: np.ndarray  # scalar, or (K,) mixture nodes
    weights: np.ndarray | None = None
    df: float | None = None

    @property
    def variance(self) -> np.ndarray:
        if self.family == "normal":
            return self.s2 * self.v
        if self.family == "student_t":
            return np.where(self.df > 2, self.s2 * self.v * self.df / (self.df - 2), np.inf)
        return float(np.sum(self.weights * self.s2)) * self.v

    @property
    def stddev(self) -> np.ndarray:
        return np.sqrt(self.variance)

    def log_prob(self, y) -> np.ndarray:
        """Log predictive density of targets `y` (m,), point by point."""
        y = jnp.asarray(y)
        if y.shape != self.mean.shape:
            raise ConfigError(f"`y` must have shape {self.mean.shape}, got {y.shape}")
        if self.family == "normal":
            return np.asarray(stats.norm.logpdf(y, self.mean, jnp.sqrt(self.s2 * self.v)))
        if self.family == "student_t":
            return np.asarray(stats.t.logpdf(y, self.df, self.mean, jnp.sqrt(self.s2 * self.v)))
        sd = jnp.sqrt(jnp.asarray(self.s2)[:, None] * self.v[None, :])
        comp = stats.norm.logpdf(y[None, :], self.mean[None, :], sd) + jnp.log(jnp.asarray(self.weights))[:, None]
        return np.asarray(logsumexp(comp, axis=0))

    def cdf(self, y) -> np.ndarray:
        y = jnp.asarray(y)
        if self.family == "normal":
            return np.asarray(stats.norm.cdf(y, self.mean, jnp.sqrt(self.s2 * self.v)))
        if self.family == "student_t":
            from scipy.stats import t  # jax.scipy has no Student-t CDF

            return t.cdf(np.asarray(y), self.df, self.mean, np.sqrt(self.s2 * self.v))
        sd = jnp.sqrt(jnp.asarray(self.s2)[:, None] * self.v[None, :])
        return np.asarray(jnp.sum(jnp.asarray(self.weights)[:, None] * stats.norm.cdf(y[None, :], self.mean, sd), 0))

    def interval(self, prob: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed `prob` interval per point (bisection on the CDF for mixtures)."""
        if not 0 < prob < 1:
            raise ConfigError(f"`prob` must be in (0, 1), got {prob!r}")
        lo_q, hi_q = (1 - prob) / 2, (1 + prob) / 2
        if self.family == "normal":
            sd = np.sqrt(self.s2 * self.v)
            from scipy.stats import norm

            return self.mean + norm.ppf(lo_q) * sd, self.mean + norm.ppf(hi_q) * sd
        if self.family == "student_t":
            from scipy.stats import t

            sd = np.sqrt(self.s2 * self.v)
            return self.mean + t.ppf(lo_q, self.df) * sd, self.mean + t.ppf(hi_q, self.df) * sd
        return self._quantile(lo_q), self._quantile(hi_q)

    def _quantile(self, p: float) -> np.ndarray:
        spread = 40 * np.sqrt(np.max(self.s2) * self.v) + 1e-12
        lo, hi = self.mean - spread, self.mean + spread
        for _ in range(80):  # bisection: 80 halvings of 80 sd is far below float64 resolution
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid) < p
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def sample(self, n: int, seed=0) -> np.ndarray:
        """(n, m) draws from the marginals (σ² shared across points within a draw)."""
        key_s, key_z = jax.random.split(as_key(seed))
        s2 = np.asarray(self._sample_s2(key_s, n))
        z = np.asarray(jax.random.normal(key_z, (n, self.mean.shape[0])))
        return self.mean[None, :] + np.sqrt(s2[:, None] * self.v[None, :]) * z

    def _sample_s2(self, key, n):
        if self.family == "normal":
            return jnp.full((n,), self.s2)
        if self.family == "student_t":
            # scale² s2 with df dof <=> σ² ~ IG(df/2, df·s2/2)
            g = jax.random.gamma(key, self.df / 2, (n,))
            return (self.df * self.s2 / 2) / g
        idx = jax.random.choice(key, self.s2.shape[0], (n,), p=jnp.asarray(self.weights))
        return jnp.asarray(self.s2)[idx]


@dataclasses.dataclass(frozen=True)
class ClassPredictive:
    """Predictive class probabilities at m points, ``probs`` (m, C), with the latent functions'
    moments given σ²: f_c(x) ~ N(``latent_mean``, σ² ``latent_v``) (both (m, C))."""

    probs: np.ndarray
    latent_mean: np.ndarray
    latent_v: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        """The most probable class per point."""
        return np.argmax(self.probs, axis=1)

    def entropy(self) -> np.ndarray:
        """Entropy of the predictive distribution per point, in nats (log C at most)."""
        p = np.clip(self.probs, 1e-300, 1.0)
        return -np.sum(self.probs * np.log(p), axis=1)

    def log_prob(self, y) -> np.ndarray:
        """Log predictive probability of labels `y` (m,)."""
        y = np.asarray(y)
        if y.shape != (self.probs.shape[0],):
            raise ConfigError(f"`y` must have shape ({self.probs.shape[0]},), got {y.shape}")
        return np.log(np.clip(self.probs[np.arange(y.shape[0]), y.astype(int)], 1e-300, 1.0))

    def accuracy(self, y) -> float:
        return float(np.mean(self.predicted == np.asarray(y)))
