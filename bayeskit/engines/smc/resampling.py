"""Resampling schemes: N ancestor indices from normalised weights W (all unbiased: E[#copies of i] = N W_i).

Each draws uniforms u_1..u_N and inverts the cumulative weights by binary search (O(N log N),
no sort: the order of the ancestors is immaterial to the particle system):

* multinomial: u i.i.d. uniform (the highest variance);
* stratified: u_i = (i + U_i)/N, one uniform per stratum;
* systematic: u_i = (i + U)/N, one uniform in all (the lowest variance in practice);
* residual: ⌊N W_i⌋ copies of i deterministically, the remaining R draws multinomial on the
  residual weights N W_i − ⌊N W_i⌋ (normalised).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ...core.checks import check_choice


def _invert(W, u):
    cdf = jnp.cumsum(W)
    idx = jnp.searchsorted(cdf, u * cdf[-1], side="right")
    return jnp.minimum(idx, W.shape[0] - 1).astype(jnp.int32)


def multinomial(key, W, n):
    return _invert(W, jax.random.uniform(key, (n,), dtype=W.dtype))


def stratified(key, W, n):
    return _invert(W, (jnp.arange(n, dtype=W.dtype) + jax.random.uniform(key, (n,), dtype=W.dtype)) / n)


def systematic(key, W, n):
    return _invert(W, (jnp.arange(n, dtype=W.dtype) + jax.random.uniform(key, (), dtype=W.dtype)) / n)


def residual(key, W, n):
    scaled = n * W
    copies = jnp.floor(scaled).astype(jnp.int32)
    deterministic = jnp.repeat(jnp.arange(W.shape[0], dtype=jnp.int32), copies, total_repeat_length=n)
    n_det = jnp.sum(copies)
    rest = scaled - copies
    # i.i.d. draws, of which the first n − n_det fill the places after the deterministic copies
    drawn = multinomial(key, rest, n)
    positions = jnp.arange(n)
    return jnp.where(positions < n_det, deterministic, drawn[jnp.maximum(positions - n_det, 0)])


RESAMPLERS = {"multinomial": multinomial, "stratified": stratified, "systematic": systematic, "residual": residual}


def get(name: str):
    check_choice("resampling", name, sorted(RESAMPLERS))
    return RESAMPLERS[name]
