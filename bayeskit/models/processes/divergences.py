"""KL divergences of the sparse variational Student-t process (Lee et al. 2022, classification).

Variational family q(u, σ²) = q(σ²) q(u | σ²) with q(σ²) = IG(a', b'), q(u | σ²) = N(m, σ² S);
prior p(σ²) = IG(a, b), p(u | σ²) = N(0, σ² K). The shared σ² makes the KL closed form:

    KL(q ‖ p) = KL(IG(a', b') ‖ IG(a, b)) + E_q(σ²)[ KL(N(m, σ²S) ‖ N(0, σ²K)) ],
    E_q(σ²)[ KL(N(m, σ²S) ‖ N(0, σ²K)) ] = ½ [tr(K⁻¹S) + (a'/b') mᵀK⁻¹m − M + log|K| − log|S|],

since σ² cancels everywhere but in the mean term, where E_q[1/σ²] = a'/b'.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln


def kl_inverse_gamma(a_q, b_q, a_p, b_p):
    """KL(IG(a_q, b_q) ‖ IG(a_p, b_p))."""
    return ((a_q - a_p) * digamma(a_q) - gammaln(a_q) + gammaln(a_p) + a_p * (jnp.log(b_q) - jnp.log(b_p))
            + a_q * (b_p - b_q) / b_q)


def expected_gaussian_kl(m, S_chol, K_chol, inv_scale_mean=1.0):
    """E[KL(N(m, σ² S) ‖ N(0, σ² K))] with E[1/σ²] = `inv_scale_mean` (1 for the Gaussian process).

    ``S_chol`` and ``K_chol`` are lower Cholesky factors (M, M); ``m`` is (M,).
    """
    M = m.shape[-1]
    K_inv_S_chol = jax.scipy.linalg.solve_triangular(K_chol, S_chol, lower=True)  # L_K⁻¹ L_S
    trace = jnp.sum(K_inv_S_chol**2)
    white_m = jax.scipy.linalg.solve_triangular(K_chol, m, lower=True)
    logdet_K = 2 * jnp.sum(jnp.log(jnp.abs(jnp.diagonal(K_chol))))
    logdet_S = 2 * jnp.sum(jnp.log(jnp.abs(jnp.diagonal(S_chol))))
    return 0.5 * (trace + inv_scale_mean * jnp.sum(white_m**2) - M + logdet_K - logdet_S)


def t_process_kl(m, S_chol, K_chol, a_q, b_q, a_p, b_p):
    """KL(q(u, σ²) ‖ p(u, σ²)) of the sparse variational t-process (one latent function)."""
    return kl_inverse_gamma(a_q, b_q, a_p, b_p) + expected_gaussian_kl(m, S_chol, K_chol, a_q / b_q)
