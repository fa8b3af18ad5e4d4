"""Posterior predictive of a GP with hyperpriors: one PFN forward pass against bayeskit's NUTS
on the same model, side by side in one process.

Model: y = f(x) + ε on [0, 1], f ~ GP(0, RBF(ℓ)), ℓ ~ LogNormal(log 0.2, 0.5), ε variance
ν ~ LogNormal(log 0.01, 0.5) (σ² = 1). The PFN is trained on datasets from exactly this prior
(`bk.pfn.ProcessPrior`); NUTS samples (ℓ, ν) given each dataset (`numpyro_model`, f integrated
out exactly), and its predictive is the mixture over draws of the exact GP predictives.

For each of D held-out datasets from the prior (n context points, 100 test points):
* time: the PFN's `bk.fit` + `predict` (one forward pass) against NUTS's `bk.fit` (1 chain,
  500 warm-up, 500 draws; compiled once, the first fit excluded) + its predictive mixture;
* held-out NLL per test point of both.
Reported per context size: the time ratio (NUTS / PFN, medians; goal ≥ 1000×) and both NLLs
(the PFN approximates the same Bayes predictive NUTS targets, so equal NLLs mean it has learned
it; their difference is the gap curve).

    python benchmarks/pfn_vs_nuts.py [--network gp_hyper.pfn] [--save gp_hyper.pfn] [--datasets 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import numpyro.distributions as dist  # noqa: E402

import bayeskit as bk  # noqa: E402
from bayeskit.models.kernels import RBF  # noqa: E402
from bayeskit.models.processes import Fixed, ScaleMixtureProcess, numpyro_model  # noqa: E402

PROCESS = ScaleMixtureProcess(RBF(lengthscale=0.2), noise=0.01, scale_prior=Fixed())
PRIORS = {"kernel.lengthscale": dist.LogNormal(np.log(0.2), 0.5), "noise": dist.LogNormal(np.log(0.01), 0.5)}
N_TEST = 100


def mixture_log_prob(lengthscales, noises, X, y, X_test, y_test):
    """log (1/S) Σ_s N(y* | exact GP predictive at draw s), per test point. NumPy (batched solves):
    the same computation compiled by XLA hung intermittently with XLA's default CPU scheduler (two
    batched LAPACK kernels at once deadlock its thread pool; `benchmarks/repro_lapack_hang.py`).
    `import bayeskit` now turns that scheduler off; the NumPy version stays, as timed before."""
    from scipy.special import logsumexp
    from scipy.stats import norm

    def rbf(a, b, ell):  # (S, n, m) for S lengthscales
        d2 = (a[:, 0][None, :, None] - b[:, 0][None, None, :]) ** 2
        return np.exp(-0.5 * d2 / ell[:, None, None] ** 2)

    A = rbf(X, X, lengthscales) + noises[:, None, None] * np.eye(X.shape[0])
    Ks = rbf(X, X_test, lengthscales)  # (S, n, m)
    mean = np.einsum("snm,sn->sm", Ks, np.linalg.solve(A, np.broadcast_to(y, (len(noises), y.size))[..., None])[..., 0])
    var = 1.0 + noises[:, None] - np.einsum("snm,snm->sm", Ks, np.linalg.solve(A, Ks))
    lp = norm.logpdf(y_test, mean, np.sqrt(var))  # (S, m)
    return logsumexp(lp, 0) - np.log(lp.shape[0])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", help="a saved PFN for this prior (else one is trained with bk.pfn.TINY)")
    p.add_argument("--save", help="where to save the trained network")
    p.add_argument("--steps", type=int, help="training steps (default: TINY's)")
    p.add_argument("--datasets", type=int, default=20)
    p.add_argument("--context", type=int, nargs="+", default=[5, 10, 20, 30])
    args = p.parse_args(argv)
    prior = bk.pfn.ProcessPrior(PROCESS, PRIORS)
    if args.network:
        trained = bk.pfn.load(args.network)
    else:
        training = bk.pfn.TINY if args.steps is None else dataclasses.replace(
            bk.pfn.TINY, steps=args.steps, warmup=min(bk.pfn.TINY.warmup, args.steps // 10))
        start = time.perf_counter()
        trained = bk.pfn.train(prior, training, seed=0)
        print(f"trained in {time.perf_counter() - start:.0f} s")
        if args.save:
            trained.save(args.save)
    model = numpyro_model(PROCESS, PRIORS)
    nuts = bk.NUTS(chains=1, warmup=500, draws=500, progress=False)
    pfn = bk.PFN(network=trained)
    se = lambda a: a.std(ddof=1) / np.sqrt(a.size)  # noqa: E731
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; JAX {jax.__version__}; "
          f"{trained!r}; {args.datasets} datasets per row\n")
    print("| context points | PFN ms / dataset | NUTS ms / dataset | speed-up | PFN NLL / point | NUTS NLL / point "
          "| PFN − NUTS |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.context:
        # owning copies (kept from when this benchmark hung; the cause was XLA's scheduler, see above)
        x, y = (np.array(a, copy=True) for a in prior.sample(jax.random.key(2026 + n), args.datasets, n + N_TEST))
        bk.fit(model, {"X": x[0, :n], "y": y[0, :n]}, engine=nuts, seed=0)  # compile once per size
        bk.fit(PROCESS, {"X": x[0, :n], "y": y[0, :n]}, engine=pfn).predict({"X": x[0, n:]})  # warm torch up
        # all PFN fits, then all NUTS fits (kept from when interleaving seemed to matter to the hang)
        t_pfn, nll_pfn, t_nuts, nll_nuts = (np.empty(args.datasets) for _ in range(4))
        for i in range(args.datasets):
            t0 = time.perf_counter()
            lp = bk.fit(PROCESS, {"X": x[i, :n], "y": y[i, :n]}, engine=pfn).predict({"X": x[i, n:]}).log_prob(y[i, n:])
            t_pfn[i], nll_pfn[i] = time.perf_counter() - t0, -lp.mean()
        for i in range(args.datasets):
            data, test = {"X": x[i, :n], "y": y[i, :n]}, {"X": x[i, n:]}
            t0 = time.perf_counter()
            draws = bk.fit(model, data, engine=nuts, seed=i).sample(500)
            lp = mixture_log_prob(draws["kernel.lengthscale"], draws["noise"], data["X"], data["y"], test["X"],
                                  y[i, n:])
            t_nuts[i], nll_nuts[i] = time.perf_counter() - t0, -lp.mean()
        diff = nll_pfn - nll_nuts
        print(f"| {n} | {1e3 * np.median(t_pfn):.2f} | {1e3 * np.median(t_nuts):.0f} "
              f"| {np.median(t_nuts) / np.median(t_pfn):.0f}× | {nll_pfn.mean():.3f} ± {se(nll_pfn):.3f} "
              f"| {nll_nuts.mean():.3f} ± {se(nll_nuts):.3f} | {diff.mean():+.3f} ± {se(diff):.3f} |", flush=True)


if __name__ == "__main__":
    main()
