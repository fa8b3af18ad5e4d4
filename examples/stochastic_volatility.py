"""
Stochastic volatility with sequential Monte Carlo: filter, smooth, de-bias, learn
=================================================================================

x_0 ~ N(μ, σ²/(1 − ρ²)), x_{t+1} = μ + ρ(x_t − μ) + σ ε, y_t ~ N(0, exp(x_t)): the log-volatility x_t of
a return series y_t follows an AR(1). On simulated returns: a bootstrap particle filter (log-likelihood,
filtering bands), PaRIS smoothing of the mean log-volatility with accept-reject backward draws, PaRIS
particle Gibbs, maximum likelihood of (ρ, σ) by stochastic gradient on the PaRIS score with standard
errors from the observed information, and a forecast beyond the data. The smoothed log-volatility is
drawn at the end (and written to `bayeskit-examples/sv_smoothing.png`; BAYESKIT_OUT sets the folder).

Run: `python examples/stochastic_volatility.py` (`BAYESKIT_FAST=1` for a quick smoke run).
"""

import os

import jax
import numpy as np
import optax
from matplotlib.figure import Figure

import bayeskit as bk
from bayeskit.engines.smc import Learn
from bayeskit.models.state_space import StochasticVolatility

jax.config.update("jax_enable_x64", True)
fast = os.environ.get("BAYESKIT_FAST") == "1"
OUT = os.environ.get("BAYESKIT_OUT", "bayeskit-examples")  # where figures go, not the working folder itself
T = 200 if fast else 1000

truth = StochasticVolatility(mu=-1.0, rho=0.95, sigma=0.3)
x_true, y = truth.simulate(jax.random.key(0), T)
y = np.asarray(y)[:, 0]
print(f"{T} returns simulated from {truth}")

# %%
# Filter
# ------
# 20 independent runs of a bootstrap filter with N = 1,000 particles, in one vectorised call. The
# spread of log p̂(y) over the runs says how precise the likelihood estimate is.

post = bk.fit(truth, data={"y": y}, engine=bk.ParticleFilter(n_particles=1000, runs=20), seed=1)
print(f"log p(y) ≈ {post.log_likelihood:.2f} (sd over runs {post.log_likelihood_runs.std():.2f}); "
      f"mean ESS {post.ess.mean():.0f} of 1000")

# %%
# Smooth
# ------
# Three estimates of the same smoothing expectation, E[mean_t x_t | y]: joint paths by backward
# simulation from the filter, PaRIS (an additive functional updated online, with accept-reject
# backward draws), and particle Gibbs with PaRIS inside (a Markov chain of conditional SMC sweeps,
# de-biased in the number of particles).

paths = post.sample(200, seed=2)["x"][..., 0]
mean_x = lambda x, x_next, t: x_next[..., 0] / T  # noqa: E731  (the x_0 term is added by initial_functional)
paris = bk.fit(truth, data={"y": y}, seed=3,
               engine=bk.PaRIS(n_particles=500, functional=mean_x, initial_functional=lambda x: x[:, 0] / T,
                               backward="rejection", runs=10))
gibbs = bk.fit(truth, data={"y": y}, seed=4,
               engine=bk.ParticleGibbs(n_particles=64, functional=mean_x, initial_functional=lambda x: x[:, 0] / T,
                                       sweeps=10 if fast else 30, burn_in=3 if fast else 10))
print(f"E[mean log-volatility | y]: PaRIS {paris.functional[0]:.4f}, particle Gibbs {gibbs.functional[0]:.4f}, "
      f"backward-simulation paths {paths.mean():.4f}, true path {float(np.mean(x_true)):.4f}")

# %%
# Learn the parameters
# --------------------
# Maximum likelihood of (ρ, σ) from a wrong start, by stochastic gradient on the PaRIS estimate of the
# score (a cosine-decayed rate settles on the optimum), with standard errors from the observed
# information (Louis' identity), estimated by the same smoother.

steps = 30 if fast else 300
start = StochasticVolatility(mu=-1.0, rho=0.7, sigma=0.6)
learned = bk.fit(start, data={"y": y}, seed=5, engine=bk.PaRIS(
    n_particles=100, runs=8, progress=not fast,
    learn=Learn(params=("rho", "sigma"), steps=steps, learning_rate=optax.cosine_decay_schedule(0.05, steps))))
se = learned.standard_errors
print(f"learned rho = {float(learned.learned.rho):.3f} ± {float(se['rho']):.3f}, "
      f"sigma = {float(learned.learned.sigma):.3f} ± {float(se['sigma']):.3f} (truth 0.95, 0.3; start 0.7, 0.6)")

# %%
# Forecast
# --------
# Log-volatility and returns 5 steps beyond the data, simulated forward from the last filtering
# distribution by `post.predict`.

forecast = post.predict({"steps": 5}, seed=6, n=2000)
print(f"5-step forecast: mean log-volatility {np.round(forecast['x'][..., 0].mean(0), 3).tolist()}, "
      f"sd of returns {np.round(forecast['y'][..., 0].std(0), 3).tolist()}")

# %%
# The smoothed log-volatility
# ---------------------------
# The band of the backward-simulated paths against the true path and the filtering mean. The figure
# is a bare matplotlib `Figure` (no pyplot state).

fig = Figure(figsize=(9, 3.5), layout="constrained")
ax = fig.subplots()
lo, hi = np.percentile(paths, [5, 95], axis=0)
ax.fill_between(np.arange(T), lo, hi, alpha=0.3, label="smoothing 90% band")
ax.plot(np.asarray(x_true)[:, 0], lw=0.8, color="k", label="true log-volatility")
ax.plot(post.filter_mean[:, 0], lw=0.8, label="filtering mean")
ax.legend(loc="upper right")
ax.set_xlabel("t")
os.makedirs(OUT, exist_ok=True)
fig.savefig(os.path.join(OUT, "sv_smoothing.png"), dpi=120)
print(f"wrote {os.path.join(OUT, 'sv_smoothing.png')}")
