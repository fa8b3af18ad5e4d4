"""
Neural processes on GP tasks: MPANP, MPNP and CNP against the exact GP
======================================================================

The 1-D GP tasks of the neural-process literature: the shipped MPANP, MPNP and CNP (trained once on RBF
tasks at CPU size, `bk.pfn.pretrained`) against the exact GP with each task's true hyperparameters.

For RBF test tasks and t-noise tasks (RBF plus Student-t(2.1) noise, outside the training prior), each
network's predictive at the targets, given the context, is scored by its log-likelihood per point and
the coverage of its 90% intervals; an MPNP's predictive is the mixture over 50 generated pseudo-context
sets, the CNP's one Gaussian. The exact GP assumes Gaussian noise, so t-noise tasks (outliers) hurt it
most.

Run: `python examples/mpnp_gp.py` (about a minute on 2 cores; `BAYESKIT_FAST=1` for a quick smoke run
with 20 tasks of each kind instead of 200). Train your own:
`bk.pfn.train(gp_tasks("rbf"), bk.pfn.NPTraining(model="mpnp"), checkpoint="mpnp.ckpt")`.
"""

import os

import jax
import numpy as np
from scipy.stats import norm

import bayeskit as bk
from bayeskit.datasets.gp_tasks import NOISE_SD, gp_tasks

fast = os.environ.get("BAYESKIT_FAST") == "1"
tasks = 20 if fast else 200
networks = {"MPANP": bk.pfn.pretrained("mpanp-gp"), "MPNP": bk.pfn.pretrained("mpnp-gp"),
            "CNP": bk.pfn.pretrained("cnp-gp")}


# %%
# The oracle
# ----------
# The exact GP predictive with the kernel and noise each task was drawn with: the best any method can do
# on RBF tasks.


def oracle(process, xc, yc, xt):
    """The exact GP predictive (mean, sd) at xt with the task's true kernel and noise."""
    K = np.asarray(process.kernel(np.concatenate([xc, xt])))
    c = len(xc)
    A = K[:c, :c] + NOISE_SD**2 * np.eye(c)
    mean = K[c:, :c] @ np.linalg.solve(A, yc)
    var = np.diag(K)[c:] - np.einsum("ij,ji->i", K[c:, :c], np.linalg.solve(A, K[:c, c:]))
    return mean, np.sqrt(np.maximum(var, 0) + NOISE_SD**2)


# %%
# Score every method on both kinds of task
# ----------------------------------------
# Each task has 50 points, of which a random 3 to 39 are the context and the rest the targets.
# `bk.NeuralProcess` conditions a network on the context in one forward pass.

for kind in ("rbf", "t-noise"):
    prior = gp_tasks(kind)
    x, y, params = prior.sample_with_parameters(jax.random.PRNGKey(11), tasks, 50)
    x, y = np.asarray(x), np.asarray(y)
    rng = np.random.default_rng(0)
    scores = {name: [] for name in (*networks, "exact GP")}
    covered = {name: [] for name in scores}
    for t in range(tasks):
        n = int(rng.integers(3, 40))
        xc, yc, xt, yt = x[t, :n], y[t, :n], x[t, n:], y[t, n:]
        for name, network in networks.items():
            post = bk.fit(prior.process, {"X": xc, "y": yc}, engine=bk.NeuralProcess(network=network), seed=t)
            pred = post.predict({"X": xt}, seed=t)
            lo, hi = pred.interval(0.9)
            scores[name].append(pred.log_prob(yt).mean())
            covered[name].append(np.mean((yt >= lo) & (yt <= hi)))
        mean, sd = oracle(jax.tree_util.tree_map(lambda a, t=t: a[t], params["process"]), xc, yc, xt)
        scores["exact GP"].append(norm.logpdf(yt, mean, sd).mean())
        covered["exact GP"].append(np.mean(np.abs(yt - mean) <= norm.ppf(0.95) * sd))
    print(f"{kind} tasks ({tasks}): target log-likelihood per point (± SE) and 90% interval coverage")
    for name in scores:
        s = np.array(scores[name])
        print(f"  {name:9s} {s.mean():8.3f} ± {s.std(ddof=1) / np.sqrt(len(s)):.3f}   coverage "
              f"{np.mean(covered[name]):.2f}")
