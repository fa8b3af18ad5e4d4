"""Amortised GP regression with a PFN: train once on the prior, then predict for new datasets in
one forward pass, next to the exact GP predictive (the Bayes-optimal answer on this prior).

Run: python examples/pfn_gp.py   (BAYESKIT_FAST=1 for a quick smoke run; the full run trains the
tiny CPU configuration, a few minutes on 2 cores, and writes bayeskit-examples/pfn_gp.png; BAYESKIT_OUT sets the folder)
"""

import dataclasses
import os
import tempfile
import time

import jax
import numpy as np

import bayeskit as bk
from bayeskit.models.kernels import RBF
from bayeskit.models.processes import Fixed, ScaleMixtureProcess

fast = os.environ.get("BAYESKIT_FAST") == "1"
OUT = os.environ.get("BAYESKIT_OUT", "bayeskit-examples")  # where figures go, not the working folder itself
process = ScaleMixtureProcess(RBF(lengthscale=0.2), noise=0.01, scale_prior=Fixed())
prior = bk.pfn.ProcessPrior(process)

# 1. train once on datasets drawn from the prior (checkpointed: rerun with resume=True to continue)
training = bk.pfn.TINY
if fast:
    training = dataclasses.replace(training, steps=30, d_model=32, layers=2, border_samples=10_000, warmup=5)
workdir = tempfile.mkdtemp()
start = time.perf_counter()
trained = bk.pfn.train(prior, training, seed=0, checkpoint=os.path.join(workdir, "gp.ckpt"), progress=not fast)
print(f"trained {trained} in {time.perf_counter() - start:.0f} s")
path = os.path.join(workdir, "gp.pfn")
trained.save(path)

# 2. a new dataset: the posterior predictive in one forward pass, and the exact GP beside it
x, y = (np.asarray(a) for a in prior.sample(jax.random.key(7), 1, 25))
data, X_new = {"X": x[0, :12], "y": y[0, :12]}, np.linspace(0, 1, 200)[:, None]
start = time.perf_counter()
pfn = bk.fit(process, data, engine=bk.PFN(network=path)).predict({"X": X_new})
pfn_time = time.perf_counter() - start
exact = bk.fit(process, data, engine=bk.Exact(optimize=False, progress=False)).predict({"X": X_new})
print(f"PFN predictive at 200 points in {pfn_time * 1e3:.0f} ms (network load included)")
print(f"max |mean difference| to the exact GP: {np.max(np.abs(pfn.mean - exact.mean)):.3f} "
      f"(predictive sd about {np.median(exact.stddev):.3f})")

# 3. how far from Bayes-optimal: NLL gap on held-out datasets from the prior (10 context points)
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

if not fast:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for pred, label, color in ((exact, "exact GP", "C0"), (pfn, "PFN", "C1")):
        lo, hi = pred.interval(0.9)
        ax.fill_between(X_new[:, 0], lo, hi, color=color, alpha=0.2)
        ax.plot(X_new[:, 0], pred.mean, color=color, label=f"{label}: mean and 90% interval")
    ax.scatter(data["X"][:, 0], data["y"], color="k", s=12, zorder=3, label="context")
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(OUT, exist_ok=True)
    fig.savefig(os.path.join(OUT, "pfn_gp.png"), dpi=120)
    print(f"wrote {os.path.join(OUT, 'pfn_gp.png')}")
