"""
Amortised GP regression with a PFN
==================================

A prior-data fitted network (PFN) is trained once on datasets drawn from a prior, here a GP with an RBF
kernel; afterwards it predicts for a new dataset in one forward pass, with no fitting. Beside it, the
exact GP predictive, which is the Bayes-optimal answer on this prior, so the gap between the two is
the network's error.

Run: `python examples/pfn_gp.py` (`BAYESKIT_FAST=1` for a quick smoke run with a much smaller network and
30 training steps; the full run trains the tiny CPU configuration, a few minutes on 2 cores, and writes
`bayeskit-examples/pfn_gp.png`; BAYESKIT_OUT sets the folder).
"""

import dataclasses
import os
import tempfile
import time

import jax
import numpy as np
from matplotlib.figure import Figure

import bayeskit as bk
from bayeskit.models.kernels import RBF
from bayeskit.models.processes import Fixed, ScaleMixtureProcess

fast = os.environ.get("BAYESKIT_FAST") == "1"
OUT = os.environ.get("BAYESKIT_OUT", "bayeskit-examples")  # where figures go, not the working folder itself
process = ScaleMixtureProcess(RBF(lengthscale=0.2), noise=0.01, scale_prior=Fixed())
prior = bk.pfn.ProcessPrior(process)

# %%
# Train once on the prior
# -----------------------
# `bk.pfn.ProcessPrior` samples datasets from the process; `bk.pfn.train` fits the transformer to predict
# held-out points of each from the rest (checkpointed: rerun with `resume=True` to continue). The
# network is saved to a file, which is what a user would ship.

training = bk.pfn.TINY
if fast:
    training = dataclasses.replace(training, steps=30, d_model=32, layers=2, border_samples=10_000, warmup=5)
workdir = tempfile.mkdtemp()
start = time.perf_counter()
trained = bk.pfn.train(prior, training, seed=0, checkpoint=os.path.join(workdir, "gp.ckpt"), progress=not fast)
print(f"trained {trained} in {time.perf_counter() - start:.0f} s")
path = os.path.join(workdir, "gp.pfn")
trained.save(path)

# %%
# Predict for a new dataset
# -------------------------
# `bk.fit` with `bk.PFN` conditions on the context in one forward pass; the exact GP beside it.

x, y = (np.asarray(a) for a in prior.sample(jax.random.key(7), 1, 25))
data, X_new = {"X": x[0, :12], "y": y[0, :12]}, np.linspace(0, 1, 200)[:, None]
start = time.perf_counter()
pfn = bk.fit(process, data, engine=bk.PFN(network=path)).predict({"X": X_new})
pfn_time = time.perf_counter() - start
exact = bk.fit(process, data, engine=bk.Exact(optimize=False, progress=False)).predict({"X": X_new})
print(f"PFN predictive at 200 points in {pfn_time * 1e3:.0f} ms (network load included)")
print(f"max |mean difference| to the exact GP: {np.max(np.abs(pfn.mean - exact.mean)):.3f} "
      f"(predictive sd about {np.median(exact.stddev):.3f})")

# %%
# Both predictives
# ----------------

fig = Figure(figsize=(7, 3.5), layout="constrained")
ax = fig.subplots()
for pred, label, color in ((exact, "exact GP", "C0"), (pfn, "PFN", "C1")):
    lo, hi = pred.interval(0.9)
    ax.fill_between(X_new[:, 0], lo, hi, color=color, alpha=0.2)
    ax.plot(X_new[:, 0], pred.mean, color=color, label=f"{label}: mean and 90% interval")
ax.scatter(data["X"][:, 0], data["y"], color="k", s=12, zorder=3, label="context")
ax.legend(fontsize=8)
os.makedirs(OUT, exist_ok=True)
fig.savefig(os.path.join(OUT, "pfn_gp.png"), dpi=120)
print(f"wrote {os.path.join(OUT, 'pfn_gp.png')}")

# %%
# How far from Bayes-optimal
# --------------------------
# The gap in negative log-likelihood per held-out point to the exact GP, on new datasets from the
# prior with 10 context points each (0 is the best a network can do).

engine = bk.PFN(network=trained)
xs, ys = (np.asarray(a) for a in prior.sample(jax.random.key(8), 10 if fast else 100, 20))
gaps = []
for xi, yi in zip(xs, ys, strict=True):
    d = {"X": xi[:10], "y": yi[:10]}
    q = {"X": xi[10:]}
    gaps.append(np.mean(bk.fit(process, d, engine=bk.Exact(optimize=False, progress=False)).predict(q).log_prob(yi[10:])
                        - bk.fit(process, d, engine=engine).predict(q).log_prob(yi[10:])))
gaps = np.asarray(gaps)
print(f"NLL gap to the exact GP: {gaps.mean():.3f} ± {gaps.std(ddof=1) / np.sqrt(gaps.size):.3f} nats per point")

