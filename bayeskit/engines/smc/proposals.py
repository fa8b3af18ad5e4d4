"""Proposals for guided particle filters: fixed functions (`Proposal`) or a parametric family whose
parameters φ are a pytree (`ParametricProposal`), which `Learn(proposal=True)` fits by Markov
score climbing (Naesseth, Lindsten & Blei 2020): ascend E_p[∇φ log r_φ(x_{0:T−1} | y)] under the
smoothing law, i.e. minimise the inclusive KL(p(x | y) ‖ r_φ(x | y)), where

    r_φ(x_{0:T−1} | y) = r_φ,0(x_0 | y_0) Π_t r_φ(x_{t+1} | x_t, y_{t+1}).

Its score is an additive functional, so PaRIS (inside conditional SMC for particle Gibbs) estimates
it like any other (Cardoso et al. 2023).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ...core.errors import ConfigError
from ...core.module import Module, field
from ...core.seeds import as_key


class Proposal(Module):
    """A guided filter's proposal r_t(x_t, ·) for x_{t+1}, which may look at y_{t+1}, as functions.

    ``sample(key, x, y_next, t)`` draws one x_{t+1} per row of x; ``log_prob(x, x_next, y_next, t)``
    is its log density. Optional ``initial_sample(key, y0, n)`` and ``initial_log_prob(x, y0)``
    replace μ at t = 0. It has no learnable parameters: see `ParametricProposal`.
    """

    # static fields: a pytree without leaves, so a Proposal passes through `jax.jit` as an argument
    sample: Callable = field(static=True)
    log_prob: Callable = field(static=True)
    initial_sample: Callable | None = field(static=True, default=None)
    initial_log_prob: Callable | None = field(static=True, default=None)


class ParametricProposal(Module):
    """Base class of proposals whose parameters are the leaves of a pytree: a `core.module.Module`
    whose array fields are φ (functions and settings as ``field(static=True)``). Subclasses define
    ``sample`` and ``log_prob`` with the signatures of `Proposal`, and optionally ``initial_sample`` /
    ``initial_log_prob``."""

    initial_sample = None
    initial_log_prob = None

    def sample(self, key, x, y_next, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def log_prob(self, x, x_next, y_next, t):  # pragma: no cover - abstract
        raise NotImplementedError


def _normal_log_prob(z, loc, log_scale):
    return jnp.sum(-0.5 * ((z - loc) * jnp.exp(-log_scale)) ** 2 - log_scale - 0.5 * jnp.log(2 * jnp.pi), -1)


class GaussianProposal(ParametricProposal):
    """r_φ(x_{t+1} | x_t, y_{t+1}) = N(A x_t + B f(y_{t+1}) + c, diag(exp(2 s))) and
    r_φ,0(x_0 | y_0) = N(c0, diag(exp(2 s0))), with φ = (A, B, c, s, c0, s0) unconstrained.

    ``features`` f maps observations (..., p) to (..., k) (default: y itself). For a linear-Gaussian
    model the locally optimal proposal p(x_{t+1} | x_t, y_{t+1}) lies in this family with f(y) = y;
    where y informs x through its size (stochastic volatility) use e.g. f(y) = log(y² + ε).
    Start from `GaussianProposal.from_prior` and refine with ``Learn(proposal=True)``.
    """

    A: jnp.ndarray
    B: jnp.ndarray
    c: jnp.ndarray
    log_scale: jnp.ndarray
    c0: jnp.ndarray
    log_scale0: jnp.ndarray
    features: Callable | None = field(static=True, default=None)

    def _loc(self, x, y_next):
        f = y_next if self.features is None else self.features(y_next)
        return x @ self.A.T + f @ self.B.T + self.c

    def sample(self, key, x, y_next, t):
        loc = self._loc(x, y_next)
        return loc + jnp.exp(self.log_scale) * jax.random.normal(key, loc.shape, loc.dtype)

    def log_prob(self, x, x_next, y_next, t):
        return _normal_log_prob(x_next, self._loc(x, y_next), self.log_scale)

    def initial_sample(self, key, y0, n):
        d = self.c0.shape[0]
        return self.c0 + jnp.exp(self.log_scale0) * jax.random.normal(key, (n, d), self.c0.dtype)

    def initial_log_prob(self, x, y0):
        return _normal_log_prob(x, self.c0, self.log_scale0)

    def check(self, model):
        d, p = int(model.state_dim), int(model.obs_dim)
        k = p if self.features is None else jax.eval_shape(self.features, jnp.zeros((1, p))).shape[-1]
        shapes = {"A": (d, d), "B": (d, k), "c": (d,), "log_scale": (d,), "c0": (d,), "log_scale0": (d,)}
        for name, shape in shapes.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise ConfigError(f"GaussianProposal: `{name}` must have shape {shape} for {type(model).__name__} "
                                  f"(d = {d} states, {k} observation features), got {got}")

    @classmethod
    def from_paths(cls, xs, ys, features=None):
        """Least-squares fit to state paths xs (R, T, d) with observations ys (R, T, p): regress
        x_{t+1} on (x_t, f(y_{t+1}), 1) pooled over t and paths; x_0's mean and spread directly."""
        xs, ys = np.asarray(xs, float), np.asarray(ys, float)
        if xs.ndim != 3 or ys.ndim != 3 or xs.shape[:2] != ys.shape[:2] or xs.shape[1] < 2:
            raise ConfigError(f"`xs` (R, T, d) and `ys` (R, T, p) must share R and T >= 2, got {xs.shape}, {ys.shape}")
        if features is not None:
            ys = np.asarray(features(jnp.asarray(ys)), float)
        d, p = xs.shape[-1], ys.shape[-1]
        Z = np.concatenate([xs[:, :-1], ys[:, 1:], np.ones(xs[:, 1:, :1].shape)], -1).reshape(-1, d + p + 1)
        target = xs[:, 1:].reshape(-1, d)
        coef, *_ = np.linalg.lstsq(Z, target, rcond=None)  # (d + p + 1, d)
        resid = target - Z @ coef
        x0 = xs[:, 0]
        sd0 = x0.std(0) if x0.shape[0] > 1 else np.ones(d)
        return cls(jnp.asarray(coef[:d].T), jnp.asarray(coef[d:d + p].T), jnp.asarray(coef[-1]),
                   jnp.asarray(np.log(resid.std(0) + 1e-12)), jnp.asarray(x0.mean(0)), jnp.asarray(np.log(sd0 + 1e-12)),
                   features)

    @classmethod
    def from_prior(cls, model, key, T: int = 100, runs: int = 100, features=None):
        """The fit (`from_paths`) to ``runs`` paths of length ``T`` simulated from the model: an
        amortised guess of p(x_{t+1} | x_t, y_{t+1}) under the prior, before any data."""
        keys = jax.random.split(as_key(key, name="key"), runs)
        xs, ys = jax.vmap(lambda k: model.simulate(k, T))(keys)
        return cls.from_paths(xs, ys, features)
