"""The sparse deep kernel machine: Gram matrices learned on M inducing points, fitted on minibatches.

Each hidden layer ℓ learns the inducing block G_ii = V Vᵀ / M (inducing inputs Z learned too, entering
through G₀ on Z); data points follow through G_ti = K_ti K̃⁻¹ G_ii and the diagonal rule in `layers`,
and only the inducing block pays ν_ℓ · KL(N(0, G_ii) ‖ N(0, K(G_{ℓ−1, ii}))). The output layer is a
sparse variational GP with kernel K(G_L) on the inducing points, per output column c (whitened):

    u_c = L v_c,  K̃(G_L)_ii = L Lᵀ,  q(v_c) = N(m_c, R_c R_cᵀ),
    f_c(x_t) ~ N(a_tᵀ m_c, k_tt − ‖a_t‖² + ‖R_cᵀ a_t‖²),  a_t = L⁻¹ K_it.

The objective per step, on a minibatch B of the n points, is

    (n / |B|) Σ_{t∈B} E_q[log p(y_t | f(x_t))] − Σ_ℓ ν_ℓ KL_ℓ − Σ_c KL(q(v_c) ‖ N(0, I)),

the expectation exact for a Gaussian likelihood and by ``num_samples`` reparameterised draws of the
C latent functions (softmax) for a categorical one.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ...core.checks import check_bool, check_choice, check_int
from ...core.errors import ConfigError
from ...core.module import field
from ...core.posterior import check_n
from ..processes.classification import check_labels
from ..processes.predictive import ClassPredictive, ProcessPredictive
from ..processes.process import check_data as check_regression_data
from . import gram_kernels as gk
from .base import DeepKernelSettings, as_float_inputs, check_inputs
from .layers import initial_factors, jittered_cholesky, layer_factors, propagate, weighted_kl

LIKELIHOODS = ("gaussian", "categorical")


class SparseDeepKernelMachine(DeepKernelSettings):
    """A sparse deep kernel machine: regression (``likelihood="gaussian"``) or classification
    (``"categorical"``, ``num_classes`` C, labels 0 … C − 1). Fit with
    ``bk.fit(model, {"X": X, "y": y}, engine=bk.Optimize(batch_size=...))``.

    Arguments as `DeepKernelMachine` (``layers``, ``nu``, ``kernel``, ``weight_var``, ``bias_var``,
    ``lengthscale``, ``noise`` (Gaussian only), ``fixed``, ``jitter``, ``whiten``), plus ``num_inducing`` M (at most
    n; they start at a random subset of the training inputs, or all of them in order when M = n),
    ``learn_inducing`` (move the inducing inputs), ``num_samples`` (Monte Carlo draws per point of the
    categorical expected log-likelihood). Capability: `Objective` (`core.model`).
    """

    likelihood: str = field(static=True, default="gaussian")
    num_classes: int = field(static=True, default=2)
    num_inducing: int = field(static=True, default=50)
    learn_inducing: bool = field(static=True, default=True)
    num_samples: int = field(static=True, default=8)

    def __check_init__(self):
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        check_int("num_classes", self.num_classes, 2)
        check_int("num_inducing", self.num_inducing)
        check_bool("learn_inducing", self.learn_inducing)
        check_int("num_samples", self.num_samples)

    @property
    def has_noise(self) -> bool:
        return self.likelihood == "gaussian"

    @property
    def outputs(self) -> int:
        """C: latent functions of the output layer."""
        return self.num_classes if self.likelihood == "categorical" else 1

    # -- Objective ----------------------------------------------------------------------------------
    def check_data(self, data) -> dict:
        """``{"X": (n, d), "y": (n,)}``: real targets (Gaussian) or labels in [0, num_classes) (categorical)."""
        if self.likelihood == "gaussian":
            X, y = check_regression_data(data)
            X = as_float_inputs(X)
            return {"X": X, "y": jnp.asarray(y, dtype=X.dtype)}
        X, y = check_labels(data, self.num_classes)
        return {"X": as_float_inputs(X), "y": y}

    def init(self, data: dict, key) -> dict:
        """Inducing inputs at a random subset of X (all of X, in order, when M = n), every G_ii at its
        prior mean, q(v) at the prior N(0, I)."""
        X = data["X"]
        n = X.shape[0]
        M = min(self.num_inducing, n)
        idx = np.arange(n) if M == n else np.sort(np.asarray(jax.random.choice(key, n, (M,), replace=False)))
        Z = X[idx]
        params = {"hyper": self.initial_hyperparameters(X.dtype)}
        hyper = self.hyperparameters(params)
        params["grams"] = initial_factors(self.gram_map(hyper), self.input_layer(hyper, Z), self.layer_nu,
                                          jitter=self.jitter, whiten=self.whiten)
        C = self.outputs
        params.update(Z=Z, m=jnp.zeros((C, M), X.dtype), R_raw=jnp.zeros((C, M, M), X.dtype))
        return params

    def objective(self, params, batch: dict, n: int, key=None):
        """(n / |batch|) E_q[log-likelihood of the batch] − Σ_ℓ ν_ℓ KL_ℓ − KL(q(v) ‖ p(v))."""
        hyper = self.hyperparameters(params)
        mean, v, kls = self.latent(params, batch["X"])
        if self.likelihood == "gaussian":
            noise = hyper["noise"]
            ell = jnp.sum(-0.5 * jnp.log(2 * math.pi * noise) - ((batch["y"] - mean[0]) ** 2 + v[0]) / (2 * noise))
        else:
            if key is None:
                raise ConfigError("the categorical objective is a Monte Carlo estimate: it needs a PRNG `key`")
            eps = jax.random.normal(key, (self.num_samples, *mean.shape), dtype=mean.dtype)
            log_p = jax.nn.log_softmax(mean[None] + jnp.sqrt(v)[None] * eps, axis=1)  # (S, C, B)
            picked = jnp.take_along_axis(log_p, batch["y"][None, None, :], axis=1)
            ell = jnp.sum(jnp.mean(picked, axis=0))
        hidden = weighted_kl(self.nus, params["grams"], kls)
        return ell * (n / batch["X"].shape[0]) - hidden - self.output_kl(params)

    def _inducing(self, params):
        return params["Z"] if self.learn_inducing else jax.lax.stop_gradient(params["Z"])

    def output_layer(self, params, X):
        """(L, A, k_tt, KLs, jitters): the output kernel's factor on the inducing points, A = L⁻¹K_it and
        the diagonal k_tt at the points X, with the hidden layers' KLs and jitters."""
        hyper = self.hyperparameters(params)
        kmap = self.gram_map(hyper)
        Z = self._inducing(params)
        Gti, gt = self.input_layer(hyper, X, Z)
        Gii, Gti, gt, kls, jitters = propagate(kmap, layer_factors(params["grams"], self.layers),
                                               self.input_layer(hyper, Z), Gti, gt, jitter=self.jitter,
                                               whiten=self.whiten)
        L, eps = jittered_cholesky(gk.full(kmap, Gii), self.jitter)
        A = jax.scipy.linalg.solve_triangular(L, gk.cross(kmap, gt, jnp.diagonal(Gii), Gti).T, lower=True)
        return L, A, gk.diagonal(kmap, gt), kls, [*jitters, eps]

    def latent(self, params, X):
        """(mean (C, m), variance (C, m)) of the output functions at X under q, and the hidden KLs."""
        _, A, ktt, kls, _ = self.output_layer(params, X)
        R = _lower(params["R_raw"])
        RA = jnp.einsum("cmk,mt->ckt", R, A)  # R_cᵀ A
        v = ktt[None] - jnp.sum(A * A, axis=0)[None] + jnp.sum(RA * RA, axis=1)
        return params["m"] @ A, jnp.maximum(v, 1e-12), kls

    def output_kl(self, params):
        """Σ_c KL(N(m_c, R_c R_cᵀ) ‖ N(0, I)) (whitened)."""
        R_raw = params["R_raw"]
        M = R_raw.shape[-1]
        trace = jnp.sum(_lower(R_raw) ** 2)
        log_det = 2 * jnp.sum(jnp.diagonal(R_raw, axis1=1, axis2=2))
        return 0.5 * (trace + jnp.sum(params["m"] ** 2) - M * R_raw.shape[0] - log_det)

    def optimal_output(self, params, data: dict) -> dict:
        """``params`` with q(v) at its optimum given everything else, in closed form for the Gaussian
        likelihood (Titsias 2009): Σ = (I + A Aᵀ/σ_n²)⁻¹, m = Σ A y / σ_n², A = L⁻¹K_iX on all the data."""
        if self.likelihood != "gaussian":
            raise ConfigError("the optimal q(u) is closed form for likelihood='gaussian' only")
        noise = self.hyperparameters(params)["noise"]
        _, A, _, _, _ = self.output_layer(params, data["X"])
        M = A.shape[0]
        precision = jnp.eye(M, dtype=A.dtype) + A @ A.T / noise
        P = jnp.linalg.cholesky(precision)
        S = jax.scipy.linalg.cho_solve((P, True), jnp.eye(M, dtype=A.dtype))
        m = S @ A @ data["y"] / noise
        R = jnp.linalg.cholesky(S)
        R_raw = jnp.tril(R, -1) + jnp.diag(jnp.log(jnp.diagonal(R)))
        return {**params, "m": m[None], "R_raw": R_raw[None]}

    # -- predictions and draws -----------------------------------------------------------------------
    def predict(self, params, data: dict, new_data=None, *, seed=0, n=None, noisy=True, **options):
        """At new inputs (``{"X": X_new}`` or an array; default the training inputs): a `ProcessPredictive`
        of targets (``noisy=True``) or of f for the Gaussian likelihood (closed form: ``n`` is refused); for
        the categorical one a `ClassPredictive`, class probabilities E_q[softmax f] averaged over ``n``
        (default 2000) draws of f."""
        from ...core.seeds import as_key

        if options:
            raise ConfigError(f"unknown option(s) {', '.join(map(repr, options))} for "
                              f"SparseDeepKernelMachine.predict (it takes noisy=, seed=, n=)")
        X_new = check_inputs(new_data, data)
        mean, v, _ = _latent_jit(self, params, X_new)
        if self.likelihood == "gaussian":
            if n is not None:
                raise ConfigError("a Gaussian SparseDeepKernelMachine's predictive is closed form: leave `n` out and "
                                  "draw with .predict(new_data).sample(n, seed)")
            noise = float(self.hyperparameters(params)["noise"]) if noisy else 0.0
            return ProcessPredictive(np.asarray(mean[0]), np.asarray(v[0]) + noise, "normal", np.asarray(1.0))
        draws = check_n(2000 if n is None else n, "n")
        probs = _class_probabilities(mean, v, as_key(seed), draws)
        return ClassPredictive(np.asarray(probs), np.asarray(mean.T), np.asarray(v.T))

    def sample(self, params, data: dict, key, n: int) -> dict:
        """``{"u": (n, C, M)}`` (``(n, M)`` for the Gaussian likelihood): draws of the output functions at
        the inducing inputs from q(u), u_c = L (m_c + R_c ε)."""
        L, _, _, _, _ = self.output_layer(params, params["Z"][:1])
        eps = jax.random.normal(key, (n, *params["m"].shape), dtype=params["m"].dtype)
        v = params["m"][None] + jnp.einsum("cmk,sck->scm", _lower(params["R_raw"]), eps)
        u = jnp.einsum("mk,sck->scm", L, v)
        return {"u": u[:, 0] if self.likelihood == "gaussian" else u}

    def describe(self, params, data: dict) -> dict:
        """Fitted hyperparameters, ν, the jitter (relative, and absolute per learned layer and output) and
        each hidden layer's KL."""
        _, _, _, kls, jitters = _output_layer_jit(self, params, data["X"][:1])
        return {**self.describe_settings(params), "likelihood": self.likelihood,
                "num_inducing": int(params["Z"].shape[0]), "jitter": [float(j) for j in jitters],
                "kl": [float(k) for k in kls]}


def _lower(R_raw):
    """R = tril(R_raw, −1) + diag(exp(diag R_raw)), batched over the leading axis."""
    return jnp.tril(R_raw, -1) + jax.vmap(jnp.diag)(jnp.exp(jnp.diagonal(R_raw, axis1=-2, axis2=-1)))


def _class_probabilities(mean, v, key, draws: int):
    """E[softmax f] per point (m, C) by ``draws`` draws of f ~ N(mean, v) (100 at a time: memory O(100 C m))."""
    chunks = -(-draws // 100)

    def chunk(k):
        f = mean[None] + jnp.sqrt(v)[None] * jax.random.normal(k, (100, *mean.shape), dtype=mean.dtype)
        return jnp.sum(jax.nn.softmax(f, axis=1), axis=0)

    total = jax.lax.map(chunk, jax.random.split(key, chunks)).sum(0)
    return (total / (chunks * 100)).T


# compiled once per model structure and input shapes (the model is a pytree: its values are arguments);
# cheaper than running the layers op by op
_latent_jit = jax.jit(lambda model, params, X: model.latent(params, X))
_output_layer_jit = jax.jit(lambda model, params, X: model.output_layer(params, X))
