"""NumPyro ports of six posteriordb reference posteriors (stan-dev/posteriordb, BSD-3).

Parameter names match the Stan programs. Every model takes its observations as the
keyword ``y`` (sample site ``"y"``); with ``y=None`` it simulates them, so
``model(**{**load(name).data, "y": None})`` gives posterior/prior predictive draws.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.control_flow import scan as np_scan
from numpyro.distributions import constraints

__all__ = [
    "NAMES",
    "PosteriorDBProblem",
    "load",
    "arK",
    "earn_height",
    "eight_schools_noncentered",
    "garch11",
    "kidscore_momiq",
    "low_dim_gauss_mix",
]


def _size(n: int | None, y: Any, what: str) -> int:
    """Size ``n`` if given (checked against ``y``), else ``len(y)``."""
    if y is not None:
        if n is not None and int(n) != jnp.shape(y)[0]:
            raise ValueError(f"{what}={n} but y has length {jnp.shape(y)[0]}")
        return int(jnp.shape(y)[0])
    if n is None:
        raise ValueError(f"{what} is required when y is None")
    return int(n)


def eight_schools_noncentered(sigma, y=None):
    """Eight schools, non-centred.

    theta_trans_j ~ N(0, 1), mu ~ N(0, 5), tau ~ half-Cauchy(0, 5) (Stan's
    ``real<lower=0> tau; tau ~ cauchy(0, 5)``), theta = mu + tau * theta_trans
    (a transformed parameter, here a deterministic site), y_j ~ N(theta_j, sigma_j).
    """
    sigma = jnp.asarray(sigma)
    J = sigma.shape[0]
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("J", J):
        theta_trans = numpyro.sample("theta_trans", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_trans)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def earn_height(height, y=None):
    """Earnings on height: earn_n ~ N(beta_1 + beta_2 * height_n, sigma).

    No sampling statements for beta or sigma in Stan, so both get improper flat
    priors on their support (R^2 and (0, inf)). ``y`` is Stan's ``earn``.
    """
    height = jnp.asarray(height)
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real, (), (2,)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    with numpyro.plate("N", height.shape[0]):
        numpyro.sample("y", dist.Normal(beta[0] + beta[1] * height, sigma), obs=y)


def kidscore_momiq(mom_iq, y=None):
    """Kid IQ on mother's IQ: kid_score_n ~ N(beta_1 + beta_2 * mom_iq_n, sigma).

    beta has a flat prior (no sampling statement); sigma ~ half-Cauchy(0, 2.5).
    ``y`` is Stan's ``kid_score``.
    """
    mom_iq = jnp.asarray(mom_iq)
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real, (), (2,)))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    with numpyro.plate("N", mom_iq.shape[0]):
        numpyro.sample("y", dist.Normal(beta[0] + beta[1] * mom_iq, sigma), obs=y)


def arK(K, T=None, y=None):
    """AR(K): y_t ~ N(alpha + sum_k beta_k y_{t-k}, sigma) for t = K+1..T.

    alpha, beta_k ~ N(0, 10), sigma ~ half-Cauchy(0, 2.5). As in Stan the first K
    values are conditioned on, not modelled: site ``y`` has length T and its first
    K entries are masked out of the log density. With ``y=None`` a series is
    simulated recursively, its first K values drawn from N(alpha, sigma).
    """
    K = int(K)
    T = _size(T, y, "T")
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([K]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    modelled = jnp.arange(T) >= K

    if y is not None:
        y = jnp.asarray(y)
        # lags[t, k] = y[t - k - 1] for t >= K (rows t < K are padding, masked out).
        lags = jnp.stack([jnp.roll(y, k + 1) for k in range(K)], axis=-1)
        mean = alpha + lags @ beta
        with numpyro.plate("T", T):
            numpyro.sample("y", dist.Normal(mean, sigma).mask(modelled), obs=y)
        return

    def step(lags, t):
        mean = alpha + jnp.where(t >= K, lags @ beta, 0.0)
        y_t = numpyro.sample("y", dist.Normal(mean, sigma))
        return jnp.concatenate([y_t[None], lags[:-1]]), y_t

    np_scan(step, jnp.zeros(K), jnp.arange(T))


def garch11(sigma1, T=None, y=None):
    """GARCH(1,1): y_t ~ N(mu, sigma_t), sigma_1 given (data),
    sigma_t^2 = alpha0 + alpha1 (y_{t-1} - mu)^2 + beta1 sigma_{t-1}^2.

    No sampling statements: mu flat on R, alpha0 flat on (0, inf), alpha1 flat on
    (0, 1), beta1 flat on (0, 1 - alpha1). Stan's joint prior on (alpha1, beta1) is
    flat on the triangle; the unconstraining Jacobian (incl. log(1 - alpha1)) comes
    from NumPyro's biject_to(interval(0, 1 - alpha1)) as in Stan. beta1 is a
    Uniform(0, 1 - alpha1) whose -log(1 - alpha1) is cancelled by a factor, so the
    prior is flat. (Not ImproperUniform: it wraps the support in independent(., 0),
    NumPyro then misses the dynamic bound and maps beta1 draws back with the bound
    of the initial alpha1.)
    """
    T = _size(T, y, "T")
    mu = numpyro.sample("mu", dist.ImproperUniform(constraints.real, (), ()))
    alpha0 = numpyro.sample("alpha0", dist.ImproperUniform(constraints.positive, (), ()))
    alpha1 = numpyro.sample("alpha1", dist.ImproperUniform(constraints.unit_interval, (), ()))
    beta1 = numpyro.sample("beta1", dist.Uniform(0.0, 1.0 - alpha1))
    numpyro.factor("beta1_flat_prior", jnp.log1p(-alpha1))
    sigma1_sq = jnp.square(jnp.asarray(sigma1, dtype=jnp.result_type(float)))

    def next_var(var_prev, y_prev):
        return alpha0 + alpha1 * jnp.square(y_prev - mu) + beta1 * var_prev

    if y is not None:
        y = jnp.asarray(y)

        def step(var_prev, y_prev):
            var = next_var(var_prev, y_prev)
            return var, var

        _, var = jax.lax.scan(step, sigma1_sq, y[:-1])
        sigma = jnp.sqrt(jnp.concatenate([sigma1_sq[None], var]))
        with numpyro.plate("T", T):
            numpyro.sample("y", dist.Normal(mu, sigma), obs=y)
        return

    def sim_step(var, _):
        y_t = numpyro.sample("y", dist.Normal(mu, jnp.sqrt(var)))
        return next_var(var, y_t), y_t

    np_scan(sim_step, sigma1_sq, None, length=T)


def low_dim_gauss_mix(N=None, y=None):
    """Two-component normal mixture:
    y_n ~ theta N(mu_1, sigma_1) + (1 - theta) N(mu_2, sigma_2).

    mu is Stan's ``ordered[2]``: an ImproperUniform on ordered vectors plus a factor
    for ``mu ~ normal(0, 2)`` (density of N(0,2)^2 restricted to mu_1 < mu_2, up to
    a constant). sigma_k ~ half-normal(0, 2), theta ~ Beta(5, 5); theta weights
    component 1 as in Stan's ``log_mix``.
    """
    N = _size(N, y, "N")
    mu = numpyro.sample("mu", dist.ImproperUniform(constraints.ordered_vector, (), (2,)))
    numpyro.factor("mu_prior", dist.Normal(0.0, 2.0).log_prob(mu).sum())
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0).expand([2]).to_event(1))
    theta = numpyro.sample("theta", dist.Beta(5.0, 5.0))
    mix = dist.MixtureSameFamily(
        dist.Categorical(probs=jnp.stack([theta, 1.0 - theta])),
        dist.Normal(mu, sigma),
    )
    with numpyro.plate("N", N):
        numpyro.sample("y", mix, obs=y)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class PosteriorDBProblem:
    """A reference posterior: ``model(**data)`` is the conditioned NumPyro model."""

    name: str
    model: Callable[..., Any]
    data: dict


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# name -> (model, data file, Stan data -> model kwargs)
_REGISTRY: dict[str, tuple[Callable[..., Any], str, Callable[[dict], dict]]] = {
    "eight_schools-eight_schools_noncentered": (
        eight_schools_noncentered,
        "eight_schools.json",
        lambda d: {"sigma": _f64(d["sigma"]), "y": _f64(d["y"])},
    ),
    "earnings-earn_height": (
        earn_height,
        "earnings.json",
        lambda d: {"height": _f64(d["height"]), "y": _f64(d["earn"])},
    ),
    "kidiq-kidscore_momiq": (
        kidscore_momiq,
        "kidiq.json",
        lambda d: {"mom_iq": _f64(d["mom_iq"]), "y": _f64(d["kid_score"])},
    ),
    "arK-arK": (
        arK,
        "arK.json",
        lambda d: {"K": int(d["K"]), "T": int(d["T"]), "y": _f64(d["y"])},
    ),
    "low_dim_gauss_mix-low_dim_gauss_mix": (
        low_dim_gauss_mix,
        "low_dim_gauss_mix.json",
        lambda d: {"N": int(d["N"]), "y": _f64(d["y"])},
    ),
    "garch-garch11": (
        garch11,
        "garch11.json",
        lambda d: {"sigma1": float(d["sigma1"]), "T": int(d["T"]), "y": _f64(d["y"])},
    ),
}

NAMES: tuple[str, ...] = tuple(_REGISTRY)


def _read_data(filename: str) -> dict:
    try:
        root = resources.files("bayeskit.datasets")
    except ImportError:  # module loaded outside its package
        root = Path(__file__).parent
    return json.loads((root / "data" / filename).read_text())


def load(name: str) -> PosteriorDBProblem:
    """The model and its data (keyword arguments for ``model``) for a reference name."""
    try:
        model, filename, convert = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown posterior {name!r}; choose from {NAMES}") from None
    return PosteriorDBProblem(name=name, model=model, data=convert(_read_data(filename)))
