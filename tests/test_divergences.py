"""Closed-form KLs of the sparse variational t-process against Monte Carlo (4 standard errors)."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from bayeskit.models.processes.divergences import expected_gaussian_kl, kl_inverse_gamma, t_process_kl

rng = np.random.default_rng(0)
M = 4
K = np.cov(rng.normal(size=(M, 20))) + 0.1 * np.eye(M)
S = np.cov(rng.normal(size=(M, 12))) * 0.3 + 0.05 * np.eye(M)
m = rng.normal(size=M)
LK, LS = np.linalg.cholesky(K), np.linalg.cholesky(S)


def test_inverse_gamma_kl():
    a_q, b_q, a_p, b_p = 5.0, 3.0, 2.0, 2.5
    q, p = stats.invgamma(a_q, scale=b_q), stats.invgamma(a_p, scale=b_p)
    s = q.rvs(size=400_000, random_state=1)
    terms = q.logpdf(s) - p.logpdf(s)
    assert abs(float(kl_inverse_gamma(a_q, b_q, a_p, b_p)) - terms.mean()) < 4 * terms.std() / np.sqrt(s.size)
    assert abs(float(kl_inverse_gamma(a_q, b_q, a_q, b_q))) < 1e-12  # KL of a distribution to itself


def test_gaussian_kl_is_the_exact_kl_when_the_scale_is_fixed():
    # σ² ≡ 1: the standard closed form of KL(N(m, S) ‖ N(0, K))
    exact = 0.5 * (np.trace(np.linalg.solve(K, S)) + m @ np.linalg.solve(K, m) - M
                   + np.linalg.slogdet(K)[1] - np.linalg.slogdet(S)[1])
    ours = float(expected_gaussian_kl(jnp.asarray(m), jnp.asarray(LS), jnp.asarray(LK)))
    assert abs(ours - exact) < 1e-10


def test_joint_t_process_kl_against_monte_carlo():
    """KL(q(u, σ²) ‖ p(u, σ²)) = E_q[log q(u, σ²) − log p(u, σ²)] by 200,000 joint draws."""
    a_q, b_q, a_p, b_p = 6.0, 4.0, 2.0, 2.0
    n = 200_000
    s2 = stats.invgamma(a_q, scale=b_q).rvs(size=n, random_state=2)
    z = rng.normal(size=(n, M))
    u = m + np.sqrt(s2)[:, None] * z @ LS.T
    logq = stats.invgamma(a_q, scale=b_q).logpdf(s2) + jax.vmap(
        lambda uu, ss: jax.scipy.stats.multivariate_normal.logpdf(uu, m, ss * S))(u, s2)
    logp = stats.invgamma(a_p, scale=b_p).logpdf(s2) + jax.vmap(
        lambda uu, ss: jax.scipy.stats.multivariate_normal.logpdf(uu, np.zeros(M), ss * K))(u, s2)
    terms = np.asarray(logq) - np.asarray(logp)
    value = float(t_process_kl(jnp.asarray(m), jnp.asarray(LS), jnp.asarray(LK), a_q, b_q, a_p, b_p))
    assert abs(value - terms.mean()) < 4 * terms.std() / np.sqrt(n)
