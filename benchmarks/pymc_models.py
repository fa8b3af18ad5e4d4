"""PyMC ports of the six posteriordb reference posteriors of ``bayeskit.datasets.posteriordb``.

Each builder takes the same keyword arguments as the NumPyro port of the same name (the data of
``posteriordb.load(name).data``) and returns a ``pm.Model``. Priors, supports and unconstraining
transforms match the NumPyro ports, so both give the same log density on the unconstrained space,
Jacobians and normalising constants included:

* positive parameters: log transform (NumPyro: ``ExpTransform``), Jacobian ``+x``;
* (0, 1) and (0, 1 - alpha1): PyMC's log-odds / interval transform (NumPyro: sigmoid, then affine),
  Jacobian ``log(upper - lower) + log sigmoid(x) + log(1 - sigmoid(x))``;
* ``ordered[2]``: PyMC's ordered transform (NumPyro: ``OrderedTransform``), ``y = (x0, x0 + exp(x1))``;
* improper flat priors: ``pm.Flat`` / ``pm.HalfFlat`` (log density 0, as NumPyro's ``ImproperUniform``).

Free variables have the names of the NumPyro sample sites (eight schools' ``theta`` is a
``pm.Deterministic``, as it is a deterministic site there). ``check`` (``python
benchmarks/pymc_models.py``, or ``nuts_vs_nutpie.py --check``) compares PyMC's
``model.compile_logp(jacobian=True)`` with NumPyro's ``-potential_energy`` at random unconstrained
points. Needs PyMC (``benchmarks/requirements-nutpie.txt``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor import scan

# The observations enter as constants (not pm.Data): no shared variables, as a one-off script would write it.
# Parameters are float64 scalars, not Python floats: PyTensor turns a Python float that float32 represents
# exactly (5.0, 10.0, 2.5) into a float32 constant, and PyMC's log(sigma) of it is then computed in float32
# (an error of ~3e-8 in the log density per such term). One such constant is inside PyMC itself:
# HalfCauchy's logp adds pt.log(2) of an integer constant, evaluated in float32, so every pm.HalfCauchy
# is 1.9e-9 off log(2) (a constant offset, far inside check()'s tolerance).
F = np.float64


def eight_schools_noncentered(sigma, y) -> pm.Model:
    sigma = np.asarray(sigma, dtype=np.float64)
    with pm.Model() as model:
        mu = pm.Normal("mu", F(0.0), F(5.0))
        tau = pm.HalfCauchy("tau", F(5.0))
        theta_trans = pm.Normal("theta_trans", F(0.0), F(1.0), shape=sigma.shape[0])
        theta = pm.Deterministic("theta", mu + tau * theta_trans)
        pm.Normal("y", theta, sigma, observed=np.asarray(y, dtype=np.float64))
    return model


def earn_height(height, y) -> pm.Model:
    height = np.asarray(height, dtype=np.float64)
    with pm.Model() as model:
        beta = pm.Flat("beta", shape=2)
        sigma = pm.HalfFlat("sigma")
        pm.Normal("y", beta[0] + beta[1] * height, sigma, observed=np.asarray(y, dtype=np.float64))
    return model


def kidscore_momiq(mom_iq, y) -> pm.Model:
    mom_iq = np.asarray(mom_iq, dtype=np.float64)
    with pm.Model() as model:
        beta = pm.Flat("beta", shape=2)
        sigma = pm.HalfCauchy("sigma", F(2.5))
        pm.Normal("y", beta[0] + beta[1] * mom_iq, sigma, observed=np.asarray(y, dtype=np.float64))
    return model


def arK(K, T, y) -> pm.Model:
    """y_t ~ N(alpha + sum_k beta_k y_{t-k}, sigma) for t = K+1..T; the first K values conditioned on."""
    K, T = int(K), int(T)
    y = np.asarray(y, dtype=np.float64)
    assert y.shape == (T,)
    lags = np.stack([y[K - k - 1 : T - k - 1] for k in range(K)], axis=-1)  # lags[t - K, k] = y[t - k - 1]
    with pm.Model() as model:
        alpha = pm.Normal("alpha", F(0.0), F(10.0))
        beta = pm.Normal("beta", F(0.0), F(10.0), shape=K)
        sigma = pm.HalfCauchy("sigma", F(2.5))
        pm.Normal("y", alpha + pt.dot(lags, beta), sigma, observed=y[K:])
    return model


def garch11(sigma1, T, y) -> pm.Model:
    """sigma_t^2 = alpha0 + alpha1 (y_{t-1} - mu)^2 + beta1 sigma_{t-1}^2; flat priors on the supports.

    beta1 ~ Uniform(0, 1 - alpha1) (interval transform with the dynamic bound, as NumPyro's
    ``biject_to(interval(0, 1 - alpha1))`` and Stan), its ``-log(1 - alpha1)`` cancelled by a
    potential, so the joint prior on (alpha1, beta1) is flat on the triangle.
    """
    T = int(T)
    y = np.asarray(y, dtype=np.float64)
    assert y.shape == (T,)
    with pm.Model() as model:
        mu = pm.Flat("mu")
        alpha0 = pm.HalfFlat("alpha0")
        alpha1 = pm.Uniform("alpha1", F(0.0), F(1.0))
        beta1 = pm.Uniform("beta1", F(0.0), F(1.0) - alpha1)
        pm.Potential("beta1_flat_prior", pt.log1p(-alpha1))
        sigma1_sq = pt.as_tensor_variable(np.float64(sigma1) ** 2)
        var = scan(
            lambda y_prev, var_prev, mu, a0, a1, b1: a0 + a1 * pt.square(y_prev - mu) + b1 * var_prev,
            sequences=[pt.as_tensor_variable(y[:-1])],
            outputs_info=[sigma1_sq],
            non_sequences=[mu, alpha0, alpha1, beta1],
            return_updates=False,
        )
        sigma = pt.sqrt(pt.concatenate([sigma1_sq[None], var]))
        pm.Normal("y", mu, sigma, observed=y)
    return model


def low_dim_gauss_mix(N, y) -> pm.Model:
    """y_n ~ theta N(mu_1, sigma_1) + (1 - theta) N(mu_2, sigma_2); mu ordered with N(0, 2) density."""
    y = np.asarray(y, dtype=np.float64)
    assert y.shape == (int(N),)
    with pm.Model() as model:
        # NumPyro: ImproperUniform(ordered_vector) + factor N(0, 2).log_prob(mu).sum(): the same density.
        mu = pm.Normal(
            "mu", F(0.0), F(2.0), shape=2, transform=pm.distributions.transforms.ordered, initval=[-1.0, 1.0]
        )
        sigma = pm.HalfNormal("sigma", F(2.0), shape=2)
        theta = pm.Beta("theta", F(5.0), F(5.0))
        pm.NormalMixture("y", w=pt.stack([theta, F(1.0) - theta]), mu=mu, sigma=sigma, observed=y)
    return model


BUILDERS: dict[str, Callable[..., pm.Model]] = {
    "eight_schools-eight_schools_noncentered": eight_schools_noncentered,
    "earnings-earn_height": earn_height,
    "kidiq-kidscore_momiq": kidscore_momiq,
    "arK-arK": arK,
    "low_dim_gauss_mix-low_dim_gauss_mix": low_dim_gauss_mix,
    "garch-garch11": garch11,
}


def build(name: str, data: dict) -> pm.Model:
    """The PyMC model of posteriordb reference `name`, for the data of ``posteriordb.load(name).data``."""
    return BUILDERS[name](**data)


# --------------------------------------------------------------------------- log-density check


def check(names=None, n_points: int = 5, seed: int = 0, rtol: float = 1e-8, verbose: bool = True) -> dict:
    """Compare PyMC's unconstrained log density with NumPyro's at random unconstrained points.

    For every model: NumPyro's unconstrained parameters (shapes from ``initialize_model``) are drawn
    uniform in [-2, 2] (first point) and N(0, 1.5^2) (the others); NumPyro's log density is
    ``-potential_energy(model, (), data, params)`` and PyMC's is ``model.compile_logp(jacobian=True)``
    evaluated at the same coordinates, site ``name`` mapped to the value variable of the free variable
    ``name`` (``sigma_log__``, ``mu_ordered__``, ``beta1_interval__``, ...). Absolute log densities are
    compared (no constant offset allowed): both include every normalising constant. Raises
    AssertionError when ``|pymc - numpyro| > rtol * max(1, |numpyro|)``; returns per model the max abs
    and max relative difference.
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from numpyro.infer.util import initialize_model, potential_energy

    from bayeskit.datasets import posteriordb

    names = list(names or posteriordb.NAMES)
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        problem = posteriordb.load(name)
        info, *_ = initialize_model(jax.random.PRNGKey(seed), problem.model, model_kwargs=problem.data)
        z0 = {k: np.asarray(v) for k, v in info.z.items()}
        model = build(name, problem.data)
        free = {rv.name for rv in model.free_RVs}
        assert free == set(z0), f"{name}: PyMC free variables {sorted(free)} != NumPyro latent sites {sorted(z0)}"
        value_name = {rv.name: model.rvs_to_values[rv].name for rv in model.free_RVs}
        logp_fn = model.compile_logp(jacobian=True)
        rows = []
        for i in range(n_points):
            if i == 0:
                z = {k: rng.uniform(-2.0, 2.0, size=v.shape) for k, v in z0.items()}
            else:
                z = {k: 1.5 * rng.standard_normal(size=v.shape) for k, v in z0.items()}
            lp_numpyro = -float(
                potential_energy(problem.model, (), problem.data, {k: jnp.asarray(v) for k, v in z.items()})
            )
            lp_pymc = float(logp_fn({value_name[k]: v for k, v in z.items()}))
            rows.append((lp_numpyro, lp_pymc))
        diffs = np.array([b - a for a, b in rows])
        rels = np.abs(diffs) / np.maximum(1.0, np.abs([a for a, _ in rows]))
        out[name] = {
            "points": n_points,
            "value_vars": [value_name[k] for k in sorted(z0)],
            "logp_numpyro": [a for a, _ in rows],
            "logp_pymc": [b for _, b in rows],
            "max_abs_diff": float(np.abs(diffs).max()),
            "max_rel_diff": float(rels.max()),
            # what is left after removing a constant offset (differences between points)
            "max_abs_diff_offset_removed": float(np.abs(diffs - diffs[0]).max()),
        }
        if verbose:
            print(
                f"{name}: {n_points} points, value vars {', '.join(out[name]['value_vars'])}; log densities "
                f"{min(a for a, _ in rows):.6g} .. {max(a for a, _ in rows):.6g}; max |diff| "
                f"{out[name]['max_abs_diff']:.3g}, max rel diff {out[name]['max_rel_diff']:.3g}, "
                f"max |diff - diff at point 0| {out[name]['max_abs_diff_offset_removed']:.3g}",
                flush=True,
            )
    bad = {n: r["max_rel_diff"] for n, r in out.items() if not r["max_rel_diff"] <= rtol}
    assert not bad, f"PyMC and NumPyro log densities differ (rel > {rtol}): {bad}"
    return out


if __name__ == "__main__":
    check(sys.argv[1:] or None)
    print("ok: PyMC and NumPyro unconstrained log densities agree")
