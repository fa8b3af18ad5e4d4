"""Variational objectives as short programs over ``model`` and ``guide`` handles (`runtime`).

Each returns the scalar to maximise; a new objective is a function of the same shape and needs no
engine change. With ``w_k = log p(x, z_k) − log q(z_k)``, z_k ~ q:

* ``elbo``:           E[w]                                        ≤ log p(x)
* ``iwelbo(K)``:      E[log (1/K) Σ_k e^{w_k}]                    (Burda et al. 2016), ↑ in K to log p(x)
* ``forward_kl(K)``:  Σ_k w̄_k log q(z_k), w̄ = softmax(sg(w)), z detached: its gradient is the
                      self-normalised estimate of −∇ KL(p(z | x) ‖ q) (the inclusive KL)
* ``rws(K)``:         reweighted wake-sleep (Bornschein & Bengio 2015): wake-q as in ``forward_kl``
                      plus wake-p Σ_k w̄_k log p(x, z_k) for the model's own parameters
* ``average(objective, K)``: the mean of K independent runs of any objective
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import logsumexp

from ...core.errors import ConfigError


def _check_k(K, name):
    if isinstance(K, bool) or not isinstance(K, int) or K < 1:
        raise ConfigError(f"{name}: the number of samples `K` must be an int >= 1, got {K!r}")


def elbo(model, guide):
    """The evidence lower bound E_q[log p(x, z) − log q(z)]."""
    q = guide.sample()
    return model.log_density(q) - q.log_prob


def iwelbo(K: int):
    """The importance-weighted bound with K samples."""
    _check_k(K, "iwelbo")

    def objective(model, guide):
        q = guide.sample(K)
        return logsumexp(model.log_density(q) - q.log_prob) - jnp.log(K)

    objective.__name__ = f"iwelbo({K})"
    return objective


def forward_kl(K: int):
    """Inclusive KL(p(z | x) ‖ q) by self-normalised importance sampling from q (the wake-q update)."""
    _check_k(K, "forward_kl")

    def objective(model, guide):
        q = guide.sample(K, detach=True)
        w = jax.nn.softmax(lax.stop_gradient(model.log_density(q) - q.log_prob))
        return jnp.sum(w * q.log_prob)

    objective.__name__ = f"forward_kl({K})"
    return objective


def rws(K: int):
    """Reweighted wake-sleep: wake-q (inclusive KL for the guide) + wake-p (Σ w̄ log p for the model's params)."""
    _check_k(K, "rws")

    def objective(model, guide):
        q = guide.sample(K, detach=True)
        log_p = model.log_density(q)
        w = jax.nn.softmax(lax.stop_gradient(log_p - q.log_prob))
        return jnp.sum(w * (q.log_prob + log_p))

    objective.__name__ = f"rws({K})"
    return objective


def average(objective, K: int):
    """The mean of K independent runs of `objective` (an unbiased estimate of the same expectation,
    with K times less variance): ``average(elbo, 8)`` is the ELBO with 8 particles per step."""
    _check_k(K, "average")

    def averaged(model, guide):
        return sum(objective(model, guide) for _ in range(K)) / K

    averaged.__name__ = f"average({getattr(objective, '__name__', 'objective')}, {K})"
    return averaged


BY_NAME = {"elbo": elbo}


def as_objective(value):
    if callable(value):
        return value
    if isinstance(value, str) and value in BY_NAME:
        return BY_NAME[value]
    raise ConfigError(f"`objective` must be a program (model, guide) -> scalar, or 'elbo'; "
                      f"use bk.vi.iwelbo(K), bk.vi.rws(K), ... for the others, got {value!r}")
