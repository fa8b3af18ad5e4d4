"""Calibration of every engine family: simulation-based calibration (SBC) of NUTS, HMC, VI, NUTS on
process hyperparameters and particle Gibbs, and the predictive PIT of a neural process and LC-PFN.
Prints one line per check (p-value of uniformity, verdict) and writes the ECDF-difference plots.

Run: python examples/calibration.py [out_dir]   (default ./bayeskit-examples/calibration; BAYESKIT_FAST=1 for
a quick smoke run with few simulations). The figures in docs/calibration.md come from
``python examples/calibration.py docs/figures``.
"""

import os
import sys
import time
import warnings

import numpy as np
import numpyro
import numpyro.distributions as dist

import bayeskit as bk
from bayeskit.datasets import eight_schools
from bayeskit.diagnostics import pit_calibration, sbc

fast = os.environ.get("BAYESKIT_FAST") == "1"
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("BAYESKIT_OUT", "bayeskit-examples"),
                                                         "calibration")
os.makedirs(out, exist_ok=True)
n = 4 if fast else 200  # simulations per check


def report(name, result, figure=None, var_names=None):
    failures = result.failures()
    verdict = "calibrated" if not failures else "; ".join(f"{k}: {v}" for k, v in list(failures.items())[:3])
    p = result.table()["p_value"].min()
    cover = "" if result.coverage is None else "  coverage " + ", ".join(
        f"{lv:.0%}: {c:.2f}" for lv, c in result.coverage.items())
    print(f"{name:<40} {result.simulations:>4} sims  min p {p:.3f}  {verdict}{cover}")
    if figure:
        result.plot(os.path.join(out, figure), var_names=var_names)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bk.ConvergenceWarning)  # per-fit problems are in result.problems
        result = fn(*args, **kwargs, progress=False)
    return result, time.perf_counter() - start


# 1. NUTS and HMC on eight schools (non-centred)
engines = [(bk.NUTS(), "nuts"), (bk.HMC(num_steps=16), "hmc")]
for engine, name in engines[:1] if fast else engines:
    result, seconds = timed(sbc, eight_schools.model, engine, eight_schools.DATA, simulations=n, seed=0)
    report(f"{name.upper()}, eight schools ({seconds:.0f} s)", result, f"sbc_{name}_eight_schools.png",
           var_names=["mu", "tau"])

# 2. NUTS on a logistic regression
rng = np.random.default_rng(0)
X = rng.normal(size=(60, 3))


def logistic(X, y=None):
    a = numpyro.sample("a", dist.Normal(0, 1.5))
    b = numpyro.sample("b", dist.Normal(0, 1).expand([3]).to_event(1))
    numpyro.sample("y", dist.Bernoulli(logits=a + X @ b), obs=y)


if not fast:
    result, seconds = timed(sbc, logistic, bk.NUTS(), {"X": X, "y": np.zeros(60)}, simulations=n, seed=0)
    report(f"NUTS, logistic regression ({seconds:.0f} s)", result)

# 3. VI on a regression whose two coefficients have posterior correlation -0.99
z = rng.normal(size=30)
Xc = np.stack([z, z + 0.15 * rng.normal(size=30)], 1)


def correlated(X, y=None):
    b = numpyro.sample("b", dist.Normal(0, 1).expand([2]).to_event(1))
    numpyro.sample("y", dist.Normal(X @ b, 1.0), obs=y)


for guide in ("mean_field",) if fast else ("full_rank", "mean_field"):
    result, seconds = timed(sbc, correlated, bk.VI(guide=guide), {"X": Xc, "y": np.zeros(30)}, simulations=n, seed=0)
    report(f"VI {guide} ({seconds:.0f} s)", result, f"sbc_vi_{guide}.png")

# 4. NUTS on a Student-t process's hyperparameters (sigma^2 integrated out)
from bayeskit.models.kernels import RBF  # noqa: E402
from bayeskit.models.processes import InverseGamma, ScaleMixtureProcess, numpyro_model  # noqa: E402

process = ScaleMixtureProcess(RBF(variance=1.0, lengthscale=1.0), noise=0.1, scale_prior=InverseGamma(3.0, 2.0))
hyper = numpyro_model(process, {"kernel.lengthscale": dist.LogNormal(0.0, 0.5), "noise": dist.LogNormal(-2, 0.5)})
Xp = np.linspace(-3, 3, 25)[:, None]
if not fast:
    result, seconds = timed(sbc, hyper, bk.NUTS(), {"X": Xp, "y": np.zeros(25)}, simulations=n // 2, seed=0)
    report(f"NUTS, t-process hyperparameters ({seconds:.0f} s)", result, "sbc_process.png")

# 5. particle Gibbs: the states of a linear-Gaussian model
from bayeskit.models.state_space import LinearGaussian  # noqa: E402

lg = LinearGaussian.scalar(a=0.9, c=1.0, q=0.5, r=1.0)
pg = bk.ParticleGibbs(functional=lambda x, x_next, t: x, n_particles=32, runs=4, sweeps=30 if fast else 105,
                      burn_in=5)
T = 5 if fast else 20
result, seconds = timed(sbc, lg, pg, {"y": np.zeros((T, 1))}, simulations=n // 2, draws=19 if fast else 99, seed=0)
report(f"particle Gibbs, {T} states ({seconds:.0f} s)", result, "sbc_particle_gibbs.png")

# 6. predictive PIT: the shipped MPNP on its RBF tasks, LC-PFN on learning curves
try:
    import torch  # noqa: F401
except ImportError:
    print("PIT checks skipped: install the torch extra")
else:
    from bayeskit.datasets.gp_tasks import gp_tasks
    from bayeskit.models.learning_curves import learning_curve_model

    tasks = gp_tasks("rbf")
    result, seconds = timed(pit_calibration, tasks.process, bk.NeuralProcess(network="mpnp-gp"), tasks,
                            datasets=2 * n, context=10, seed=0)
    report(f"MPNP, PIT after 10 points ({seconds:.0f} s)", result, "pit_mpnp.png")
    for horizon in (1,) if fast else (1, 30):
        result, seconds = timed(pit_calibration, learning_curve_model, bk.PFN(network="lc-tiny"),
                                bk.pfn.LearningCurvePrior(), datasets=2 * n, context=10, horizon=horizon, seed=0)
        report(f"LC-PFN, PIT {horizon} epoch(s) ahead ({seconds:.0f} s)", result, f"pit_lcpfn_h{horizon}.png")
