"""Particle filters as one `lax.scan`: bootstrap, guided and auxiliary, with adaptive resampling.

At t = 0 the particles come from μ (or the proposal's initial law) and are weighted by g_0. Then,
for t = 0, …, T−2, with normalised log weights log W_t and a look-ahead log η_t (0 unless the
filter is auxiliary):

    resample (always for the auxiliary filter, else when ESS = 1/Σ W² < threshold · N) with
        first-stage weights ∝ W_t η_t: ancestors a, base log weight −log N − log η_t(a);
        otherwise a = identity, base log weight log W_t;
    propagate x_{t+1} ~ r_t(x_t^a, ·) (q_t for the bootstrap filter), weight
        log w = base + log g_{t+1}(x_{t+1}, y_{t+1}) + log q_t(x^a, x_{t+1}) − log r_t(x^a, x_{t+1});
    log p̂(y_{t+1} | y_{0:t}) = log Σ W_t η_t [after resampling] + log Σ exp(log w).

The product of these increments is an unbiased estimate of p(y_{0:T−1}) (Del Moral 2004;
Pitt & Shephard 1999 for the auxiliary form). An `extension` (e.g. PaRIS) sees each step's
(x_t, W_t, x_{t+1}) and carries its own state; memory is O(N) unless particles are kept.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from ...core.module import Module
from . import resampling
from .proposals import Proposal  # noqa: F401  (re-exported)


class FilterSettings(Module, pytree=False):
    """The static settings of one filter program (hashable: a part of the program cache's key)."""

    n: int
    resampling: str = "systematic"
    ess_threshold: float = 0.5
    lookahead: Callable | str | None = None  # log η_t(x_t, y_{t+1}, t), or "default": the auxiliary filter
    keep_particles: bool = False


def default_lookahead(model, x, y_next, t):
    """log η = log g_{t+1}(E[x_{t+1} | x_t], y_{t+1}) (Pitt & Shephard's choice)."""
    return model.observation_log_prob(model.transition(x, t).mean, y_next, t + 1)


def _normalise(logw):
    c = logsumexp(logw)
    return logw - c, c


def _moments(x, logW):
    W = jnp.exp(logW)[:, None]
    mean = jnp.sum(W * x, 0)
    return mean, jnp.sum(W * (x - mean) ** 2, 0)


def _log_g(model, x, y, observed, t):
    return jnp.where(observed, model.observation_log_prob(x, jnp.where(observed, y, 0.0), t), 0.0)


def run(model, ys, observed, key, settings: FilterSettings, extension=None, reference=None, proposal=None):
    """Filter `ys` (T, p) (``observed`` (T,) marks the steps whose y counts). Returns a dict of
    per-step outputs (stacked over t = 0..T−1), the final carry and the extension's output.

    With a ``reference`` path (T, d) the filter is conditional (Andrieu, Doucet & Holenstein 2010):
    particle 0 is the reference at every step, its own ancestor, and the others are drawn as usual
    (use multinomial resampling at every step, ``ess_threshold=1``, for the exact conditional law).
    ``proposal`` (a `Proposal` or `ParametricProposal`, a traced argument) makes the filter guided.
    """
    n = settings.n
    resample = resampling.get(settings.resampling)
    lookahead = settings.lookahead
    key_init, key_steps = jax.random.split(key)

    if proposal is not None and proposal.initial_sample is not None:
        x0 = proposal.initial_sample(key_init, ys[0], n)
        log_correction = model.initial_log_prob(x0) - proposal.initial_log_prob(x0, ys[0])
    else:
        x0 = model.initial_sample(key_init, n)
        log_correction = 0.0
    if reference is not None:
        x0 = x0.at[0].set(reference[0])
        if proposal is not None and proposal.initial_sample is not None:
            log_correction = model.initial_log_prob(x0) - proposal.initial_log_prob(x0, ys[0])
    logw0 = _log_g(model, x0, ys[0], observed[0], 0) + log_correction
    logW0, c0 = _normalise(logw0)
    ext0 = extension.init(model, x0, logW0, ys[0], observed[0], proposal) if extension is not None else None

    def record(x, logW, inc, ess, resampled, ancestors):
        out = {"log_increment": inc, "ess": ess, "resampled": resampled}
        out["mean"], out["var"] = _moments(x, logW)
        if settings.keep_particles:
            out.update(particles=x, log_weights=logW, ancestors=ancestors)
        return out

    first = record(x0, logW0, c0 - jnp.log(n), 1.0 / jnp.sum(jnp.exp(2 * logW0)), jnp.asarray(False),
                   jnp.arange(n, dtype=jnp.int32))

    def step(carry, inputs):
        x, logW, ext = carry
        t, y_next, obs_next, ref_next, k = inputs
        k_res, k_prop, k_ext = jax.random.split(k, 3)
        ess = 1.0 / jnp.sum(jnp.exp(2 * logW))
        if lookahead is not None:
            eta = default_lookahead(model, x, y_next, t) if lookahead == "default" else lookahead(x, y_next, t)
            log_first, c = _normalise(logW + eta)
            a = resample(k_res, jnp.exp(log_first), n)
            base, resampled = -jnp.log(n) - eta[a], jnp.asarray(True)
        else:
            c = 0.0
            resampled = ess < settings.ess_threshold * n
            a = jax.lax.cond(resampled, lambda: resample(k_res, jnp.exp(logW), n),
                             lambda: jnp.arange(n, dtype=jnp.int32))
            base = jnp.where(resampled, -jnp.log(n), logW)
        if reference is not None:
            a = a.at[0].set(0)
            base = base.at[0].set(jnp.where(resampled, -jnp.log(n), logW[0]) - (eta[0] if lookahead else 0.0))
        xa = x[a]
        sampler = model.transition_sample if proposal is None else (
            lambda kk, xx, tt: proposal.sample(kk, xx, y_next, tt))
        x_new = sampler(k_prop, xa, t)
        if reference is not None:
            x_new = x_new.at[0].set(ref_next)
        log_inc = _log_g(model, x_new, y_next, obs_next, t + 1)
        if proposal is not None:
            log_inc = log_inc + model.transition_log_prob(xa, x_new, t) - proposal.log_prob(xa, x_new, y_next, t)
        logW_new, c2 = _normalise(base + log_inc)
        emitted = None
        if extension is not None:
            ext, emitted = extension.step(model, ext, k_ext, x, logW, x_new, t, y_next, obs_next, proposal)
        ess_new = 1.0 / jnp.sum(jnp.exp(2 * logW_new))
        return (x_new, logW_new, ext), (record(x_new, logW_new, c + c2, ess_new, resampled, a), emitted)

    T = ys.shape[0]
    refs = jnp.zeros((T - 1, 1)) if reference is None else reference[1:]
    inputs = (jnp.arange(T - 1), ys[1:], observed[1:], refs, jax.random.split(key_steps, T - 1))
    (x, logW, ext), (outs, emitted) = jax.lax.scan(step, (x0, logW0, ext0), inputs)
    outs = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, outs)
    if emitted is not None:
        outs["backward_indices"] = emitted  # (T − 1, K, N): the indices at t of the particles at t + 1
    final = extension.final(model, ext, x, logW) if extension is not None else None
    return outs, (x, logW), final
