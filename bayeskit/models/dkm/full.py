"""The deep kernel machine (Yang, Robeyns, Milsom, Anson, Schoots & Aitchison, ICML 2023) for regression.

A deep Gaussian process in the Bayesian representation-learning limit: its posterior concentrates on
the Gram matrices G₁ … G_L of the training points that maximise

    L(G₁, …, G_L) = log P(y | G_L) − Σ_ℓ ν_ℓ KL(N(0, G_ℓ) ‖ N(0, K(G_{ℓ−1}))),

with G₀ = σ_w² X Xᵀ / N₀ + σ_b², K a kernel on Gram matrices (`gram_kernels`) and a Gaussian output
layer, log P(y | G_L) = log N(y | 0, K(G_L) + σ_n² I). ν_ℓ trades fit against the prior: as ν → ∞
every G_ℓ is its prior mean and the machine is the GP with the NNGP kernel of L + 1 hidden layers.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ...core.errors import ConfigError
from ..processes.predictive import ProcessPredictive
from ..processes.process import check_data as check_regression_data
from . import gram_kernels as gk
from .base import DeepKernelSettings, as_float_inputs, check_inputs
from .layers import initial_factors, layer_factors, propagate, weighted_kl


class DeepKernelMachine(DeepKernelSettings):
    """A deep kernel machine for regression: fit with ``bk.fit(dkm, {"X": X, "y": y}, engine=bk.Optimize())``.

    Arguments: ``layers`` L (hidden Gram layers); ``nu`` ν, one number or one per layer (> 0;
    ``float("inf")`` fixes a layer at its prior mean, the NNGP); ``kernel`` "relu" (arc-cosine) or "se"
    (squared exponential, with ``lengthscale``); ``weight_var`` σ_w², ``bias_var`` σ_b² (input layer and
    Gram kernel), ``noise`` σ_n² (learned on the log scale unless named in ``fixed``); ``jitter``
    (relative to the mean diagonal) added to each prior covariance K(G) before factorising it;
    ``whiten`` (default True) parameterises V = L W relative to the factor L of the layer's prior.

    Parameters: each learned layer's G = V Vᵀ / n (V lower triangular, n × n, starting at the prior
    mean, so the fit starts at the NNGP) and the log hyperparameters. Every step uses all n points
    (the Gram matrices couple them): for minibatches use `SparseDeepKernelMachine`.
    Capability: `Objective` (`core.model`).
    """

    # -- Objective ----------------------------------------------------------------------------------
    def check_data(self, data) -> dict:
        """``{"X": (n, d), "y": (n,)}`` with named errors for missing keys, bad shapes and NaN."""
        X, y = check_regression_data(data)
        X = as_float_inputs(X)
        return {"X": X, "y": jnp.asarray(y, dtype=X.dtype)}

    def init(self, data: dict, key) -> dict:
        """The NNGP as a starting point: hyperparameters as set, every G_ℓ at its prior mean."""
        X = data["X"]
        params = {"hyper": self.initial_hyperparameters(X.dtype)}
        hyper = self.hyperparameters(params)
        params["grams"] = initial_factors(self.gram_map(hyper), self.input_layer(hyper, X), self.layer_nu,
                                          jitter=self.jitter, whiten=self.whiten)
        return params

    def objective(self, params, batch: dict, n: int, key=None):
        """log N(y | 0, K(G_L) + σ_n² I) − Σ_ℓ ν_ℓ KL_ℓ on all n points."""
        if batch["X"].shape[0] != n:
            raise ConfigError(f"a DeepKernelMachine needs all {n} points at every step (its Gram matrices couple "
                              f"them), got a batch of {batch['X'].shape[0]}: use batch_size=None, or "
                              f"SparseDeepKernelMachine for minibatches")
        log_lik, kls, _ = self.terms(params, batch)
        return log_lik - weighted_kl(self.nus, params["grams"], kls)

    def terms(self, params, data: dict):
        """(log P(y | G_L), [KL_ℓ of each learned layer], [absolute jitter of each learned layer])."""
        hyper = self.hyperparameters(params)
        X, y = data["X"], data["y"]
        G, _, _, kls, jitters = propagate(self.gram_map(hyper), layer_factors(params["grams"], self.layers),
                                          self.input_layer(hyper, X), jitter=self.jitter, whiten=self.whiten)
        L = self._output_factor(hyper, G)
        alpha = jax.scipy.linalg.solve_triangular(L, y, lower=True)
        log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(L)))
        log_lik = -0.5 * (jnp.sum(alpha**2) + log_det + y.shape[0] * math.log(2 * math.pi))
        return log_lik, kls, jitters

    def _output_factor(self, hyper, G):
        """Cholesky factor of K(G_L) + σ_n² I (the noise keeps it positive definite: no jitter)."""
        K = gk.full(self.gram_map(hyper), G)
        return jnp.linalg.cholesky(K + hyper["noise"] * jnp.eye(K.shape[0], dtype=K.dtype))

    def predict(self, params, data: dict, new_data=None, *, seed=0, n=None, noisy=True, **options):
        """The exact GP predictive of the output layer at new inputs (``{"X": X_new}`` or an array; default
        the training inputs), the new points following the learned layers through the training points:
        a `ProcessPredictive` of targets (``noisy=True``) or of f. Closed form: ``n`` is refused."""
        if options:
            raise ConfigError(f"unknown option(s) {', '.join(map(repr, options))} for DeepKernelMachine.predict "
                              f"(it takes noisy=)")
        if n is not None:
            raise ConfigError("DeepKernelMachine.predict returns the exact predictive distribution, not draws: leave "
                              "`n` out and draw with .predict(new_data).sample(n, seed)")
        X_new = check_inputs(new_data, data)
        mean, v = _predictive_jit(self, params, data["X"], data["y"], X_new)
        noise = float(self.hyperparameters(params)["noise"]) if noisy else 0.0
        return ProcessPredictive(np.asarray(mean), np.asarray(v) + noise, "normal", np.asarray(1.0))

    def sample(self, params, data: dict, key, n: int) -> dict:
        """``{"f": (n, n_train)}``: joint draws of the output function at the training inputs given G_L,
        f | y ~ N(K A⁻¹ y, K − K A⁻¹ K), K = K(G_L), A = K + σ_n² I."""
        hyper = self.hyperparameters(params)
        G, _, _, _, _ = propagate(self.gram_map(hyper), layer_factors(params["grams"], self.layers),
                                  self.input_layer(hyper, data["X"]), jitter=self.jitter, whiten=self.whiten)
        K = gk.full(self.gram_map(hyper), G)
        L = self._output_factor(hyper, G)
        W = jax.scipy.linalg.solve_triangular(L, K, lower=True)  # L⁻¹K
        mean = W.T @ jax.scipy.linalg.solve_triangular(L, data["y"], lower=True)
        cov = K - W.T @ W
        vals, vecs = jnp.linalg.eigh((cov + cov.T) / 2)  # only positive semi-definite: eigen-factor
        root = vecs * jnp.sqrt(jnp.clip(vals, 0.0))
        z = jax.random.normal(key, (n, K.shape[0]), dtype=K.dtype)
        return {"f": mean[None, :] + z @ root.T}

    def describe(self, params, data: dict) -> dict:
        """Fitted hyperparameters, ν, the jitter (relative, and absolute per learned layer) and each KL."""
        log_lik, kls, jitters = _terms_jit(self, params, data)
        return {**self.describe_settings(params), "log_likelihood": float(log_lik),
                "jitter": [float(j) for j in jitters], "kl": [float(k) for k in kls]}


def _predictive(model: DeepKernelMachine, params, X, y, X_new):
    """(mean, variance of f) at X_new: propagate X_new through the layers conditioned on the training
    points, then the GP predictive with K(G_L) on the [train; new] blocks."""
    hyper = model.hyperparameters(params)
    kmap = model.gram_map(hyper)
    Gti, gt = model.input_layer(hyper, X_new, X)
    Gii, Gti, gt, _, _ = propagate(kmap, layer_factors(params["grams"], model.layers),
                                   model.input_layer(hyper, X), Gti, gt, jitter=model.jitter, whiten=model.whiten)
    Kti = gk.cross(kmap, gt, jnp.diagonal(Gii), Gti)
    L = model._output_factor(hyper, Gii)
    B = jax.scipy.linalg.solve_triangular(L, Kti.T, lower=True)
    mean = B.T @ jax.scipy.linalg.solve_triangular(L, y, lower=True)
    v = gk.diagonal(kmap, gt) - jnp.sum(B * B, axis=0)
    return mean, jnp.maximum(v, 0.0)


# compiled once per model structure and data shapes (the model is a pytree: its values are arguments);
# cheaper than running the layers op by op
_predictive_jit = jax.jit(_predictive)
_terms_jit = jax.jit(lambda model, params, data: model.terms(params, data))
