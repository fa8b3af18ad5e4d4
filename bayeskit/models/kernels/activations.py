"""Gaussian expectations of an activation φ, the building block of NNGP/NTK recursions.

For (u, v) ~ N(0, [[a, c], [c, b]]) a map returns

    E[φ(u) φ(v)]   and   E[φ'(u) φ'(v)].

ReLU and erf have closed forms (Cho & Saul 2009; Williams 1997); any other elementwise φ
uses a tensor Gauss–Hermite rule over the bivariate normal. The closed forms are written
against an array namespace ``xp`` (``jax.numpy`` or ``torch``) so one formula serves both.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ...core.errors import ConfigError
from .base import safe_sqrt


def relu(a, b, c, xp):
    """ReLU: E[φφ] = √(ab)/(2π)·(sin θ + (π − θ) cos θ), E[φ'φ'] = (π − θ)/(2π), cos θ = c/√(ab).

    θ = atan2(sin θ, cos θ) with a safe sin: at θ = 0 (duplicate inputs) the derivative of the
    first map is the true one, (π − θ)/(2π)·√(ab)·d(cos θ), not NaN. √(ab) is safe too: an input
    at the origin with no bias has a = 0 for every hyperparameter value, so its derivative is 0
    (a plain sqrt gives ∞·0 = NaN there, and NaN poisons every gradient summed over the data).
    """
    norm = safe_sqrt(a * b, xp)
    has_norm = norm > 0
    cos = xp.clip(c / xp.where(has_norm, norm, xp.ones_like(norm)), -1.0, 1.0)
    cos = xp.where(has_norm, cos, xp.ones_like(cos))
    sin = safe_sqrt(1.0 - cos * cos, xp)
    theta = xp.atan2(sin, cos)
    e_phi = norm * (sin + (math.pi - theta) * cos) / (2 * math.pi)
    e_dphi = (math.pi - theta) / (2 * math.pi)
    return e_phi, e_dphi


def erf(a, b, c, xp):
    """erf: E[φφ] = (2/π)·asin(2c/√((1+2a)(1+2b))), E[φ'φ'] = (4/π)/√((1+2a)(1+2b) − 4c²)."""
    d2 = (1 + 2 * a) * (1 + 2 * b)
    e_phi = (2 / math.pi) * xp.asin(2 * c / xp.sqrt(d2))
    e_dphi = (4 / math.pi) / xp.sqrt(d2 - 4 * c * c)
    return e_phi, e_dphi


def gauss_hermite(phi: Callable, order: int = 64):
    """A map for any elementwise JAX function `phi`, by an order × order Gauss–Hermite rule.

    u = √(2a)·s, v = √(2b)·(ρ s + √(1 − ρ²) t), with (s, t) the Hermite nodes and ρ = c/√(ab);
    the sum runs over node pairs in a scan so memory stays O(n1·n2) and time O(order² n1 n2).
    Exact for polynomials of degree < 2·order in each variable. Smooth activations converge
    exponentially in `order`, more slowly the larger the layer variances (erf at variance ~4:
    relative error ~1e-7 at order 64); kinked ones (ReLU) only like 1/order: use the closed form.
    """
    import jax
    import jax.numpy as jnp

    if not callable(phi):
        raise ConfigError(f"`activation` must be 'relu', 'erf' or a callable, got {phi!r}")
    nodes, weights = np.polynomial.hermite.hermgauss(order)
    pairs_s = np.repeat(nodes, order)
    pairs_t = np.tile(nodes, order)
    pairs_w = np.repeat(weights, order) * np.tile(weights, order) / np.pi
    dphi = jax.vmap(jax.grad(phi))

    def elementwise_grad(x):
        return dphi(x.reshape(-1)).reshape(x.shape)

    def expectations(a, b, c, xp=jnp):
        a, b, c = jnp.broadcast_arrays(a, b, c)
        norm = safe_sqrt(a * b, jnp)  # safe at a = 0 (an input at the origin, no bias): see `relu`
        rho = jnp.clip(c / jnp.where(norm > 0, norm, 1.0), -1.0, 1.0)
        rho_perp = safe_sqrt(1.0 - rho * rho, jnp)
        sa, sb = safe_sqrt(2 * a, jnp), safe_sqrt(2 * b, jnp)

        def step(acc, node):
            s, t, w = node
            u = sa * s
            v = sb * (rho * s + rho_perp * t)
            return (acc[0] + w * phi(u) * phi(v), acc[1] + w * elementwise_grad(u) * elementwise_grad(v)), None

        zero = jnp.zeros_like(c)
        dtype = c.dtype
        (e_phi, e_dphi), _ = jax.lax.scan(
            step, (zero, zero), (jnp.asarray(pairs_s, dtype), jnp.asarray(pairs_t, dtype), jnp.asarray(pairs_w, dtype))
        )
        return e_phi, e_dphi

    return expectations


CLOSED_FORMS = {"relu": relu, "erf": erf}
