"""
Student-t process regression with an infinitely wide network's kernel
=====================================================================

Lee et al. (ICLR 2022): put an inverse-gamma prior on the last layer's scale σ² of an infinitely wide
network and its NNGP becomes a Student-t process. On data with Cauchy noise: fit a GP, a t-process and
a Burr XII scale mixture by type-II maximum likelihood (`bk.Exact`), compare test log-likelihoods, look
at predictive intervals, go on to full Bayes over an RBF kernel's lengthscale and noise with NUTS, and
finish with the matrix-free solver that takes the same model to tens of thousands of points.

Run: `python examples/student_t_process.py` (`BAYESKIT_FAST=1` for a quick smoke run).
"""

import os

import jax
import numpy as np
import numpyro.distributions as dist
from matplotlib.figure import Figure

import bayeskit as bk
from bayeskit.models.kernels import NNGP, RBF
from bayeskit.models.processes import BurrXII, Fixed, InverseGamma, ScaleMixtureProcess, numpyro_model

jax.config.update("jax_enable_x64", True)
fast = os.environ.get("BAYESKIT_FAST") == "1"
rng = np.random.default_rng(0)


def make(n):
    x = rng.uniform(-3, 3, (n, 1))
    return x, np.sin(2 * x[:, 0]) + 0.1 * rng.standard_cauchy(n)


n = 100 if fast else 300
x_train, y_train = make(n)
x_test, y_test = make(n)
kernel = NNGP(hidden_layers=2, bias_var=0.1)  # 2 hidden ReLU layers, infinitely wide
print(f"{n} training and {n} test points, y = sin(2x) + 0.1 Cauchy noise; kernel {kernel}")

# %%
# Three scale mixtures, type-II maximum likelihood
# ------------------------------------------------
# The same kernel under three priors on the output scale σ²: none (a GP), inverse gamma (a Student-t
# process, closed form) and Burr XII (by quadrature). `bk.Exact` maximises the marginal likelihood over
# the kernel's and the prior's hyperparameters; the posterior it returns predicts in closed form.

fits = {}
for name, prior in (("GP", Fixed(1.0)), ("Student-t", InverseGamma(2.0, 2.0)), ("Burr XII", BurrXII(2.0, 1.0, 1.0))):
    process = ScaleMixtureProcess(kernel, noise=0.1, scale_prior=prior)
    fits[name] = post = bk.fit(process, data={"X": x_train, "y": y_train},
                               engine=bk.Exact(steps=100 if fast else 300, progress=False))
    pred = post.predict({"X": x_test})
    print(f"{name:10s} log marginal likelihood {post.log_marginal_likelihood:9.2f}   "
          f"test log-likelihood {np.mean(pred.log_prob(y_test)):.4f}")

# %%
# Predictive intervals
# --------------------
# Near the data and far from it. A t-process's predictive variance depends on how well the data fit
# (σ² is learned from them); far from the data it returns to the prior.

x_new = np.array([[0.0], [2.0], [10.0]])
lo, hi = fits["Student-t"].predict({"X": x_new}).interval(0.9)
for xi, a, b in zip(x_new[:, 0], lo, hi, strict=True):
    print(f"x = {xi:5.1f}: 90% predictive interval [{a:6.2f}, {b:6.2f}]")

grid = np.linspace(-4, 4, 200)[:, None]
fig = Figure(figsize=(8, 3.5), layout="constrained")
ax = fig.subplots()
for name, color in (("GP", "C0"), ("Student-t", "C1")):
    pred = fits[name].predict({"X": grid})
    lo, hi = pred.interval(0.9)
    ax.fill_between(grid[:, 0], lo, hi, color=color, alpha=0.2)
    ax.plot(grid[:, 0], pred.mean, color=color, label=f"{name}: mean and 90% interval")
ax.scatter(x_train[:, 0], y_train, s=6, color="k", label="training data")
ax.set_ylim(-4, 4)
ax.legend(fontsize=8)

# %%
# Full Bayes over hyperparameters with NUTS
# -----------------------------------------
# `numpyro_model` turns the process into a NumPyro model with priors on named hyperparameters (σ² is
# integrated out in closed form), and any general engine fits it.

rbf = ScaleMixtureProcess(RBF(), noise=0.1, scale_prior=InverseGamma(2.0, 2.0))
model = numpyro_model(rbf, {"kernel.lengthscale": dist.LogNormal(0.0, 0.5), "noise": dist.LogNormal(-2.0, 1.0)})
draws = 200 if fast else 1000
post = bk.fit(model, data={"X": x_train, "y": y_train}, seed=0,
              engine=bk.NUTS(chains=2, warmup=draws, draws=draws, progress=False))
print(post.summary().to_string())

# %%
# Large N
# -------
# GPyTorch's matrix-free conjugate gradients and stochastic Lanczos quadrature on the same JAX kernel
# (`solver="auto"` switches to it above 10,000 points; needs the torch extra).

n_big = 2000 if fast else 20000
x_big, y_big = make(n_big)
big = ScaleMixtureProcess(RBF(), noise=0.1, scale_prior=InverseGamma(2.0, 2.0))
post = bk.fit(big, data={"X": x_big, "y": y_big}, engine=bk.Exact(steps=3, solver="cg", progress=False))
pred = post.predict({"X": x_test})
print(f"matrix-free t-process, n = {n_big}: log ML ≈ {post.log_marginal_likelihood:.1f} (stochastic estimate), "
      f"test log-likelihood {np.mean(pred.log_prob(y_test)):.4f}")
