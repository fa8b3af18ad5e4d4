"""bayeskit's exact Gaussian process vs GPyTorch's ExactGP: type-II ML fit and prediction.

Same data, same kernel (scaled RBF), same model (outputscale·RBF + noise·I), same optimiser
(Adam, same learning rate and steps, same initial values), same precision (float64), one
process. Prints wall times, their ratios and peak host RSS.

    python benchmarks/processes_vs_gpytorch.py                 # N = 2,000, exact Cholesky both sides
    python benchmarks/processes_vs_gpytorch.py --n 20000 --steps 5 --matrix-free

``--matrix-free``: both sides use GPyTorch's CG + stochastic Lanczos quadrature (10 probes,
rank-15 pivoted-Cholesky preconditioner, CG tolerance 0.01) and LOVE variances (rank 100):
bayeskit's `bk.MatrixFree` solver (kernel products from JAX, K stored when it fits in half the
memory, float32 if float64 does not) against ExactGP with GPyTorch's lazily evaluated dense kernel.
``--skip-gpytorch`` leaves GPyTorch out (at N = 50,000 its N x N kernel and autograd copies exceed
a 23 GiB machine; the script reports its measured peak at smaller N instead).
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


MATRIX_FREE = dict(tolerance=0.01, eval_tolerance=0.01, probes=10, lanczos_iterations=20, preconditioner_rank=15,
                   love_rank=100)


def run_bayeskit(X, y, Xt, steps, lr, matrix_free=False, scale_prior=None):
    scale_prior = Fixed(1.0) if scale_prior is None else scale_prior
    process = ScaleMixtureProcess(RBF(variance=1.0, lengthscale=1.0), noise=0.1, scale_prior=scale_prior)
    solver = bk.MatrixFree(**MATRIX_FREE) if matrix_free else "cholesky"
    fixed = ("scale_prior.value",) if isinstance(scale_prior, Fixed) else ()
    engine = bk.Exact(steps=steps, learning_rate=lr, fixed=fixed, progress=False, solver=solver)
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


def run_gpytorch(X, y, Xt, steps, lr, matrix_free=False, device="cpu"):
    Xtr, ytr, Xte = (torch.as_tensor(a, device=device) for a in (X, y, Xt))
    likelihood = gpytorch.likelihoods.GaussianLikelihood().to(device)
    model = _ExactGP(Xtr, ytr, likelihood).to(device)
    model.covar_module.outputscale = 1.0
    model.covar_module.base_kernel.lengthscale = 1.0
    likelihood.noise = 0.1
    if matrix_free:
        m = MATRIX_FREE
        exact = (gpytorch.settings.max_cholesky_size(0), gpytorch.settings.cg_tolerance(m["tolerance"]),
                 gpytorch.settings.eval_cg_tolerance(m["eval_tolerance"]),
                 gpytorch.settings.num_trace_samples(m["probes"]),
                 gpytorch.settings.max_lanczos_quadrature_iterations(m["lanczos_iterations"]),
                 gpytorch.settings.max_preconditioner_size(m["preconditioner_rank"]),
                 gpytorch.settings.min_preconditioning_size(0),
                 gpytorch.settings.max_root_decomposition_size(m["love_rank"]), gpytorch.settings.fast_pred_var(True))
    else:
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
            if device != "cpu":
                torch.cuda.synchronize()
            t1 = time.perf_counter()
            model.eval(), likelihood.eval()
            with torch.no_grad():
                pred = likelihood(model(Xte))
                mean, var = pred.mean.cpu().numpy(), pred.variance.cpu().numpy()
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
    p.add_argument("--matrix-free", action="store_true")
    p.add_argument("--skip-gpytorch", action="store_true")
    p.add_argument("--device", default="cpu", help="GPyTorch's device (bayeskit's JAX kernels use JAX's default)")
    p.add_argument("--processes", choices=("gp", "t", "both"), default="gp",
                   help="bayeskit's GP (as GPyTorch), its Student-t process (InverseGamma(2, 2)) or both")
    args = p.parse_args(argv)
    X, y, Xt, yt = make_data(args.n, args.test)
    mf = args.matrix_free
    # warm both libraries up (imports, first kernels) on a tiny problem, untimed
    run_bayeskit(X[:50], y[:50], Xt[:10], 2, args.lr, mf)
    if not args.skip_gpytorch:
        run_gpytorch(X[:50], y[:50], Xt[:10], 2, args.lr, mf, args.device)
    runs = [("bayeskit", lambda *a: run_bayeskit(*a, mf))] if args.processes != "t" else []
    if args.processes != "gp":
        from bayeskit.models.processes import InverseGamma

        runs.append(("bayeskit Student-t", lambda *a: run_bayeskit(*a, mf, InverseGamma(2.0, 2.0))))
    if not args.skip_gpytorch:
        runs.append(("gpytorch", lambda *a: run_gpytorch(*a, mf, args.device)))
    rows = {}
    for name, fn in runs:
        try:
            rows[name] = fn(X, y, Xt, args.steps, args.lr)
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as err:
            if "memory" not in str(err).lower():
                raise
            print(f"{name}: out of memory at N = {args.n} ({str(err).splitlines()[0][:160]})", file=sys.stderr)
            continue
        r = rows[name]
        r["rmse"] = float(np.sqrt(np.mean((r["mean"] - yt) ** 2)))
        print(f"{name}: fit {r['fit']:.2f} s, predict {r['predict']:.2f} s, log ML {r['lml']:.2f}, "
              f"test RMSE {r['rmse']:.4f}, (outputscale, lengthscale, noise) = "
              f"({r['hyper'][0]:.3f}, {r['hyper'][1]:.3f}, {r['hyper'][2]:.4f}), peak +{r['mib']:.0f} MiB",
              file=sys.stderr)
    solver = "matrix-free CG/SLQ/LOVE" if mf else "exact Cholesky"
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores; JAX {jax.__version__}, "
          f"torch {torch.__version__}, GPyTorch {gpytorch.__version__}; float64; N = {args.n}, "
          f"{args.test} test points, {args.steps} Adam steps (lr {args.lr}), {solver} on both sides\n")
    print("| library | fit s | predict s | log ML | test RMSE | peak MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['fit']:.2f} | {r['predict']:.2f} | {r['lml']:.2f} | {r['rmse']:.4f} | {r['mib']:.0f} |")
    if "gpytorch" not in rows or "bayeskit" not in rows:
        gpu_peaks()
        return
    b, g = rows["bayeskit"], rows["gpytorch"]
    total = (b["fit"] + b["predict"]) / (g["fit"] + g["predict"])
    print(f"\ntime ratio bayeskit / GPyTorch: fit {b['fit'] / g['fit']:.2f}, "
          f"predict {b['predict'] / g['predict']:.2f}, fit + predict {total:.2f} (< 1: bayeskit faster); "
          f"max |mean difference| "
          f"{np.max(np.abs(b['mean'] - g['mean'])):.2e}")
    gpu_peaks()


def gpu_peaks():
    """Peak accelerator memory of each library, when one was used."""
    jax_dev = jax.devices()[0]
    if jax_dev.platform != "cpu":
        peak = (jax_dev.memory_stats() or {}).get("peak_bytes_in_use", 0) / 2**20
        print(f"JAX on {jax_dev.device_kind}: peak {peak:.0f} MiB of device memory")
    if torch.cuda.is_available():
        print(f"torch on {torch.cuda.get_device_name()}: peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
