"""
Martingale posteriors: a posterior from a predictive rule
=========================================================

Fong, Holmes & Walker (JRSS-B 2023): a posterior without a likelihood and prior, from a predictive
rule that imputes the unseen rest of the population; the posterior of a quantity is the distribution of
its value on the completed population.

(a) the density of a bimodal sample, by the Gaussian-copula predictive (`CopulaDensity`, its bandwidth
fitted by prequential likelihood) with the `Density` functional;
(b) the Bayesian bootstrap (the Pólya urn with alpha = 0) of a mean and of a linear regression's
coefficients;
(c) the conjugate normal model, where the martingale posterior is the Bayesian posterior: the draws
beside the exact answer.

Run: `python examples/martingale_posterior.py` (about a minute on 2 cores; `BAYESKIT_FAST=1` for a quick
smoke run with fewer draws and shorter horizons).
"""

import os
import time

import numpy as np
from scipy import stats

import bayeskit as bk

mt = bk.martingale
rng = np.random.default_rng(1)
fast = os.environ.get("BAYESKIT_FAST") == "1"
scale = 10 if fast else 1  # the smoke run: a tenth of the draws (and of the longest horizon)


def band(draws, level=0.9):
    """The central `level` interval of draws (along the first axis)."""
    return np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)


# %%
# (a) A density
# -------------
# 100 points from a two-component mixture. `bk.MartingalePosterior` runs the copula rule forward to a
# horizon N per draw and reads the density of the completed population at a few points.

y = np.concatenate([rng.normal(-2.0, 0.5, 40), rng.normal(1.5, 1.0, 60)])
truth = lambda t: 0.4 * stats.norm.pdf(t, -2.0, 0.5) + 0.6 * stats.norm.pdf(t, 1.5, 1.0)  # noqa: E731
at = [-3.0, -2.0, -0.5, 1.5, 2.5]

start = time.perf_counter()
# the default horizon for n = 100 is 50 n = 5,000 forward draws per posterior draw; P_N is tracked on
# the rule's grid (200 points over the data ± 3 sd) and the functional reads it at `at`
post = bk.fit(mt.CopulaDensity(), {"y": y}, engine=bk.MartingalePosterior(
    functional=mt.Density(at=at), draws=500 // scale, horizon=1000 if fast else None, progress=False), seed=0)
density = post.draws["density"][0]  # (draws, len(at))
p_n = np.exp(np.asarray(post.predictive.log_prob(np.asarray(at))))
lo, hi = band(density)
print(f"(a) copula density of {y.size} points: fitted rho = {float(post.state.rho):.3f} "
      f"(prequential log-likelihood {float(post.state.prequential):.3f} per point), horizon N = {post.horizon}, "
      f"{density.shape[0]} draws in {time.perf_counter() - start:.1f} s")
print("      y    true p(y)   p_n(y)   posterior mean   90% band")
for j, t in enumerate(at):
    print(f"  {t:5.1f}    {truth(t):8.3f}  {p_n[j]:7.3f}   {density[:, j].mean():14.3f}   "
          f"[{lo[j]:.3f}, {hi[j]:.3f}]")
print(f"  horizon check: Var(θ_N − θ_N/2) / Var(θ_N) = {post.truncation['density']:.3f} "
      f"(the fit warns above {mt.TRUNCATION_LIMIT})\n")

# %%
# (b) The Bayesian bootstrap
# --------------------------
# The Pólya urn with alpha = 0 resamples the observed points only: its martingale posterior of a mean
# is Rubin's Bayesian bootstrap, checked against Dirichlet weights drawn directly. The same rule with
# the `coefficients` functional gives a posterior for least-squares coefficients that needs no model
# for the noise (here heteroscedastic).

start = time.perf_counter()
post = bk.fit(mt.PolyaUrn(alpha=0.0), {"y": y}, engine=bk.MartingalePosterior(draws=2000 // scale, progress=False),
              seed=1)
mean = post.draws["mean"][0]
lo, hi = band(mean)
direct = rng.dirichlet(np.ones(y.size), 2000) @ y  # Rubin's Bayesian bootstrap, written directly
print(f"(b) Bayesian bootstrap of the mean ({time.perf_counter() - start:.1f} s): posterior mean {mean.mean():.3f}, "
      f"90% interval [{lo:.3f}, {hi:.3f}]; Dirichlet weights directly: {direct.mean():.3f}, "
      f"[{np.quantile(direct, 0.05):.3f}, {np.quantile(direct, 0.95):.3f}]")

X = rng.normal(size=(60, 2))
y_reg = 1.0 + X @ np.array([0.5, -1.0]) + rng.standard_normal(60) * (1 + 0.5 * np.abs(X[:, 0]))  # heteroscedastic
start = time.perf_counter()
post = bk.fit(mt.PolyaUrn(), {"X": X, "y": y_reg}, engine=bk.MartingalePosterior(
    functional=mt.coefficients, draws=1000 // scale, progress=False), seed=2)
beta = post.draws["coefficients"][0]  # (draws, 3): intercept, then one per column of X
lo, hi = band(beta)
ols = np.linalg.lstsq(np.column_stack([np.ones(60), X]), y_reg, rcond=None)[0]
print(f"    Bayesian bootstrap of least squares ({time.perf_counter() - start:.1f} s), truth (1.0, 0.5, -1.0):")
for j, name in enumerate(["intercept", "x1", "x2"]):
    print(f"      {name:9s}  least squares {ols[j]:6.3f}   posterior mean {beta[:, j].mean():6.3f}   "
          f"90% interval [{lo[j]:.3f}, {hi[j]:.3f}]")
print()

# %%
# (c) A conjugate rule
# --------------------
# With the normal model's own predictive as the rule, the martingale posterior of the mean is the
# Bayesian posterior; the draws should match it within Monte Carlo error.

y_c = rng.normal(1.0, 1.5, 30)
rule = mt.NormalNormal(loc=0.0, scale=2.0, noise=1.5)  # y ~ N(θ, 1.5²), θ ~ N(0, 2²)
start = time.perf_counter()
post = bk.fit(rule, {"y": y_c}, engine=bk.MartingalePosterior(horizon=10_000 // scale, draws=4000 // scale,
                                                                  progress=False), seed=3)
theta = post.draws["mean"][0]
exact = rule.exact_posterior({"y": y_c})
m, s = float(exact.mean), float(np.sqrt(exact.variance))
print(f"(c) normal mean, n = {y_c.size}, horizon N = {post.horizon} ({time.perf_counter() - start:.1f} s):")
print(f"      martingale posterior  mean {theta.mean():.4f}  sd {theta.std(ddof=1):.4f}  "
      f"90% [{np.quantile(theta, 0.05):.4f}, {np.quantile(theta, 0.95):.4f}]")
print(f"      exact posterior       mean {m:.4f}  sd {s:.4f}  "
      f"90% [{m + s * stats.norm.ppf(0.05):.4f}, {m + s * stats.norm.ppf(0.95):.4f}]")
print(f"      Monte Carlo standard errors of the draws: mean {s / np.sqrt(theta.size):.4f}, "
      f"sd {s / np.sqrt(2 * theta.size):.4f}")
