"""The learning-curve prior of LC-PFN (Adriaensen et al., NeurIPS 2023), after Domhan et al. (2015).

A curve over epochs t = 1 … T (T = ``epochs``, 100 in the paper) is an unnormalised mixture of
three parametric families,

    f(t) = w₁ pow3(t) + w₂ ilog2(t) + w₃ janoschek(t),      w_k ~ U(0, 1),
    pow3(t)      = c − a t^(−α)                  c ~ U(0, 1.25), a ~ U(−0.6, 0.6), α ~ LogNormal(0, 2)
    ilog2(t)     = c − a / log(t + 1)            c ~ U(0, 1),    a ~ U(−0.5, 0.5)
    janoschek(t) = a − (a − β) exp(−k t^δ)       a ~ U(0, 1), β ~ U(0, 2), k ~ LogNormal(−2, 1),
                                                 δ ~ LogNormal(0, 0.5)

restricted to curves that improve (f(T) > f(1)) and stay in [0, 1] at every epoch (the paper's
rejection step: the prior is the product above truncated to that set), observed with Gaussian
noise y(t) ~ N(f(t), σ²), log σ ~ N(−4, 1).

`learning_curve_model` is that prior as a NumPyro model, so NUTS fits it (the paper's MCMC
baseline); `sample_curves` draws from it exactly by rejection, under ``jit``/``vmap``, and
``learning_curve_model.dataset_prior`` gives the `LearningCurvePrior` that does so for a PFN
(running the model forward would ignore its truncation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

#: The paper's horizon: curves are defined, and constrained, at epochs 1 … 100.
EPOCHS = 100

# (family, parameter, distribution family, arg1, arg2): "uniform" is U(arg1, arg2), "lognormal" LogNormal(arg1, arg2)
PARAMETERS = (
    ("pow3", "c", "uniform", 0.0, 1.25),
    ("pow3", "a", "uniform", -0.6, 0.6),
    ("pow3", "alpha", "lognormal", 0.0, 2.0),
    ("ilog2", "c", "uniform", 0.0, 1.0),
    ("ilog2", "a", "uniform", -0.5, 0.5),
    ("janoschek", "a", "uniform", 0.0, 1.0),
    ("janoschek", "beta", "uniform", 0.0, 2.0),
    ("janoschek", "k", "lognormal", -2.0, 1.0),
    ("janoschek", "delta", "lognormal", 0.0, 0.5),
)
LOG_SIGMA = (-4.0, 1.0)  # log σ ~ N(−4, 1)


def _distribution(kind, a, b):
    import numpyro.distributions as dist

    return dist.Uniform(a, b) if kind == "uniform" else dist.LogNormal(a, b)


def mean_curve(t, weights, params):
    """f(t) for epochs t (..., n) given weights (..., 3) and params {"pow3.c": (...), ...}."""
    p = {k: jnp.asarray(v)[..., None] for k, v in params.items()}
    w = jnp.asarray(weights)[..., None, :]
    t = jnp.asarray(t, dtype=w.dtype)
    pow3 = p["pow3.c"] - p["pow3.a"] * t ** (-p["pow3.alpha"])
    ilog2 = p["ilog2.c"] - p["ilog2.a"] / jnp.log(t + 1.0)
    janoschek = p["janoschek.a"] - (p["janoschek.a"] - p["janoschek.beta"]) * jnp.exp(
        -p["janoschek.k"] * t ** p["janoschek.delta"])
    return w[..., 0] * pow3 + w[..., 1] * ilog2 + w[..., 2] * janoschek


def admissible(curve):
    """The rejection step on a curve over all epochs (..., T): it improves, stays in [0, 1], is finite."""
    return ((curve[..., -1] > curve[..., 0]) & jnp.all((curve >= 0) & (curve <= 1), axis=-1)
            & jnp.all(jnp.isfinite(curve), axis=-1))


def learning_curve_model(X, y=None, epochs: int = EPOCHS):
    """NumPyro model of a learning curve observed at epochs ``X`` (n,) or (n, 1), values in 1 … epochs.

    The truncation to admissible curves is a factor of 0 or −∞ on the whole curve (epochs 1 …
    ``epochs``): its normalising constant is a constant of the prior, so the posterior is exact.
    Start NUTS from prior draws (``init="sample"``), which the factor then screens.
    """
    import numpyro
    import numpyro.distributions as dist

    t = jnp.reshape(jnp.asarray(X), (-1,))
    weights = numpyro.sample("weights", dist.Uniform(0.0, 1.0).expand([3]).to_event(1))
    params = {f"{fam}.{name}": numpyro.sample(f"{fam}.{name}", _distribution(kind, a, b))
              for fam, name, kind, a, b in PARAMETERS}
    log_sigma = numpyro.sample("log_sigma", dist.Normal(*LOG_SIGMA))
    whole = mean_curve(jnp.arange(1, epochs + 1), weights, params)
    numpyro.factor("admissible", jnp.where(admissible(whole), 0.0, -jnp.inf))
    numpyro.sample("y", dist.Normal(mean_curve(t, weights, params), jnp.exp(log_sigma)), obs=y)


def _dataset_prior(*, x_dim: int = 1, priors=None, inputs=None):
    """The model's dataset prior (`DatasetPriorSource`): its truncation is a factor, which running
    the model forward would ignore, so datasets are drawn by rejection (`LearningCurvePrior`)."""
    from ..core.errors import ConfigError
    from .priors import LearningCurvePrior

    if priors:
        raise ConfigError("`priors` is for process models; the learning-curve model states its own priors")
    if inputs is not None:
        raise ConfigError("`inputs` cannot be set for the learning-curve model: its inputs are the epochs")
    if x_dim != 1:
        raise ConfigError(f"the learning-curve model reads one input column (the epoch), got x_dim={x_dim!r}")
    return LearningCurvePrior()


learning_curve_model.dataset_prior = _dataset_prior


def sample_parameters(key, shape=()):
    """Draws of (weights (*shape, 3), params {name: (*shape)}, log σ (*shape)) from the untruncated prior."""
    keys = jax.random.split(key, len(PARAMETERS) + 2)
    weights = jax.random.uniform(keys[0], (*shape, 3))
    params = {}
    for k, (fam, name, kind, a, b) in zip(keys[2:], PARAMETERS, strict=True):
        if kind == "uniform":
            params[f"{fam}.{name}"] = jax.random.uniform(k, shape, minval=a, maxval=b)
        else:
            params[f"{fam}.{name}"] = jnp.exp(a + b * jax.random.normal(k, shape))
    log_sigma = LOG_SIGMA[0] + LOG_SIGMA[1] * jax.random.normal(keys[1], shape)
    return weights, params, log_sigma


def sample_curve(key, epochs: int = EPOCHS, block: int = 8):
    """One admissible noiseless curve f(1 … epochs) and its log σ, by rejection: ``block`` candidates
    per round (about 20% of the paper's prior is admissible), the first admissible one kept."""
    t = jnp.arange(1, epochs + 1)

    def propose(k):
        weights, params, log_sigma = sample_parameters(k, (block,))
        curves = mean_curve(t, weights, params)
        ok = admissible(curves)
        first = jnp.argmax(ok)
        return ok[first], curves[first], log_sigma[first]

    def body(state):
        i, _, curve, log_sigma = state
        found, new_curve, new_log_sigma = propose(jax.random.fold_in(key, i))
        return i + 1, found, new_curve, new_log_sigma

    dtype = jnp.result_type(float)
    init = (jnp.int32(0), jnp.bool_(False), jnp.zeros(epochs, dtype), jnp.zeros((), dtype))
    _, _, curve, log_sigma = jax.lax.while_loop(lambda s: ~s[1], body, init)
    return curve, log_sigma


def sample_curves(key, num_curves: int, epochs: int = EPOCHS):
    """``num_curves`` noisy curves y (num_curves, epochs) from the prior, with their noiseless means."""
    k_curve, k_noise = jax.random.split(key)
    curves, log_sigma = jax.vmap(lambda k: sample_curve(k, epochs))(jax.random.split(k_curve, num_curves))
    y = curves + jnp.exp(log_sigma)[:, None] * jax.random.normal(k_noise, curves.shape, curves.dtype)
    return y, curves


def predictive_log_lik(draws, X, y):
    """log (1/S) Σ_s N(y(t) | f_s(t), σ_s²) per epoch t of ``X``: the posterior predictive density of
    ``y`` under S draws of the model's latent sites (a dict as `Posterior.sample` returns)."""
    from jax.scipy.special import logsumexp

    params = {f"{fam}.{name}": jnp.asarray(draws[f"{fam}.{name}"]) for fam, name, *_ in PARAMETERS}
    f = mean_curve(jnp.reshape(jnp.asarray(X), (-1,)), jnp.asarray(draws["weights"]), params)  # (S, m)
    lp = jax.scipy.stats.norm.logpdf(jnp.asarray(y), f, jnp.exp(jnp.asarray(draws["log_sigma"]))[:, None])
    return logsumexp(lp, 0) - jnp.log(lp.shape[0])
