"""
Infinitely wide and deep networks as classifiers
================================================

Radhakrishnan, Belkin & Uhler (2023): on the paper's 2-D task (two Dirichlet classes mapped onto the
circle), fit kernel interpolation with the NTK of deeper and deeper networks through
`bk.fit(..., engine=bk.Exact())`, for two dual activations, and compare with the infinite-depth rules in
closed form: ReLU tends to the majority vote; the activation designed for the Hilbert exponent α = d − 1
tends to a consistent singular-kernel vote.

Run: `python examples/wide_deep_classifier.py` (`BAYESKIT_FAST=1`: fewer points, shallower networks).
"""

from __future__ import annotations

import math
import os

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from scipy.stats import dirichlet  # noqa: E402

import bayeskit as bk  # noqa: E402
from bayeskit.models.classifiers import ReLU, WideDeep, depth_limit, design_activation, hilbert_alpha  # noqa: E402

FAST = os.environ.get("BAYESKIT_FAST") == "1"


# %%
# The task
# --------
# Two classes of points on the simplex, which the NTK sees on the circle.


def task(n, rng):
    """Class 0 ~ Dirichlet(1, 2) with prior 0.4, class 1 ~ Dirichlet(2, 1)."""
    first = int(0.4 * n)
    X = np.concatenate([rng.dirichlet([1, 2], first), rng.dirichlet([2, 1], n - first)])
    return X, np.concatenate([np.zeros(first, int), np.ones(n - first, int)])


# %%
# The task and its Bayes-optimal rule
# -----------------------------------
# The Bayes-optimal accuracy is the ceiling; the majority vote, the floor an infinitely deep ReLU
# network falls to.

rng = np.random.default_rng(0)
X, y = task(200 if FAST else 1000, rng)
X_test, y_test = task(1000 if FAST else 4000, rng)
bayes = np.where(dirichlet.pdf(X_test.T, [1, 2]) * 0.4 > dirichlet.pdf(X_test.T, [2, 1]) * 0.6, 0, 1)
print(f"Bayes-optimal accuracy {np.mean(bayes == y_test):.3f}; majority vote {np.mean(y_test == 1):.3f}")

# %%
# Deeper and deeper
# -----------------
# `design_activation` builds a dual activation with a chosen Hilbert exponent; `depth_limit` names the
# rule a network with it tends to as depth grows. `depth=math.inf` uses that rule in closed form.

hilbert = design_activation(hilbert_alpha(2))  # α = d − 1 = 1 on the circle
print(f"designed activation: {hilbert}; its deep limit: {depth_limit(hilbert)}")
depths = (10, 100, math.inf) if FAST else (10, 100, 1000, math.inf)
for name, activation in (("ReLU", ReLU()), ("Hilbert-designed", hilbert)):
    for depth in depths:
        model = bk.KernelClassifier(WideDeep(activation, depth=depth, kind="ntk"))
        post = bk.fit(model, data={"X": X, "y": y}, engine=bk.Exact(progress=False), seed=0)
        accuracy = post.predict({"X": X_test}).accuracy(y_test)
        print(f"{name:>17} NTK, depth {depth:>5}: test accuracy {accuracy:.3f}")
