"""
Deep kernel machines: deep GPs in the representation-learning limit
===================================================================

Deep kernel machines (Yang et al., ICML 2023) are deep Gaussian processes in the Bayesian
representation-learning limit, fitted by maximising an objective over Gram matrices with `bk.Optimize`.

(a) regression on a step, y = sign(x₁) + noise in 2-D: the deep kernel machine (ν = 100) beside the GP with
the NNGP kernel of the same network (type-II ML by `bk.Exact`), and the check that at ν = ∞ the machine
*is* that GP;
(b) classification of XOR quadrants with a one-layer sparse deep kernel machine (inducing points,
minibatches).

Run: `python examples/deep_kernel_machine.py` (about a minute on 2 cores; `BAYESKIT_FAST=1` for a quick
smoke run with shorter fits).
"""

import os
import time

import jax

jax.config.update("jax_enable_x64", True)  # Gram matrices are factorised: 64-bit floats

import numpy as np  # noqa: E402

import bayeskit as bk  # noqa: E402
from bayeskit.models.kernels import NNGP  # noqa: E402
from bayeskit.models.processes import Fixed, ScaleMixtureProcess  # noqa: E402

fast = os.environ.get("BAYESKIT_FAST") == "1"
steps = 60 if fast else 500
rng = np.random.default_rng(0)


def step_data(n):
    X = rng.uniform(-2, 2, size=(n, 2))
    return X, np.sign(X[:, 0]) + 0.1 * rng.normal(size=n)


# %%
# (a) Regression: the machine beside its GP
# -----------------------------------------
# ν sets how far the learned Gram matrices may move from the NNGP's: a finite ν learns a representation
# of the data, ν = ∞ none.

(X, y), (Xt, yt) = step_data(60), step_data(300)
start = time.perf_counter()
# 2 learned Gram layers; the NNGP of the same network has 3 hidden layers (the input layer is G₀)
dkm = bk.fit(bk.DeepKernelMachine(layers=2, nu=100.0, bias_var=0.1), {"X": X, "y": y},
             engine=bk.Optimize(steps=steps, learning_rate=0.05, progress=False))
fit_s = time.perf_counter() - start
gp = bk.fit(ScaleMixtureProcess(NNGP(weight_var=2.0, bias_var=0.1, hidden_layers=3), noise=0.1,
                                scale_prior=Fixed(1.0)), {"X": X, "y": y},
            engine=bk.Exact(steps=steps, fixed=("scale_prior.value",), progress=False))  # σ² = 1, as in the DKM
ours, theirs = dkm.predict({"X": Xt}), gp.predict({"X": Xt})
print(f"(a) y = sign(x1) + noise, 60 training points, 300 test points; DKM fitted in {fit_s:.1f} s")
print(f"    {dkm!r}")
print("                         test log-lik / point   RMSE")
for name, p in (("deep kernel machine", ours), ("NNGP GP (type-II ML)", theirs)):
    print(f"    {name:22s}  {np.mean(p.log_prob(yt)):18.3f}   {np.sqrt(np.mean((p.mean - yt) ** 2)):.3f}")
print(f"    KL per layer at the fit: {dkm.info['kl']}, jitter added: {dkm.info['jitter']}")

# %%
# The ν = ∞ limit
# ---------------
# No Gram is learned: the machine is the NNGP GP (here with the hyperparameters type-II ML chose), so its
# objective is the GP's log marginal likelihood and its predictive the GP's.

h = gp.hyperparameters()
limit = bk.fit(bk.DeepKernelMachine(layers=2, nu=float("inf"), weight_var=float(h["kernel.weight_var"]),
                                    bias_var=float(h["kernel.bias_var"]), noise=float(h["noise"]),
                                    fixed=("weight_var", "bias_var", "noise")),
               {"X": X, "y": y}, engine=bk.Optimize(progress=False))
gap = np.max(np.abs(limit.predict({"X": Xt}).mean - theirs.mean))
print(f"    nu = inf: objective {limit.objective:.6f} vs the GP's log marginal likelihood "
      f"{gp.log_marginal_likelihood:.6f}; largest difference of predictive means {gap:.1e}\n")

# %%
# (b) Classification with inducing points
# ---------------------------------------
# XOR quadrants: the label is whether x₁ x₂ > 0, which no single linear feature predicts. A sparse
# machine with 20 inducing points and a categorical output, trained on minibatches.

X, Xt = rng.normal(size=(200, 2)), rng.normal(size=(500, 2))
labels = lambda Z: (Z[:, 0] * Z[:, 1] > 0).astype(int)  # noqa: E731
start = time.perf_counter()
clf = bk.fit(bk.SparseDeepKernelMachine(layers=1, nu=10.0, likelihood="categorical", num_classes=2,
                                        num_inducing=20, bias_var=0.1),
             {"X": X, "y": labels(X)},
             # minibatches of 50 (the smoke run uses all 200 points per step: one compiled program fewer)
             engine=bk.Optimize(steps=steps, learning_rate=0.05, batch_size=None if fast else 50, progress=False))
pred = clf.predict({"X": Xt}, n=500)
print(f"(b) XOR quadrants, 200 training points, 20 inducing points, minibatches of {50 if not fast else 200}: "
      f"{time.perf_counter() - start:.1f} s")
print(f"    held-out accuracy {pred.accuracy(labels(Xt)):.3f}, log-likelihood / point "
      f"{np.mean(pred.log_prob(labels(Xt))):.3f}")
