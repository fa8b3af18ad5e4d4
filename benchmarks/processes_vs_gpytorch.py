"""bayeskit's exact Gaussian process vs GPyTorch's ExactGP: type-II ML fit and prediction.

Same data, same kernel (scaled RBF), same model (outputscale·RBF + noise·I), same optimiser
(Adam, same learning rate and steps, same initial values), same precision (float64), exact
Cholesky on both sides, one process. Prints wall times, their ratios and peak host RSS.

    python benchmarks/processes_vs_gpytorch.py                 # N = 2,000
    python benchmarks/processes_vs_gpytorch.py --n 1000 --steps 20

The matrix-free comparison at N = 20,000 and 50,000 needs bayeskit's GPyTorch backend
(issue 3, not yet built); this script covers the exact (Cholesky) regime.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import gpytorch  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from measure import PeakRSS  # noqa: E402  (benchmarks/measure.py)

import bayeskit as bk  # noqa: E402
from bayeskit.models.kernels import RBF  # noqa: E402
from bayeskit.models.processes import Fixed, ScaleMixtureProcess  # noqa: E402

torch.set_default_dtype(torch.float64)


def make_data(n, n_test, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, (n + n_test, 2))
    y = np.sin(X[:, 0]) * np.cos(X[:, 1]) + 0.1 * rng.standard_normal(n + n_test)
    return X[:n], y[:n], X[n:], y[n:]


def run_bayeskit(X, y, Xt, steps, lr):
    process = ScaleMixtureProcess(RBF(variance=1.0, lengthscale=1.0), noise=0.1, scale_prior=Fixed(1.0))
    engine = bk.Exact(steps=steps, learning_rate=lr, fixed=("scale_prior.value",), progress=False)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        post = bk.fit(process, data={"X": X, "y": y}, engine=engine)
        t1 = time.perf_counter()
        pred = post.predict({"X": Xt})
        mean, var = np.asarray(pred.mean), np.asarray(pred.variance)
        t2 = time.perf_counter()
    h = post.hyperparameters()
    return dict(fit=t1 - t0, predict=t2 - t1, mean=mean, var=var, mib=mem.extra_mib, lml=post.log_marginal_likelihood,
                hyper=(float(h["kernel.variance"]), float(h["kernel.lengthscale"]), float(h["noise"])))


class _ExactGP(gpytorch.models.ExactGP):
    def __init__(self, X, y, likelihood):
        super().__init__(X, y, likelihood)
        self.mean_module = gpytorch.means.ZeroMean()
        self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel())

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


def run_gpytorch(X, y, Xt, steps, lr):
    Xtr, ytr, Xte = map(torch.as_tensor, (X, y, Xt))
    likelihood = gpytorch.likelihoods.GaussianLikelihood()
    model = _ExactGP(Xtr, ytr, likelihood)
    model.covar_module.outputscale = 1.0
    model.covar_module.base_kernel.lengthscale = 1.0
    likelihood.noise = 0.1
    exact = (gpytorch.settings.max_cholesky_size(10**7), gpytorch.settings.fast_computations(False, False, False),
             gpytorch.settings.fast_pred_var(False))
    for ctx in exact:
        ctx.__enter__()
    try:
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            model.train(), likelihood.train()
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
            for _ in range(steps):
                opt.zero_grad()
                loss = -mll(model(Xtr), ytr)
                loss.backward()
                opt.step()
            t1 = time.perf_counter()
            model.eval(), likelihood.eval()
            with torch.no_grad():
                pred = likelihood(model(Xte))
                mean, var = pred.mean.numpy(), pred.variance.numpy()
            t2 = time.perf_counter()
            with torch.no_grad():
                model.train(), likelihood.train()
                lml = float(mll(model(Xtr), ytr)) * len(y)
    finally:
        for ctx in reversed(exact):
            ctx.__exit__(None, None, None)
    hyper = (float(model.covar_module.outputscale), float(model.covar_module.base_kernel.lengthscale),
             float(likelihood.noise))
    return dict(fit=t1 - t0, predict=t2 - t1, mean=mean, var=var, mib=mem.extra_mib, lml=lml, hyper=hyper)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--lr", type=float, default=0.05)
    args = p.parse_args(argv)
    X, y, Xt, yt = make_data(args.n, args.test)
    # warm both libraries up (imports, first kernels) on a tiny problem, untimed
    run_bayeskit(X[:50], y[:50], Xt[:10], 2, args.lr)
    run_gpytorch(X[:50], y[:50], Xt[:10], 2, args.lr)
    rows = {}
    for name, fn in (("bayeskit", run_bayeskit), ("gpytorch", run_gpytorch)):
        rows[name] = fn(X, y, Xt, args.steps, args.lr)
        r = rows[name]
        r["rmse"] = float(np.sqrt(np.mean((r["mean"] - yt) ** 2)))
        print(f"{name}: fit {r['fit']:.2f} s, predict {r['predict']:.2f} s, log ML {r['lml']:.2f}, "
              f"test RMSE {r['rmse']:.4f}, (outputscale, lengthscale, noise) = "
              f"({r['hyper'][0]:.3f}, {r['hyper'][1]:.3f}, {r['hyper'][2]:.4f}), peak +{r['mib']:.0f} MiB",
              file=sys.stderr)
    b, g = rows["bayeskit"], rows["gpytorch"]
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores; JAX {jax.__version__}, "
          f"torch {torch.__version__}, GPyTorch {gpytorch.__version__}; float64; N = {args.n}, "
          f"{args.test} test points, {args.steps} Adam steps (lr {args.lr}), exact Cholesky on both sides\n")
    print("| library | fit s | predict s | log ML | test RMSE | peak MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['fit']:.2f} | {r['predict']:.2f} | {r['lml']:.2f} | {r['rmse']:.4f} | {r['mib']:.0f} |")
    print(f"\ntime ratio bayeskit / GPyTorch: fit {b['fit'] / g['fit']:.2f}, predict {b['predict'] / g['predict']:.2f} "
          f"(< 1: bayeskit faster); max |mean difference| {np.max(np.abs(b['mean'] - g['mean'])):.2e}")


if __name__ == "__main__":
    main()
