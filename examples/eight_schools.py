"""
Eight schools with NUTS: two parametrisations, checks and comparison
=====================================================================

The eight schools data (Rubin 1981): the estimated effect of coaching in eight schools, each with its
standard error. A hierarchical model pools the schools towards a common mean `mu`, by an amount set by
the spread `tau` that the data estimate. The model can be written two ways: *centred* (school effects
drawn around `mu`) and *non-centred* (standardised effects scaled by `tau`). They are the same model,
but not the same geometry for a sampler: the centred form has a funnel that NUTS struggles in.

This page fits both with `bk.NUTS`, reads the convergence checks, compares the two by LOO with ArviZ,
checks the posterior predictive, and saves the fit.

Run: `python examples/eight_schools.py` (`BAYESKIT_FAST=1` for a quick smoke run).
"""

import os
import warnings

import arviz as az
import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

import bayeskit as bk
from bayeskit.datasets import eight_schools
from bayeskit.diagnostics import check

jax.config.update("jax_enable_x64", True)
fast = os.environ.get("BAYESKIT_FAST") == "1"
draws = 200 if fast else 1000
out = os.path.join(os.environ.get("BAYESKIT_OUT", "bayeskit-examples"), "eight-schools")
os.makedirs(out, exist_ok=True)
print({k: np.round(v, 1).tolist() for k, v in eight_schools.DATA.items()})

# %%
# Two parametrisations
# --------------------
# `eight_schools.model` is the non-centred model of posteriordb (`theta = mu + tau * theta_trans`,
# `theta_trans ~ N(0, 1)`). The centred one draws `theta ~ N(mu, tau)` directly; it is written here as
# a NumPyro model function, the form every general engine takes.


def centred(sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("J", len(sigma)):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


# %%
# Fit both with NUTS
# ------------------
# A model, its data as keyword arguments, an engine, a seed. `bk.fit` warns after the fit if the
# chains did not converge; `check` gives the numbers: R-hat, effective sample sizes, divergent
# transitions and E-BFMI. The centred fit is expected to show divergences (the funnel at small `tau`).

engine = bk.NUTS(chains=4, warmup=draws, draws=draws, progress=False)
fits = {"centred": bk.fit(centred, data=eight_schools.DATA, engine=engine, seed=0),
        "non-centred": bk.fit(eight_schools.model, data=eight_schools.DATA, engine=engine, seed=0)}
for name, post in fits.items():
    report = check(post)
    print(f"{name:>11}: max R-hat {report.max_rhat:.3f}, min ESS_bulk {report.min_ess_bulk:.0f}, "
          f"divergences {report.divergences}")

post = fits["non-centred"]
print(post.summary().loc[["mu", "tau"]].to_string())

# %%
# Traces and ranks
# ----------------
# `post.to_arviz()` is an ArviZ `InferenceData` with the posterior, sample statistics, the pointwise
# log-likelihood, posterior predictive replicates and the observed data, so every ArviZ plot works on
# it. Rank histograms are flat when the chains agree. (`bayeskit.diagnostics.save_trace_plot` and
# `save_rank_plot` write the same plots to files.)

idata = {name: fit.to_arviz() for name, fit in fits.items()}
trace = np.ravel(az.plot_trace(idata["non-centred"], var_names=["mu", "tau"], compact=False))[0].figure
trace.tight_layout()
trace.savefig(f"{out}/trace.png", dpi=80)
ranks = np.ravel(az.plot_rank(idata["centred"], var_names=["tau"], figsize=(6, 3)))[0].figure
ranks.suptitle("centred: ranks of tau per chain")
ranks.savefig(f"{out}/rank_centred.png", dpi=80)

# %%
# Compare by LOO
# --------------
# Both fits carry the pointwise log-likelihood, so PSIS-LOO and `az.compare` apply directly. The two
# parametrisations are one model, so their expected log predictive densities should agree within the
# standard error of the difference; what differs is how well the sampler explored it (Pareto k and
# the checks above).

comparison = az.compare(idata, ic="loo")
print(comparison[["rank", "elpd_loo", "p_loo", "elpd_diff", "dse", "warning"]].round(2).to_string())
for name, data in idata.items():
    with warnings.catch_warnings():  # ArviZ warns of k > 0.7 (already flagged by `compare`); printed here
        warnings.simplefilter("ignore", UserWarning)
        k = az.loo(data, pointwise=True).pareto_k.values
    print(f"{name:>11}: largest Pareto k {k.max():.2f} (above 0.7: PSIS-LOO unreliable for that school)")

# %%
# Posterior predictive checks
# ---------------------------
# Replicated data against the observed effects: the density overlay, the LOO-PIT (uniform when the
# leave-one-out predictive is calibrated), and a p-value per school of how often a replicated
# effect is more extreme than the observed one.

ppc = np.ravel(az.plot_ppc(idata["non-centred"], num_pp_samples=100, random_seed=0, figsize=(6, 3)))[0].figure
ppc.savefig(f"{out}/ppc.png", dpi=80)
loo_pit = np.ravel(az.plot_loo_pit(idata["non-centred"], y="y", figsize=(6, 3)))[0].figure
loo_pit.savefig(f"{out}/loo_pit.png", dpi=80)

y_rep = post.predict(seed=1)["y"]
p_values = (np.abs(y_rep) >= np.abs(eight_schools.DATA["y"])).mean(axis=0)
print("posterior predictive p-values of |y|:", np.round(p_values, 2))

# %%
# Save and load
# -------------
# One netCDF file in ArviZ's layout (`az.from_netcdf` reads it too); `bk.load` gives back a Posterior.

post.save(f"{out}/posterior.nc")
back = bk.load(f"{out}/posterior.nc", model=eight_schools.model)
assert np.array_equal(back.draws["tau"], post.draws["tau"])
print(f"saved to {out}/posterior.nc and loaded back")

# %%
# A report to hand on
# -------------------
# One self-contained HTML page: engine settings, versions, every check with its threshold and what it
# means, the summary and the plots (``bayeskit report posterior.nc`` makes the same from the file).

page = post.report(f"{out}/report.html", title="Eight schools (non-centred), NUTS")
print(f"report: {page}")
