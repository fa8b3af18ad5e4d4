"""Variational objectives as short programs over ``model`` and ``guide`` handles (`runtime`).

Each returns the scalar to maximise; a new objective is a function of the same shape and needs no
engine change. With ``w_k = log p(x, z_k) − log q(z_k)``, z_k ~ q:

* ``elbo``:           E[w]                                        ≤ log p(x)
* ``iwelbo(K)``:      E[log (1/K) Σ_k e^{w_k}]                    (Burda et al. 2016), ↑ in K to log p(x)
* ``forward_kl(K)``:  Σ_k w̄_k log q(z_k), w̄ = softmax(sg(w)), z detached: its gradient is the
                      self-normalised estimate of −∇ KL(p(z | x) ‖ q) (the inclusive KL)
* ``rws(K)``:         reweighted wake-sleep (Bornschein & Bengio 2015): wake-q as in ``forward_kl``
                      plus wake-p Σ_k w̄_k log p(x, z_k) for the model's own parameters
* ``hvi``, ``iwhvi(m)``, ``diwhvi(n, m)``: for hierarchical families q(z) = ∫ q(z | ψ) q(ψ) dψ
                      (`Hierarchical`), log q(z) replaced by an m-sample upper estimate, so they stay
                      lower bounds (Ranganath et al. 2016; Sobolev & Vetrov 2019)
* ``average(objective, K)``: the mean of K independent runs of any objective
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import logsumexp

from ...core.checks import check_int
from ...core.errors import ConfigError


def _check_k(K, name, arg="K"):
    check_int(arg, K, why=f"the number of samples of {name}")


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


def _log_q_marginal(guide, q, m: int, batch_shape=()):
    """An upper bound's estimate of log q(z) for a hierarchical family (Sobolev & Vetrov 2019):
    log (1/(m+1)) Σ_{k=0}^m q(z, ψ_k) / τ(ψ_k | z), ψ_0 the ψ that produced z, ψ_{1..m} ~ τ(· | z)
    (τ the reverse model, or q(ψ) without one). Its expectation is ≥ log q(z), so subtracting it keeps
    a lower bound on log p(x), which tightens as m grows."""
    aux = q.auxiliary
    if not aux:
        raise ConfigError("hierarchical objectives need a guide with auxiliary sites "
                          "(numpyro.sample(..., infer={'is_auxiliary': True}))")
    has_reverse = guide._ctx.reverse_fn is not None
    names = tuple(aux)

    def log_tau(psi, z, shape):
        if has_reverse:
            return guide.reverse.log_prob(psi, given=z, batch_shape=shape)
        return guide.log_prob({**z, **psi}, batch_shape=shape, only=names)

    log_w0 = q.log_prob - log_tau(aux, q.values, batch_shape)
    if m == 0:
        return log_w0
    shape = (*batch_shape, m)
    z = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(jnp.expand_dims(v, len(batch_shape)),
                                                          (*shape, *v.shape[len(batch_shape):])), q.values)
    if has_reverse:
        psi = guide.reverse.sample(m, given=q.values, batch_shape=batch_shape).sites
    else:  # ψ ~ q(ψ): the auxiliary sites of fresh guide draws
        psi = {k: v for k, v in guide.sample(math.prod(shape)).sites.items() if k in names}
        psi = jax.tree_util.tree_map(lambda v: v.reshape(*shape, *v.shape[1:]), psi)
    log_w = guide.log_prob({**z, **psi}, batch_shape=shape) - log_tau(psi, z, shape)
    all_w = jnp.concatenate([log_w0[..., None], log_w], axis=-1)
    return logsumexp(all_w, axis=-1) - jnp.log(m + 1)


def iwhvi(m: int):
    """Importance-weighted hierarchical VI (Sobolev & Vetrov 2019): E[log p(x, z) − log q̂_m(z)] with
    the m-sample upper estimate of log q(z); m = 0 is hierarchical VI (Ranganath et al. 2016)."""
    check_int("m", m, 0, why="the inner samples of iwhvi")

    def objective(model, guide):
        q = guide.sample()
        return model.log_density(q) - _log_q_marginal(guide, q, m)

    objective.__name__ = f"iwhvi({m})"
    return objective


def hvi(model, guide):
    """Hierarchical VI: E[log p(x, z) + log τ(ψ | z) − log q(z, ψ)] (Ranganath et al. 2016)."""
    return iwhvi(0)(model, guide)


def diwhvi(n: int, m: int):
    """Doubly importance-weighted HVI: log (1/n) Σ_i p(x, z_i) / q̂_m(z_i), z_i ~ q (n outer samples,
    m inner ones per sample)."""
    _check_k(n, "diwhvi", "n")
    check_int("m", m, 0, why="the inner samples of diwhvi")

    def objective(model, guide):
        q = guide.sample(n)
        return logsumexp(model.log_density(q) - _log_q_marginal(guide, q, m, (n,))) - jnp.log(n)

    objective.__name__ = f"diwhvi({n}, {m})"
    return objective


def average(objective, K: int):
    """The mean of K independent runs of `objective` (an unbiased estimate of the same expectation,
    with K times less variance): ``average(elbo, 8)`` is the ELBO with 8 particles per step. The K
    runs are one vectorised program, so compile time and memory do not grow with K's unrolling."""
    from .runtime import average_runs

    _check_k(K, "average")

    def averaged(model, guide):
        if K == 1:
            return objective(model, guide)
        return average_runs(objective, K, model, guide)

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
