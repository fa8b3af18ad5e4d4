"""
Chains and particle runs across processes
=========================================

The same script runs as one process (``python examples/distributed.py``) or as several processes of one
JAX distributed runtime (``bayeskit launch -n 2 examples/distributed.py``): NUTS chains and PaRIS runs
are split into contiguous blocks, one per process, and every process gets the whole Posterior. The draws
and estimates are the same, bit for bit on CPU, whatever the number of processes (docs/distributed.md).
"""

import numpy as np
import numpyro
import numpyro.distributions as dist

import bayeskit as bk
from bayeskit.core import distributed
from bayeskit.models.state_space import LinearGaussian

print(f"process {distributed.process_index()} of {distributed.process_count()}, "
      f"devices here: {distributed.local_devices()}, chains here: {list(distributed.block(8))}")


def model(x, y=None):
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([2]))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    numpyro.sample("y", dist.Normal(x @ w, sigma), obs=y)


rng = np.random.default_rng(0)
x = rng.standard_normal((50, 2))
post = bk.fit(model, data={"x": x, "y": x @ np.array([1.0, -0.5]) + 0.3 * rng.standard_normal(50)},
              engine=bk.NUTS(chains=8, warmup=200, draws=200, progress=False), seed=0)
if distributed.is_root():  # every process has the Posterior; one of them prints it
    print(post.summary())

# %%
# PaRIS runs are spread the same way (in blocks of four runs, whatever the layout).
smc = bk.fit(LinearGaussian.scalar(a=0.9, q=1.0, r=1.0), {"y": rng.standard_normal(50)},
             engine=bk.PaRIS(n_particles=128, functional="score", runs=8, progress=False), seed=0)
if distributed.is_root():
    print("score estimate", np.round(smc.functional, 3), "from", smc.functional_runs.shape[0], "runs")
