"""
Learning-curve extrapolation with LC-PFN
========================================

LC-PFN (Adriaensen et al., NeurIPS 2023): from the first epochs of a training run, predict the rest of
the curve with intervals, in one forward pass of the shipped network, next to NUTS on the same
parametric prior (the paper's MCMC baseline).

Run: `python examples/lcpfn.py` (`BAYESKIT_FAST=1` for a quick smoke run with a short NUTS run; figures
go to `bayeskit-examples/lcpfn.png`; BAYESKIT_OUT sets the folder).
"""

import os
import time

import jax
import numpy as np
from matplotlib.figure import Figure

import bayeskit as bk
from bayeskit.models.learning_curves import (
    EPOCHS,
    learning_curve_model,
    mean_curve,
    predictive_log_lik,
    sample_curves,
)

jax.config.update("jax_enable_x64", True)
fast = os.environ.get("BAYESKIT_FAST") == "1"
OUT = os.environ.get("BAYESKIT_OUT", "bayeskit-examples")  # where figures go, not the working folder itself

# %%
# A learning curve
# ----------------
# One curve from the prior (a mixture of pow3, ilog2 and janoschek curves, improving, in [0, 1]), seen up
# to epoch 15 of 100.

y, f = (np.asarray(a[0]) for a in sample_curves(jax.random.key(3), 1))
t = np.arange(1.0, EPOCHS + 1)
cutoff = 15
data, future = {"X": t[:cutoff], "y": y[:cutoff]}, {"X": t[cutoff:]}

# %%
# LC-PFN: one forward pass
# ------------------------
# The shipped network (`bk.pfn.PRETRAINED` says how it was trained) behind `bk.PFN`; the first call
# compiles the pass, the second is timed.

lc_pfn = bk.pfn.pretrained("lc-tiny")
engine = bk.PFN(network=lc_pfn)
bk.fit(learning_curve_model, data, engine=engine).predict(future)  # the first call compiles the pass
start = time.perf_counter()
pfn = bk.fit(learning_curve_model, data, engine=engine).predict(future)
pfn_time = time.perf_counter() - start
lo, hi = pfn.interval(0.9)
print(f"LC-PFN ({pfn_time * 1e3:.1f} ms): epoch 100 predicted {pfn.mean[-1]:.3f}, 90% interval "
      f"[{lo[-1]:.3f}, {hi[-1]:.3f}]; observed {y[-1]:.3f}")
print(f"held-out log-likelihood per epoch: {pfn.log_prob(y[cutoff:]).mean():.3f}")

# %%
# NUTS on the same model
# ----------------------
# The posterior over the curve's parameters, then its predictive for the remaining epochs.

start = time.perf_counter()
nuts = bk.NUTS(init="sample", progress=False)
if fast:
    nuts = bk.NUTS(chains=2, warmup=100, draws=100, init="sample", progress=False)
post = bk.fit(learning_curve_model, data, engine=nuts, seed=1)
draws = post.sample(1000 if fast else 4000)
nuts_time = time.perf_counter() - start
nuts_ll = float(np.mean(predictive_log_lik(draws, t[cutoff:], y[cutoff:])))
print(f"NUTS ({nuts_time:.1f} s, {nuts_time / pfn_time:.0f}x the PFN's time): held-out log-likelihood "
      f"per epoch {nuts_ll:.3f}")

# %%
# Both predictives
# ----------------

params = {k: v for k, v in draws.items() if "." in k}
curves = np.asarray(mean_curve(t[cutoff:], draws["weights"], params))  # (S, 85)
sigma = np.exp(draws["log_sigma"])[:, None]
rng = np.random.default_rng(0)
nuts_y = curves + sigma * rng.standard_normal(curves.shape)
fig = Figure(figsize=(7, 3.5), layout="constrained")
ax = fig.subplots()
ax.fill_between(t[cutoff:], lo, hi, color="C1", alpha=0.25, label="LC-PFN 90% interval")
ax.plot(t[cutoff:], pfn.mean, color="C1", label="LC-PFN mean")
ax.plot(t[cutoff:], np.quantile(nuts_y, 0.05, 0), "C0--", lw=1, label="NUTS 90% interval")
ax.plot(t[cutoff:], np.quantile(nuts_y, 0.95, 0), "C0--", lw=1)
ax.scatter(t, y, s=6, color="k", label="curve (first 15 epochs seen)")
ax.axvline(cutoff + 0.5, color="gray", lw=0.5)
ax.set_xlabel("epoch")
ax.legend(fontsize=8)
os.makedirs(OUT, exist_ok=True)
fig.savefig(os.path.join(OUT, "lcpfn.png"), dpi=120)
print(f"wrote {os.path.join(OUT, 'lcpfn.png')}")
