"""
Calibration of every engine family: SBC and predictive PIT
==========================================================

An engine is calibrated when its posteriors are right on average over data simulated from the prior.
Simulation-based calibration (SBC, `bk.diagnostics.sbc`) checks it for NUTS, HMC, VI, NUTS on process
hyperparameters and particle Gibbs: the rank of each true parameter among its posterior draws is
uniform exactly when the engine is calibrated. For amortised predictives (a neural process, LC-PFN) the
predictive PIT (`pit_calibration`) checks the same of the predictive distribution.

Each check prints one line (the smallest p-value of the uniformity test, a verdict, interval coverage)
and draws the ECDF of the ranks minus the uniform CDF, inside its simultaneous 95% band: a curve that
leaves the band is drawn red.

Run: `python examples/calibration.py [out_dir]` (default `./bayeskit-examples/calibration`;
`BAYESKIT_FAST=1` for a quick smoke run with very few simulations, too few for the verdicts to mean
much). The figures in docs/calibration.md come from `python examples/calibration.py docs/figures`.
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
    # the ECDF-difference plot, a matplotlib Figure, written to `out` and returned (the gallery shows it)
    return result.plot(os.path.join(out, figure), var_names=var_names) if figure else None


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bk.ConvergenceWarning)  # per-fit problems are in result.problems
        result = fn(*args, **kwargs, progress=False)
    return result, time.perf_counter() - start


# %%
# NUTS and HMC on eight schools
# -----------------------------
# The non-centred model; each simulation draws parameters and data from the prior and fits the data.

figures = []
for engine, name in [(bk.NUTS(), "nuts"), (bk.HMC(num_steps=16), "hmc")]:
    result, seconds = timed(sbc, eight_schools.model, engine, eight_schools.DATA, simulations=n, seed=0)
    figures.append(report(f"{name.upper()}, eight schools ({seconds:.0f} s)", result, f"sbc_{name}_eight_schools.png",
                          var_names=["mu", "tau"]))

# %%
# NUTS on a logistic regression
# -----------------------------
# Three coefficients and an intercept, 60 observations.

rng = np.random.default_rng(0)
X = rng.normal(size=(60, 3))


def logistic(X, y=None):
    a = numpyro.sample("a", dist.Normal(0, 1.5))
    b = numpyro.sample("b", dist.Normal(0, 1).expand([3]).to_event(1))
    numpyro.sample("y", dist.Bernoulli(logits=a + X @ b), obs=y)


result, seconds = timed(sbc, logistic, bk.NUTS(), {"X": X, "y": np.zeros(60)}, simulations=n, seed=0)
report(f"NUTS, logistic regression ({seconds:.0f} s)", result)

# %%
# VI, full rank and mean field
# ----------------------------
# A regression whose two coefficients have posterior correlation −0.99: a full-rank Gaussian guide can
# represent it, a mean-field guide cannot and is too narrow (with enough simulations SBC flags it).

z = rng.normal(size=30)
Xc = np.stack([z, z + 0.15 * rng.normal(size=30)], 1)


def correlated(X, y=None):
    b = numpyro.sample("b", dist.Normal(0, 1).expand([2]).to_event(1))
    numpyro.sample("y", dist.Normal(X @ b, 1.0), obs=y)


figures = []
for guide in ("full_rank", "mean_field"):
    result, seconds = timed(sbc, correlated, bk.VI(guide=guide), {"X": Xc, "y": np.zeros(30)}, simulations=n, seed=0)
    figures.append(report(f"VI {guide} ({seconds:.0f} s)", result, f"sbc_vi_{guide}.png"))

# %%
# NUTS on a Student-t process's hyperparameters
# ---------------------------------------------
# The kernel's lengthscale and the noise, with σ² integrated out.

from bayeskit.models.kernels import RBF  # noqa: E402
from bayeskit.models.processes import InverseGamma, ScaleMixtureProcess, numpyro_model  # noqa: E402

process = ScaleMixtureProcess(RBF(variance=1.0, lengthscale=1.0), noise=0.1, scale_prior=InverseGamma(3.0, 2.0))
hyper = numpyro_model(process, {"kernel.lengthscale": dist.LogNormal(0.0, 0.5), "noise": dist.LogNormal(-2, 0.5)})
Xp = np.linspace(-3, 3, 25)[:, None]
result, seconds = timed(sbc, hyper, bk.NUTS(), {"X": Xp, "y": np.zeros(25)}, simulations=n // 2, seed=0)
fig = report(f"NUTS, t-process hyperparameters ({seconds:.0f} s)", result, "sbc_process.png")

# %%
# Particle Gibbs
# --------------
# The latent states of a linear-Gaussian state-space model.

from bayeskit.models.state_space import LinearGaussian  # noqa: E402

lg = LinearGaussian.scalar(a=0.9, c=1.0, q=0.5, r=1.0)
pg = bk.ParticleGibbs(functional=lambda x, x_next, t: x, n_particles=32, runs=4, sweeps=30 if fast else 105,
                      burn_in=5)
T = 5 if fast else 20
result, seconds = timed(sbc, lg, pg, {"y": np.zeros((T, 1))}, simulations=n // 2, draws=19 if fast else 99, seed=0)
fig = report(f"particle Gibbs, {T} states ({seconds:.0f} s)", result, "sbc_particle_gibbs.png")

# %%
# Predictive PIT of amortised engines
# -----------------------------------
# The shipped MPNP on its RBF tasks, and LC-PFN on learning curves one and 30 epochs ahead: the PIT of
# each held-out target under the predictive is uniform when the predictive is calibrated.

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
    figures = [report(f"MPNP, PIT after 10 points ({seconds:.0f} s)", result, "pit_mpnp.png")]
    for horizon in (1, 30):
        result, seconds = timed(pit_calibration, learning_curve_model, bk.PFN(network="lc-tiny"),
                                bk.pfn.LearningCurvePrior(), datasets=2 * n, context=10, horizon=horizon, seed=0)
        figures.append(report(f"LC-PFN, PIT {horizon} epoch(s) ahead ({seconds:.0f} s)", result,
                              f"pit_lcpfn_h{horizon}.png"))
