"""Exact inference for `LinearGaussian`: the Kalman filter and the Rauch–Tung–Striebel smoother.

Filter (t = 0, …, T−1; the prediction at t = 0 is (m0, P0)):
    S_t = C P_t|t−1 Cᵀ + R,  K_t = P_t|t−1 Cᵀ S_t⁻¹,
    m_t = m_t|t−1 + K_t (y_t − C m_t|t−1),  P_t = P_t|t−1 − K_t S_t K_tᵀ,
    log p(y) = Σ_t log N(y_t | C m_t|t−1, S_t),  m_t+1|t = A m_t,  P_t+1|t = A P_t Aᵀ + Q.
Smoother: G_t = P_t Aᵀ P_t+1|t⁻¹,  m^s_t = m_t + G_t (m^s_t+1 − m_t+1|t),
    P^s_t = P_t + G_t (P^s_t+1 − P_t+1|t) G_tᵀ,  Cov(x_t, x_t+1 | y) = G_t P^s_t+1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.stats import multivariate_normal


def kalman_filter(model, ys, observed=None):
    """(log p(y), filtered means (T, d), covariances (T, d, d), predicted means, predicted covariances).

    ``observed`` (T,) bool marks the steps whose y counts (the others are skipped: missing data).
    """
    A, C, Q, R = model.A, model.C, model.Q, model.R
    ys = jnp.asarray(ys, float).reshape(len(ys), -1)
    observed = jnp.ones(ys.shape[0], bool) if observed is None else jnp.asarray(observed)

    def step(carry, inputs):
        m_pred, P_pred, loglik = carry
        y, seen = inputs
        S = C @ P_pred @ C.T + R
        gain = jnp.where(seen, jnp.linalg.solve(S, C @ P_pred).T, 0.0)
        loglik = loglik + jnp.where(seen, multivariate_normal.logpdf(y, C @ m_pred, S), 0.0)
        m = m_pred + gain @ (y - C @ m_pred)
        P = P_pred - gain @ S @ gain.T
        P = 0.5 * (P + P.T)
        return (A @ m, A @ P @ A.T + Q, loglik), (m, P, m_pred, P_pred)

    init = (jnp.asarray(model.m0, float), jnp.asarray(model.P0, float), jnp.zeros(()))
    (_, _, loglik), (m, P, m_pred, P_pred) = jax.lax.scan(step, init, (ys, observed))
    return loglik, m, P, m_pred, P_pred


def rts_smoother(model, ys):
    """(smoothed means (T, d), covariances (T, d, d), lag-one covariances Cov(x_t, x_t+1 | y) (T−1, d, d))."""
    _, m, P, m_pred, P_pred = kalman_filter(model, ys)
    A = model.A

    def step(carry, inputs):
        m_next_s, P_next_s = carry
        m_t, P_t, m_next_pred, P_next_pred = inputs
        G = jnp.linalg.solve(P_next_pred, A @ P_t).T
        m_s = m_t + G @ (m_next_s - m_next_pred)
        P_s = P_t + G @ (P_next_s - P_next_pred) @ G.T
        return (m_s, 0.5 * (P_s + P_s.T)), (m_s, P_s, G @ P_next_s)

    _, (ms, Ps, cross) = jax.lax.scan(step, (m[-1], P[-1]), (m[:-1], P[:-1], m_pred[1:], P_pred[1:]), reverse=True)
    return jnp.concatenate([ms, m[-1:]]), jnp.concatenate([Ps, P[-1:]]), cross
