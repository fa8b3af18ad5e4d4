"""
Linear regression with NUTS: fit, then predict at new inputs
============================================================

The smallest complete workflow: a NumPyro model function, `bk.fit` with NUTS, the summary table, and
the posterior predictive at inputs the model has not seen, with intervals.

Run: `python examples/regression_predict.py` (`BAYESKIT_FAST=1` for a quick smoke run).
"""

import os

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
from matplotlib.figure import Figure

import bayeskit as bk

jax.config.update("jax_enable_x64", True)
fast = os.environ.get("BAYESKIT_FAST") == "1"

# %%
# The model
# ---------
# Inputs are keyword arguments; the observed site `y` defaults to None so the same function simulates.


def model(x, y=None):
    intercept = numpyro.sample("intercept", dist.Normal(0.0, 10.0))
    slope = numpyro.sample("slope", dist.Normal(0.0, 10.0))
    noise = numpyro.sample("noise", dist.HalfNormal(2.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(intercept + slope * x, noise), obs=y)


# %%
# Fit
# ---
# 50 points from y = 2 + 0.5 x + N(0, 1).

rng = np.random.default_rng(0)
x = rng.uniform(0, 10, 50)
y = 2.0 + 0.5 * x + rng.normal(0, 1.0, 50)

post = bk.fit(model, data={"x": x, "y": y}, seed=0,
              engine=bk.NUTS(warmup=300 if fast else 1000, draws=300 if fast else 1000, progress=False))
print(post.summary().to_string())

# %%
# Predict
# -------
# `post.predict` runs the model forward at new inputs once per posterior draw: the replicates include
# the noise, so their quantiles are predictive intervals, wider than the band of the regression line.

x_new = np.linspace(-2, 12, 8)
y_new = post.predict({"x": x_new}, seed=1)["y"]
lo, mid, hi = np.quantile(y_new, [0.05, 0.5, 0.95], axis=0)
for xi, a, b, c in zip(x_new, lo, mid, hi, strict=True):
    print(f"x = {xi:5.1f}: median {b:6.2f}, 90% interval [{a:6.2f}, {c:6.2f}]")

grid = np.linspace(-2, 12, 100)
y_grid = post.predict({"x": grid}, seed=2)["y"]
line = post.draws["intercept"].reshape(-1, 1) + post.draws["slope"].reshape(-1, 1) * grid
fig = Figure(figsize=(7, 3.5), layout="constrained")
ax = fig.subplots()
ax.fill_between(grid, *np.quantile(y_grid, [0.05, 0.95], axis=0), alpha=0.2, label="90% predictive interval")
ax.fill_between(grid, *np.quantile(line, [0.05, 0.95], axis=0), alpha=0.4, label="90% band of the line")
ax.scatter(x, y, s=8, color="k", label="data")
ax.legend(fontsize=8)
