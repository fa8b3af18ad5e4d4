"""The hidden layers of a deep kernel machine: learned Gram matrices, their KL to the prior, and how
points outside the conditioning set follow them.

Layer ℓ holds a Gram matrix G_ℓ on a conditioning set "i" of P points (all training points in the full
machine, the inducing points in the sparse one), parameterised as G = V Vᵀ / P with V lower
triangular (so log det G = 2 Σ log|V_kk| − P log P), by default whitened, V = L W with L the factor of
the layer's prior covariance; its prior is N(0, K) with K = K(G_{ℓ−1}).
Its weight in the objective is ν_ℓ · KL(N(0, G) ‖ N(0, K)), with

    KL = ½ [tr(K⁻¹G) − log det(K⁻¹G) − P].

Other points "t" (test points, minibatch points) follow the paper's rule, with K̃ = K_ii + jitter:

    G_ti = K_ti K̃⁻¹ G_ii,     g_t = diag(K_ti K̃⁻¹ G_ii K̃⁻¹ K_it) + k_tt − diag(K_ti K̃⁻¹ K_it),

which leaves them at the prior (G_ti = K_ti, g_t = k_tt) when G_ii = K̃. A layer with ν = ∞ has no
parameters: its Gram matrix is the prior mean K on every block, exactly (the NNGP).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from . import gram_kernels as gk


def jittered_cholesky(K, jitter: float):
    """(L, ε): the lower Cholesky factor of K + ε I with ε = jitter · mean diag K."""
    eps = jitter * jnp.mean(jnp.diagonal(K))
    return jnp.linalg.cholesky(K + eps * jnp.eye(K.shape[0], dtype=K.dtype)), eps


def kl_from_factor(V, L):
    """KL(N(0, V Vᵀ/P) ‖ N(0, L Lᵀ)) for lower-triangular V and L (P × P)."""
    V = jnp.tril(V)
    P = V.shape[0]
    trace = jnp.sum(jax.scipy.linalg.solve_triangular(L, V, lower=True) ** 2) / P
    log_det_G = 2 * jnp.sum(jnp.log(jnp.abs(jnp.diagonal(V)))) - P * jnp.log(P)
    log_det_K = 2 * jnp.sum(jnp.log(jnp.diagonal(L)))
    return 0.5 * (trace - (log_det_G - log_det_K) - P)


def kl_whitened(W):
    """KL(N(0, W Wᵀ/P) ‖ N(0, I)): the KL of G = L W Wᵀ Lᵀ / P to N(0, L Lᵀ), whatever L."""
    W = jnp.tril(W)
    P = W.shape[0]
    return 0.5 * (jnp.sum(W**2) / P - 2 * jnp.sum(jnp.log(jnp.abs(jnp.diagonal(W)))) + P * jnp.log(P) - P)


def propagate(kmap, factors, Gii, Gti=None, gt=None, *, jitter: float, whiten: bool):
    """Run the conditioning set (Gram Gii) and optionally other points (cross Gram Gti, diagonal gt)
    through the hidden layers. ``factors`` holds each layer's parameter, or None for a layer with ν = ∞:
    V itself, or with ``whiten`` W, V = L W relative to the factor L of the layer's prior covariance
    (the same family of Gram matrices; the KL is then well conditioned in W whatever K's condition number).

    Returns (Gii, Gti, gt) of the last hidden layer, the KL of each learned layer and the absolute
    jitter ε added to each learned layer's prior covariance.
    """
    kls, jitters = [], []
    for factor in factors:
        Kii = gk.full(kmap, Gii)
        if Gti is not None:
            Kti = gk.cross(kmap, gt, jnp.diagonal(Gii), Gti)
            ktt = gk.diagonal(kmap, gt)
        if factor is None:
            Gii, Gti, gt = Kii, (Kti if Gti is not None else None), (ktt if Gti is not None else None)
            continue
        L, eps = jittered_cholesky(Kii, jitter)
        jitters.append(eps)
        if whiten:
            V = L @ jnp.tril(factor)
            kls.append(kl_whitened(factor))
        else:
            V = jnp.tril(factor)
            kls.append(kl_from_factor(V, L))
        P = V.shape[0]
        if Gti is not None:
            B = jax.scipy.linalg.solve_triangular(L, Kti.T, lower=True)  # L⁻¹K_it
            A = jax.scipy.linalg.solve_triangular(L.T, B, lower=False)  # K̃⁻¹K_it
            VA = V.T @ A  # G_ii K̃⁻¹K_it = V (Vᵀ A) / P
            Gti = VA.T @ V.T / P
            # a conditional variance: clipped at 0 where rounding takes it below
            gt = jnp.maximum(jnp.sum(VA * VA, axis=0) / P + ktt - jnp.sum(B * B, axis=0), 0.0)
        Gii = V @ V.T / P
    return Gii, Gti, gt, kls, jitters


def initial_factors(kmap, Gii, nus, *, jitter: float, whiten: bool) -> dict:
    """Each learned layer's parameter at its prior mean (so every KL starts at 0): W = √P I when
    whitened, else V = √P L, layer after layer; keyed by the layer's index as a string."""
    factors = {}
    for layer, nu in enumerate(nus):
        Kii = gk.full(kmap, Gii)
        if math.isinf(nu):
            Gii = Kii
            continue
        L, _ = jittered_cholesky(Kii, jitter)
        P = L.shape[0]
        factors[str(layer)] = math.sqrt(P) * (jnp.eye(P, dtype=L.dtype) if whiten else L)
        Gii = L @ L.T
    return factors


def layer_factors(factors: dict, layers: int) -> list:
    """The per-layer list `propagate` takes: each learned layer's parameter, None where ν = ∞ (a layer
    is learned when the parameters hold it, so the layout decides, not ν's value: ν may be traced)."""
    return [factors.get(str(layer)) for layer in range(layers)]


def weighted_kl(nus, factors: dict, kls) -> jnp.ndarray:
    """Σ_ℓ ν_ℓ KL_ℓ over the learned layers (in layer order, as `propagate` returns them)."""
    learned = sorted(int(k) for k in factors)
    return sum(nus[layer] * kl for layer, kl in zip(learned, kls, strict=True))
