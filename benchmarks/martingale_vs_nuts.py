"""The posterior of a normal mean by a martingale posterior and by NUTS, side by side in one process;
and the Bayesian bootstrap by the Pólya urn against Dirichlet weights drawn directly.

Model: y_i ~ N(θ, σ²), σ = 1.5 known, θ ~ N(0, 2²), n = 50 simulated points; the exact posterior
is N(m_n, s_n²) (conjugate).
* (i) `bk.MartingalePosterior` with the `NormalNormal` predictive rule (horizon N = 10,000 forward
  draws per posterior draw, 4,000 draws): the law of its mean functional is N(m_n, s_n² − s_{n+N}²),
  the posterior's up to n / (n + N) = 0.5% of the variance;
* (ii) `bk.NUTS` on the same model written in NumPyro (4 chains × (1,000 warm-up + 1,000 draws)).
Each is fitted once with compilation, then refitted three times (the compiled program cached; the
median is reported). Reported: wall time, draws/s and bulk ESS/s (ArviZ's `ess`, the same function
for both, on the refit), and the errors of the posterior mean and sd against the exact ones, in
Monte Carlo standard errors (s_n / √ESS for the mean, s_n / √(2 ESS) for the sd).
* (iii) the Bayesian bootstrap of the mean of the same data: `PolyaUrn(alpha=0)` with the mean
  functional (N = 10,000, 4,000 draws) against NumPy's Dirichlet(1, …, 1) weights times y
  (4,000 draws); time and a two-sample Kolmogorov–Smirnov p-value.

    python benchmarks/martingale_vs_nuts.py [--refits 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from scipy import stats  # noqa: E402

import bayeskit as bk  # noqa: E402

mt = bk.martingale
N_OBS, NOISE, PRIOR_SD = 50, 1.5, 2.0
HORIZON, DRAWS = 10_000, 4000


def model(y=None):
    theta = numpyro.sample("theta", dist.Normal(0.0, PRIOR_SD))
    with numpyro.plate("n", N_OBS):
        numpyro.sample("y", dist.Normal(theta, NOISE), obs=y)


def timed(fit, seeds):
    """(first fit s, median refit s, the last posterior): the first seed's fit compiles."""
    times, post = [], None
    for seed in seeds:
        t0 = time.perf_counter()
        post = fit(seed)
        times.append(time.perf_counter() - t0)
    return times[0], float(np.median(times[1:])), post


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--refits", type=int, default=3)
    args = p.parse_args(argv)
    seeds = range(1, args.refits + 2)
    y = np.random.default_rng(2026).normal(1.0, NOISE, N_OBS)
    data = {"y": y}
    rule = mt.NormalNormal(loc=0.0, scale=PRIOR_SD, noise=NOISE)
    exact = rule.exact_posterior(data)
    m_n, s_n = float(exact.mean), float(np.sqrt(exact.variance))

    # one-off costs before any timing: libraries, the engine plugins, ArviZ, a tiny unrelated jit
    jax.jit(lambda a: a + 1)(1.0).block_until_ready()
    bk.fit(mt.PolyaUrn(), {"y": [0.0, 1.0]}, engine=bk.MartingalePosterior(horizon=10, draws=2, progress=False))
    az.ess(np.random.default_rng(0).normal(size=(2, 100)))

    mp = bk.MartingalePosterior(horizon=HORIZON, draws=DRAWS, progress=False)
    nuts = bk.NUTS(chains=4, warmup=1000, draws=1000, progress=False)
    rows = []
    for name, fit, take in [
        ("martingale posterior (NormalNormal)", lambda s: bk.fit(rule, data, engine=mp, seed=s),
         lambda post: post.draws["mean"]),
        ("NUTS (NumPyro model)", lambda s: bk.fit(model, data, engine=nuts, seed=s),
         lambda post: post.draws["theta"]),
    ]:
        first, refit, post = timed(fit, seeds)
        draws = np.asarray(take(post))  # (chain, draw)
        ess = float(az.ess(draws, method="bulk"))
        flat = draws.ravel()
        rows.append((name, first, refit, flat.size, ess, (flat.mean() - m_n) / (s_n / np.sqrt(ess)),
                     (flat.std(ddof=1) - s_n) / (s_n / np.sqrt(2 * ess)), flat.std(ddof=1) / s_n - 1,
                     getattr(post, "truncation", {}).get("mean")))

    # (iii) the Bayesian bootstrap
    urn = bk.MartingalePosterior(horizon=HORIZON, draws=DRAWS, progress=False)
    urn_first, urn_refit, urn_post = timed(lambda s: bk.fit(mt.PolyaUrn(alpha=0.0), data, engine=urn, seed=s), seeds)
    direct_times = []
    for seed in seeds:
        t0 = time.perf_counter()
        direct = np.random.default_rng(seed).dirichlet(np.ones(N_OBS), DRAWS) @ y
        direct_times.append(time.perf_counter() - t0)
    urn_draws = urn_post.draws["mean"][0]
    ks = stats.ks_2samp(urn_draws, direct).pvalue

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; JAX {jax.__version__} "
          f"({jax.default_backend()}), NumPyro {numpyro.__version__}, ArviZ {az.__version__}; float64; "
          f"{datetime.datetime.now(datetime.UTC):%Y-%m-%dT%H:%M}Z")
    print(f"n = {N_OBS}, σ = {NOISE}, θ ~ N(0, {PRIOR_SD}²); exact posterior mean {m_n:.4f}, sd {s_n:.4f}; "
          f"refit = median of {args.refits}\n")
    print("| method | draws | first fit s | refit s | draws/s (refit) | ESS_bulk | ESS/s (refit) "
          "| mean error (MCSE) | sd error (MCSE) | sd / exact − 1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, first, refit, n_draws, ess, err_mean, err_sd, rel_sd, _ in rows:
        print(f"| {name} | {n_draws} | {first:.2f} | {refit:.2f} | {n_draws / refit:,.0f} | {ess:,.0f} "
              f"| {ess / refit:,.0f} | {err_mean:+.2f} | {err_sd:+.2f} | {100 * rel_sd:+.2f}% |")
    (_, mp_first, mp_refit, _, mp_ess, *_), (_, nuts_first, nuts_refit, _, nuts_ess, *_) = rows
    ess_ratio = (mp_ess / mp_refit) / (nuts_ess / nuts_refit)
    print(f"\nratio NUTS / martingale posterior: wall time first fit {nuts_first / mp_first:.2f}, refit "
          f"{nuts_refit / mp_refit:.2f}; ESS/s (refit) martingale / NUTS {ess_ratio:.2f}")
    v = lambda k: 1 / (1 / PRIOR_SD**2 + k / NOISE**2)  # noqa: E731 - posterior variance after k points
    print(f"martingale posterior: truncation estimate {rows[0][8]:.4f} (its exact value "
          f"{(v(N_OBS + HORIZON // 2) - v(N_OBS + HORIZON)) / (v(N_OBS) - v(N_OBS + HORIZON)):.4f}; the variance "
          f"the horizon misses: {v(N_OBS + HORIZON) / v(N_OBS):.4f} of the posterior's)\n")
    print("| Bayesian bootstrap of the mean | draws | first fit s | refit s | mean | sd | KS p-value vs direct |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| PolyaUrn(alpha=0), N = {HORIZON:,} | {DRAWS} | {urn_first:.2f} | {urn_refit:.2f} "
          f"| {urn_draws.mean():.4f} | {urn_draws.std(ddof=1):.4f} | {ks:.2f} |")
    print(f"| NumPy Dirichlet weights @ y | {DRAWS} | — | {np.median(direct_times):.4f} | {direct.mean():.4f} "
          f"| {direct.std(ddof=1):.4f} | |")
    print(f"\nratio PolyaUrn / direct (refit): {urn_refit / np.median(direct_times):,.0f}; urn truncation estimate "
          f"{urn_post.truncation['mean']:.4f} (n / (n + N) = {N_OBS / (N_OBS + HORIZON):.4f})")


if __name__ == "__main__":
    main()
