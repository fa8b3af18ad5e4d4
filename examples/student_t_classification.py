"""
Student-t process classification with an infinitely wide network's kernel
=========================================================================

Lee et al. (ICLR 2022) classify with a sparse variational Student-t process: the C latent functions
share an inverse-gamma scale, q(σ²) = IG(a', b'), q(u | σ²) = N(m, σ² S). Here: three Gaussian blobs,
a GP and two t-processes fitted by `bk.SparseVariational`, then accuracy and log-likelihood on new
points, and the predictive entropy far from the data, where the t-process's heavier tails keep it
less confident than the GP.

Run: `python examples/student_t_classification.py` (`BAYESKIT_FAST=1` for a quick smoke run).
"""

import os

import jax
import numpy as np
from matplotlib.figure import Figure

import bayeskit as bk
from bayeskit.models.kernels import NNGP
from bayeskit.models.processes import Fixed, InverseGamma, ProcessClassifier

jax.config.update("jax_enable_x64", True)
fast = os.environ.get("BAYESKIT_FAST") == "1"
rng = np.random.default_rng(0)
centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])


# %%
# Data
# ----
# Three classes around the corners of a triangle; test points from the same distribution, and rings of
# points at radius 5, 10 and 30, far outside the data.


def blobs(n):
    y = rng.integers(0, 3, n)
    return centers[y] + 0.8 * rng.standard_normal((n, 2)), y


X, y = blobs(120)
X_test, y_test = blobs(300)
angle = rng.uniform(0, 2 * np.pi, 300)
far = {r: r * np.c_[np.cos(angle), np.sin(angle)] for r in (5, 10, 30)}

# %%
# Fit a GP and two t-processes
# ----------------------------
# `ProcessClassifier` puts C = 3 latent functions with the NNGP kernel of an infinitely wide ReLU
# network under a softmax, with 10 inducing points; the scale prior makes it a GP (`Fixed`) or a
# t-process (`InverseGamma`). One engine fits all three. The predictive entropy is at most log 3 = 1.099.

engine = bk.SparseVariational(steps=100 if fast else 800, learning_rate=0.03, progress=not fast)

fits = {}
print("process          accuracy  test log-lik  mean entropy at radius 5 / 10 / 30 (max log 3 = 1.099)")
for name, prior in (("GP", Fixed(1.0)), ("Student-t IG(2,2)", InverseGamma(2.0, 2.0)),
                    ("Student-t IG(1,1)", InverseGamma(1.0, 1.0))):
    model = ProcessClassifier(NNGP(weight_var=2.0, bias_var=0.1), num_classes=3, scale_prior=prior, num_inducing=10)
    fits[name] = post = bk.fit(model, data={"X": X, "y": y}, engine=engine, seed=0)
    pred = post.predict({"X": X_test}, n=4000)
    entropies = [post.predict({"X": Xf}, n=4000, seed=5).entropy().mean() for Xf in far.values()]
    print(f"{name:17s} {pred.accuracy(y_test):8.3f}  {np.mean(pred.log_prob(y_test)):12.4f}  "
          + " / ".join(f"{e:.4f}" for e in entropies))

# %%
# The learned scale
# -----------------
# The variational posterior of σ² is inverse gamma, so the latent functions are Student t.

h = post.hyperparameters()
print(f"last fit: q(σ²) = IG({float(h['q_sigma2.a']):.2f}, {float(h['q_sigma2.b']):.2f}), so f is Student t with "
      f"{2 * float(h['q_sigma2.a']):.1f} degrees of freedom; {post}")

# %%
# Predictive entropy over the plane
# ---------------------------------
# The entropy of the predictive class probabilities on a grid, for the GP and the heavier-tailed
# t-process, with the training points. Low entropy is a confident prediction; at most it is log 3.

grid = np.linspace(-12, 12, 40)
G = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)
fig = Figure(figsize=(9, 3.8), layout="constrained")
axes = fig.subplots(1, 2, sharey=True)
for ax, name in zip(axes, ("GP", "Student-t IG(1,1)"), strict=True):
    entropy = fits[name].predict({"X": G}, n=500, seed=5).entropy().reshape(len(grid), len(grid))
    image = ax.pcolormesh(grid, grid, entropy, vmin=0, vmax=np.log(3), cmap="viridis")
    ax.scatter(X[:, 0], X[:, 1], c=y, s=5, cmap="Set1")
    ax.set_title(f"{name}: predictive entropy", fontsize=9)
fig.colorbar(image, ax=axes, label="nats")
