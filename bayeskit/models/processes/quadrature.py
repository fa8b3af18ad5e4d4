"""The integral over σ² that turns Gaussian quantities into scale-mixture ones.

Given σ² = s the data are Gaussian with covariance s·A, so with q = yᵀA⁻¹y and
logdet = log|A| the log likelihood is

    ℓ(s) = -n/2 log(2π s) - logdet/2 - q/(2s).

The marginal likelihood is ∫ exp(ℓ(s)) p(s) ds. For an inverse gamma it is closed form;
otherwise the integral runs in t = log s (where the integrand is smooth and unimodal for
any reasonable prior): locate the mode by Newton steps from the best point of a coarse grid,
bracket everything within e^-40 of the peak, and apply 32 x 16-point composite Gauss–Legendre.
Only scalars enter, so the cost is independent of n once A is factorised.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp

from .scale_priors import Fixed, InverseGamma

COARSE = np.linspace(-60.0, 60.0, 2401)  # t = log σ², step 0.05
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)
PANELS = 32
DROP = 40.0  # the bracket keeps all t where the log integrand is within DROP of its peak


def gaussian_loglik(s2, n, q, logdet):
    """ℓ(σ²): log N(y | 0, σ² A) from n, q = yᵀA⁻¹y and log|A|."""
    return -0.5 * n * jnp.log(2 * jnp.pi * s2) - 0.5 * logdet - 0.5 * q / s2


def inverse_gamma_posterior(prior: InverseGamma, n, q):
    """σ² | y ~ IG(a + n/2, b + q/2)."""
    return prior.a + 0.5 * n, prior.b + 0.5 * q


def log_marginal(prior, n, q, logdet):
    """log p(y) = log ∫ N(y | 0, s A) p(s) ds for the given scale prior."""
    if isinstance(prior, Fixed):
        return gaussian_loglik(prior.value, n, q, logdet)
    if isinstance(prior, InverseGamma):
        a, b = prior.a, prior.b
        a_post, b_post = inverse_gamma_posterior(prior, n, q)
        return (gammaln(a_post) - gammaln(a) + a * jnp.log(b) - a_post * jnp.log(b_post)
                - 0.5 * n * jnp.log(2 * jnp.pi) - 0.5 * logdet)
    t, log_w = sigma2_nodes(prior, n, q, logdet)
    return logsumexp(log_w)


def sigma2_nodes(prior, n, q, logdet):
    """Quadrature nodes t_k = log σ²_k and log weights log(w_k · integrand(t_k)).

    ``logsumexp(log_w)`` is the log marginal likelihood; ``softmax(log_w)`` are the posterior
    probabilities of the nodes, used for the predictive mixture.
    """

    def log_integrand(t):
        s = jnp.exp(t)
        return gaussian_loglik(s, n, q, logdet) + prior.log_prob(s) + t

    # The bracket is a choice of where to integrate, not part of the value: no gradient through it.
    coarse = jnp.asarray(COARSE)
    g = jnp.where(jnp.isfinite(v := jax.vmap(log_integrand)(coarse)), v, -jnp.inf)
    t0 = jax.lax.stop_gradient(coarse[jnp.argmax(g)])
    dg, d2g = jax.grad(log_integrand), jax.grad(jax.grad(log_integrand))

    def newton(t, _):
        step = dg(t) / jnp.minimum(d2g(t), -1e-8)
        return jax.lax.stop_gradient(t - jnp.clip(step, -1.0, 1.0)), None

    t_star, _ = jax.lax.scan(newton, t0, None, length=8)
    peak = jnp.maximum(log_integrand(t_star), jnp.max(g))
    width = 12.0 / jnp.sqrt(jnp.maximum(-d2g(t_star), 1e-8))
    inside = g > peak - DROP
    lo = jnp.minimum(jnp.min(jnp.where(inside, coarse, jnp.inf)) - 0.05, t_star - width)
    hi = jnp.maximum(jnp.max(jnp.where(inside, coarse, -jnp.inf)) + 0.05, t_star + width)
    lo, hi = jax.lax.stop_gradient(lo), jax.lax.stop_gradient(hi)
    edges = jnp.linspace(lo, hi, PANELS + 1)
    half = 0.5 * (edges[1:] - edges[:-1])
    mid = 0.5 * (edges[1:] + edges[:-1])
    t = (mid[:, None] + half[:, None] * jnp.asarray(_GL_NODES)[None, :]).ravel()
    w = (half[:, None] * jnp.asarray(_GL_WEIGHTS)[None, :]).ravel()
    return t, jax.vmap(log_integrand)(t) + jnp.log(w)
