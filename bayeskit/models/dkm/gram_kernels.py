"""Kernels that act on Gram matrices: K(G), the prior covariance of the next layer of a deep kernel machine.

A kernel here sees the points only through their Gram matrix G, entry by entry through
(a, b, c) = (G_ii, G_jj, G_ij), so one elementwise map serves the three forms a deep kernel machine
needs: a full block K(G) (from G and its diagonal), a cross block between two sets of points
(their diagonals and the cross Gram) and a diagonal (a = b = c = g_i).

* ``"relu"`` (arc-cosine): K = σ_w² E[φ(u)φ(v)] + σ_b², (u, v) ~ N(0, [[a, c], [c, b]]), φ = ReLU,
  E[φφ] = (1/2π)[√(ab − c²) + (π − θ) c], θ = arccos(c / √(ab)); one step of the NNGP recursion
  (`bayeskit.models.kernels.neural`), through the same closed form (`activations.relu`).
* ``"se"`` (squared exponential): K = σ_w² exp(−(½a + ½b − c) / ℓ²) + σ_b², the RBF kernel of the
  features whose Gram matrix is G (½a + ½b − c is half their squared distance).

The input layer is G₀ = σ_w² X Xᵀ / N₀ + σ_b² (N₀ input columns), the NNGP's first layer.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from ..kernels.activations import relu

KERNELS = ("relu", "se")


def gram_map(kernel: str, weight_var, bias_var, lengthscale=1.0) -> Callable:
    """The elementwise map (a, b, c) -> K of a Gram kernel (broadcasting over its arguments)."""
    if kernel == "relu":
        return lambda a, b, c: weight_var * relu(a, b, c, jnp)[0] + bias_var
    if kernel == "se":
        return lambda a, b, c: weight_var * jnp.exp(-(0.5 * a + 0.5 * b - c) / lengthscale**2) + bias_var
    raise ValueError(f"unknown Gram kernel {kernel!r}")  # settings are checked on construction


def full(kmap: Callable, G):
    """K(G) for one set of points: (P, P) from the (P, P) Gram matrix."""
    d = jnp.diagonal(G)
    return kmap(d[:, None], d[None, :], G)


def cross(kmap: Callable, diag1, diag2, G12):
    """The (m, P) block K between two sets of points, from their Gram diagonals and cross Gram G12."""
    return kmap(diag1[:, None], diag2[None, :], G12)


def diagonal(kmap: Callable, g):
    """The diagonal k(x_t, x_t) from the Gram diagonal g."""
    return kmap(g, g, g)


def input_gram(X1, X2, weight_var, bias_var):
    """G₀ = σ_w² X₁X₂ᵀ / N₀ + σ_b²."""
    return weight_var * (X1 @ X2.T) / X1.shape[1] + bias_var


def input_diagonal(X, weight_var, bias_var):
    """diag G₀ = σ_w² ‖x‖² / N₀ + σ_b²."""
    return weight_var * jnp.sum(X * X, axis=1) / X.shape[1] + bias_var
