"""Eight schools, end to end: fit with NUTS, check convergence, look at the posterior, save it.

Run: python examples/eight_schools.py   (BAYESKIT_FAST=1 for a quick smoke run)
"""

import os

import jax
import numpy as np

import bayeskit as bk
from bayeskit.datasets import eight_schools
from bayeskit.diagnostics import check, save_rank_plot, save_trace_plot

jax.config.update("jax_enable_x64", True)
fast = os.environ.get("BAYESKIT_FAST") == "1"
draws = 200 if fast else 1000

# 1. Fit: a NumPyro model function, its data as keyword arguments, an engine, a seed.
post = bk.fit(eight_schools.model, data=eight_schools.DATA, engine=bk.NUTS(chains=4, warmup=draws, draws=draws),
              seed=0)

# 2. Convergence: R-hat, ESS, divergences, E-BFMI (fit already warned if anything was off).
report = check(post)
print(f"max R-hat {report.max_rhat:.3f}, min ESS_bulk {report.min_ess_bulk:.0f}, divergences {report.divergences}")

# 3. The posterior: summary table and plots.
print(post.summary().loc[["mu", "tau"]])
out = os.path.join(os.environ.get("BAYESKIT_OUT", "bayeskit-examples"), "eight-schools")
os.makedirs(out, exist_ok=True)
save_trace_plot(post, f"{out}/trace.png", var_names=["mu", "tau"])
save_rank_plot(post, f"{out}/rank.png", var_names=["mu", "tau"])

# 4. Posterior predictive check: how often is a replicated school effect more extreme than observed?
y_rep = post.predict(seed=1)["y"]
p_values = (np.abs(y_rep) >= np.abs(eight_schools.DATA["y"])).mean(axis=0)
print("posterior predictive p-values of |y|:", np.round(p_values, 2))

# 5. Save and load back (netCDF, ArviZ's layout).
post.save(f"{out}/posterior.nc")
back = bk.load(f"{out}/posterior.nc", model=eight_schools.model)
assert np.array_equal(back.draws["tau"], post.draws["tau"])
print(f"saved to {out}/posterior.nc")
