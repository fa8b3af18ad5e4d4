"""PaRIS particle Gibbs (Cardoso, Janati el Idrissi, Le Corff, Moulines & Olsson, ICML 2023).

Each sweep runs PaRIS inside conditional SMC with the current reference path frozen as particle 0.
The next reference is drawn by picking the final index b_{T−1} ∝ W_{T−1} and tracing back through
the stored backward indices: b_t = J_{t+1}^{k}(b_{t+1}) with k uniform among the K draws (a
backward-sampling move, which keeps the exact smoothing law invariant). The estimate is the
average of the sweeps' PaRIS estimates Σ_i W^i τ^i after burn-in: the conditional particle system
removes most of PaRIS's O(1/N) self-normalisation bias.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import filter as smc_filter


def trace_path(key, particles, log_weights_last, backward_indices):
    """A path (T, d): b_{T−1} ∝ W_{T−1}, then b_t = J_t[k, b_{t+1}] with k uniform in 0..K−1."""
    k_last, k_back = jax.random.split(key)
    last = jax.random.categorical(k_last, log_weights_last).astype(jnp.int32)
    K = backward_indices.shape[1]

    def step(b, inputs):
        J, k = inputs
        b_prev = J[jax.random.randint(k, (), 0, K), b]
        return b_prev, b_prev

    T = particles.shape[0]
    _, idx = jax.lax.scan(step, last, (backward_indices, jax.random.split(k_back, T - 1)), reverse=True)
    idx = jnp.concatenate([idx, last[None]])
    return particles[jnp.arange(T), idx]


def first_reference(model, ys, observed, key, settings, extension, proposal=None):
    """An unconditional PaRIS run and a path traced through it: the chain's starting reference."""
    key_run, key_trace = jax.random.split(key)
    outs, _, _ = smc_filter.run(model, ys, observed, key_run, settings, extension, proposal=proposal)
    return trace_path(key_trace, outs["particles"], outs["log_weights"][-1], outs["backward_indices"]), outs


def sweep(model, ys, observed, key, settings, extension, reference, proposal=None):
    """One conditional-SMC PaRIS sweep frozen on ``reference``: (the sweep's estimate Σ_i W^i τ^i,
    the next reference, the sweep's log-likelihood increments)."""
    k_run, k_path = jax.random.split(key)
    o, _, estimate = smc_filter.run(model, ys, observed, k_run, settings, extension, reference=reference,
                                    proposal=proposal)
    new_ref = trace_path(k_path, o["particles"], o["log_weights"][-1], o["backward_indices"])
    return estimate, new_ref, o["log_increment"]


def particle_gibbs(model, ys, observed, key, settings, extension, sweeps: int, burn_in: int, proposal=None):
    """(mean estimate after burn-in (m,), per-sweep estimates (sweeps, m), reference paths (sweeps, T, d),
    the unconditional first run's outputs)."""
    key0, key_sweeps = jax.random.split(key)
    ref, outs = first_reference(model, ys, observed, key0, settings, extension, proposal)

    def one(ref, k):
        estimate, new_ref, _ = sweep(model, ys, observed, k, settings, extension, ref, proposal)
        return new_ref, (estimate, new_ref)

    _, (estimates, paths) = jax.lax.scan(one, ref, jax.random.split(key_sweeps, sweeps))
    return jnp.mean(estimates[burn_in:], axis=0), estimates, paths, outs
