"""bayeskit's particle filter and PaRIS against `particles` 0.4 (N. Chopin) on stochastic volatility.

Same model (particles' ``StochVol``: mu = -1, rho = 0.95, sigma = 0.3), same simulated data
(T = 1000), same functional (E[Σ_t x_t | y], PaRIS with K = 2 backward draws), one process.
`particles` runs its bootstrap filter and its hybrid accept-reject PaRIS collector (Dau & Chopin
2022; ``max_trials = N``) in NumPy/Python; bayeskit runs `bk.ParticleFilter` and `bk.PaRIS`
(``backward="auto"``: exact O(N²) draws by inverse CDF up to N = 256, above it accept-reject with
exact draws for what is left after 32 rounds) as compiled `lax.scan`s. bayeskit times
are the second call (compiled; wall clock); the first call's compile time is printed beside.
particles' times are the CPU time of its run (one thread, so equal to its wall time on an idle
machine; the long PaRIS runs are thereby not inflated by other load).

Environment: `particles` 0.4's PaRIS fails on NumPy >= 2.4 (it stores a 1-element array into a
scalar slot), so the benchmark environment pins NumPy 2.3:
    python3 -m venv bench && bench/bin/pip install -e . "numpy<2.4"
    bench/bin/pip install --no-deps particles==0.4 numba llvmlite && bench/bin/pip install joblib

    python benchmarks/smc_vs_particles.py            # T = 1000, N = 100 and 1000
    python benchmarks/smc_vs_particles.py --T 200 --n 100
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import bayeskit as bk  # noqa: E402
from bayeskit.models.state_space import StochasticVolatility  # noqa: E402


def particles_runs(y, n, paris):
    import particles
    from particles import collectors
    from particles import state_space_models as ssm

    class StochVol(ssm.StochVol):  # particles' StochVol lacks the bound its rejection PaRIS needs
        def upper_bound_log_pt(self, t):
            return -0.5 * np.log(2 * np.pi * self.sigma**2)

    fk = ssm.Bootstrap(ssm=StochVol(mu=-1.0, rho=0.95, sigma=0.3), data=list(y))
    fk.add_func = lambda t, xp, x: x
    collect = [collectors.Paris(Nparis=2)] if paris else []
    pf = particles.SMC(fk=fk, N=n, collect=collect, resampling="systematic", ESSrmin=0.5)
    t0 = time.process_time()  # CPU time: single-threaded NumPy/Python, so its wall time on an idle machine,
    pf.run()                  # and immune to other load on the machine during a run of many minutes
    elapsed = time.process_time() - t0
    value = float(pf.summaries.paris[-1]) if paris else float(pf.summaries.logLts[-1])
    return elapsed, value


def bayeskit_runs(model, y, n, paris):
    if paris:
        engine = bk.PaRIS(n_particles=n, functional=lambda x, x_next, t: x_next[..., 0],
                          initial_functional=lambda x: x[:, 0], K=2)  # backward "auto"
    else:
        engine = bk.ParticleFilter(n_particles=n, keep_particles=False)
    times = []
    for seed in (0, 1):  # the first call compiles
        t0 = time.perf_counter()
        post = bk.fit(model, data={"y": y}, engine=engine, seed=seed)
        value = float(post.functional[0]) if paris else post.log_likelihood
        times.append(time.perf_counter() - t0)
    return times, value


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, default=1000)
    p.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--tasks", nargs="+", choices=("filter", "paris"), default=["filter", "paris"])
    args = p.parse_args(argv)
    model = StochasticVolatility(mu=-1.0, rho=0.95, sigma=0.3)
    _, y = model.simulate(jax.random.key(0), args.T)
    y = np.asarray(y)[:, 0]
    import importlib.metadata

    particles_runs(y[:20], 10, paris=False)  # untimed: numba compiles particles' resampling on first use
    particles_runs(y[:20], 10, paris=True)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; JAX {jax.__version__}, "
          f"particles {importlib.metadata.version('particles')}, NumPy {np.__version__}; T = {args.T}\n")
    print("| task | N | particles s | bayeskit s (compile + run) | ratio particles / bayeskit | values |")
    print("|---|---:|---:|---:|---:|---|")
    for paris in [task == "paris" for task in args.tasks]:
        for n in args.n:
            (t_first, t_run), ours = bayeskit_runs(model, y, n, paris)
            theirs_t, theirs = particles_runs(y, n, paris)
            task = "PaRIS E[Σ x_t], K = 2" if paris else "bootstrap filter"
            print(f"| {task} | {n} | {theirs_t:.3f} | {t_run:.4f} ({t_first:.1f} first) | "
                  f"**{theirs_t / t_run:.0f}x** | particles {theirs:.2f}, bayeskit {ours:.2f} |", flush=True)


if __name__ == "__main__":
    main()
