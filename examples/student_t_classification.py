"""Student-t vs Gaussian process classification with an infinitely wide network's kernel.

Lee et al. (ICLR 2022) classify with a sparse variational Student-t process: the C latent
functions share an inverse-gamma scale, q(σ²) = IG(a', b'), q(u | σ²) = N(m, σ² S). Here: three
Gaussian blobs, both processes fitted by `bk.SparseVariational`, then accuracy and log-likelihood
on new points, and the predictive entropy far from the data, where the t-process's heavier
tails keep it less confident than the GP.

Run: python examples/student_t_classification.py   (BAYESKIT_FAST=1 for a quick smoke run)
"""

import os

import jax
import numpy as np

import bayeskit as bk
from bayeskit.models.kernels import NNGP
from bayeskit.models.processes import Fixed, InverseGamma, ProcessClassifier

jax.config.update("jax_enable_x64", True)
fast = os.environ.get("BAYESKIT_FAST") == "1"
rng = np.random.default_rng(0)
centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])


def blobs(n):
    y = rng.integers(0, 3, n)
    return centers[y] + 0.8 * rng.standard_normal((n, 2)), y


X, y = blobs(120)
X_test, y_test = blobs(300)
angle = rng.uniform(0, 2 * np.pi, 300)
far = {r: r * np.c_[np.cos(angle), np.sin(angle)] for r in (5, 10, 30)}
engine = bk.SparseVariational(steps=100 if fast else 800, learning_rate=0.03, progress=not fast)

print("process          accuracy  test log-lik  mean entropy at radius 5 / 10 / 30 (max log 3 = 1.099)")
for name, prior in (("GP", Fixed(1.0)), ("Student-t IG(2,2)", InverseGamma(2.0, 2.0)),
                    ("Student-t IG(1,1)", InverseGamma(1.0, 1.0))):
    model = ProcessClassifier(NNGP(weight_var=2.0, bias_var=0.1), num_classes=3, scale_prior=prior, num_inducing=10)
    post = bk.fit(model, data={"X": X, "y": y}, engine=engine, seed=0)
    pred = post.predict({"X": X_test}, n=4000)
    entropies = [post.predict({"X": Xf}, n=4000, seed=5).entropy().mean() for Xf in far.values()]
    print(f"{name:17s} {pred.accuracy(y_test):8.3f}  {np.mean(pred.log_prob(y_test)):12.4f}  "
          + " / ".join(f"{e:.4f}" for e in entropies))

h = post.hyperparameters()
print(f"last fit: q(σ²) = IG({float(h['q_sigma2.a']):.2f}, {float(h['q_sigma2.b']):.2f}), so f is Student t with "
      f"{2 * float(h['q_sigma2.a']):.1f} degrees of freedom; {post}")
