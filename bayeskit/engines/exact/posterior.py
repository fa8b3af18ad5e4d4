"""The posterior of a scale-mixture process: closed form given the hyperparameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import softmax

from ...core.cache import cached, program_key
from ...core.errors import ConfigError, DataError
from ...core.posterior import Posterior, check_n
from ...core.seeds import as_key
from ...models.kernels.base import as_inputs
from ...models.processes.linalg import psd_root
from ...models.processes.predictive import ProcessPredictive
from ...models.processes.process import check_new_inputs, hyperparameter_names
from ...models.processes.quadrature import inverse_gamma_posterior, log_marginal, sigma2_nodes
from ...models.processes.scale_priors import Fixed, InverseGamma


class ProcessPosterior(Posterior):
    """p(σ², f | X, y) for a fitted `ScaleMixtureProcess`.

    ``predict(X_new)`` gives the predictive distribution of targets (``noisy=True``) or of f;
    ``sample(n)`` draws σ² and f at the training inputs; ``sample_functions(X_new, n)`` draws
    whole functions jointly at new inputs. ``engine`` is the engine that fitted it; the draws are
    independent (``markov`` False).
    """

    markov = False

    def __init__(self, process, X, y, history=(), *, engine=None):
        self.process, self.X, self.y = process, X, y
        self.history = tuple(history)
        self.engine = engine
        q, logdet = self._factorise()
        self._set_scale_posterior(q, logdet)

    def _factorise(self):
        """(q, log|A|), keeping what predictions need: here the Cholesky factor and A⁻¹y."""
        self._L, self._alpha, q, logdet = self.process.factor(self.X, self.y)
        return q, logdet

    def _set_scale_posterior(self, q, logdet):
        """p(σ² | y) from q and log|A|: a point mass, an inverse gamma or quadrature nodes."""
        n = self.y.shape[0]
        prior = self.process.scale_prior
        self.log_marginal_likelihood = float(log_marginal(prior, n, q, logdet))
        if isinstance(prior, Fixed):
            self._family, self._s2 = "normal", np.asarray(prior.value)
        elif isinstance(prior, InverseGamma):
            a_post, b_post = inverse_gamma_posterior(prior, n, q)
            self._family, self._ig = "student_t", (float(a_post), float(b_post))
        else:
            t, log_w = sigma2_nodes(prior, n, q, logdet)
            self._family, self._nodes, self._weights = "mixture", np.exp(np.asarray(t)), np.asarray(softmax(log_w))

    def _root_product(self, Ks):
        """W (m, r) with W Wᵀ = K*ₓA⁻¹Kₓ* for Ks = K(X, X_new)."""
        return jax.scipy.linalg.solve_triangular(self._L, Ks, lower=True).T

    def __repr__(self):
        return (f"ProcessPosterior({type(self.process.kernel).__name__} kernel, "
                f"{type(self.process.scale_prior).__name__} scale prior, n={self.y.shape[0]}, "
                f"log marginal likelihood {self.log_marginal_likelihood:.4f})")

    def hyperparameters(self) -> dict:
        """Hyperparameters by path, e.g. {'kernel.weight_var': 1.7, 'noise': 0.05, ...}."""
        leaves = jax.tree_util.tree_leaves(self.process)
        return {n: np.asarray(v) for n, v in zip(hyperparameter_names(self.process), leaves, strict=True)}

    # -- predictions ---------------------------------------------------------------------------------
    def _conditional(self, X_new, noisy):
        mean, v = _conditional()(self.process.kernel, self._L, self._alpha, self.X, X_new)
        return np.asarray(mean), np.asarray(v) + (self.process.noise if noisy else 0.0)

    def predict(self, new_data=None, *, seed=0, n: int | None = None, **options) -> ProcessPredictive:
        """The exact predictive distribution at new inputs (``{"X": X_new}`` or an array; default:
        the training X), of targets or, with the option ``noisy=False``, of f.

        It is closed form, so neither ``seed`` nor ``n`` is used: draw from it with
        ``predict(...).sample(n, seed)`` (``n`` is refused rather than ignored).
        """
        noisy = options.pop("noisy", True)
        if options:
            raise ConfigError(f"unknown option(s) {', '.join(map(repr, options))} for {type(self).__name__}.predict "
                              f"(it takes noisy=)")
        if n is not None:
            raise ConfigError(f"{type(self).__name__}.predict returns the exact predictive distribution, not draws: "
                              f"leave `n` out and draw with .predict(new_data).sample(n, seed)")
        as_key(seed)  # a bad seed is an error here too
        if isinstance(new_data, dict) and "X" not in new_data:
            raise DataError(f"`new_data` must hold the new inputs under the key 'X' (as the fit's data did), got "
                            f"key(s) {sorted(new_data)}")
        X_new = self.X if new_data is None else check_new_inputs(
            new_data["X"] if isinstance(new_data, dict) else new_data, self.X)
        mean, v = self._conditional(X_new, bool(noisy))
        if self._family == "normal":
            return ProcessPredictive(mean, v, "normal", self._s2)
        if self._family == "student_t":
            a_post, b_post = self._ig
            return ProcessPredictive(mean, v, "student_t", np.asarray(b_post / a_post), df=2 * a_post)
        return ProcessPredictive(mean, v, "mixture", self._nodes, weights=self._weights)

    def _sample_s2(self, key, n):
        if self._family == "normal":
            return jnp.full((n,), float(self._s2))
        if self._family == "student_t":
            a_post, b_post = self._ig
            return b_post / jax.random.gamma(key, a_post, (n,))
        idx = jax.random.choice(key, self._nodes.shape[0], (n,), p=jnp.asarray(self._weights))
        return jnp.asarray(self._nodes)[idx]

    def _draw(self, X_new, n, seed, noisy):
        """(σ² draws (n,), joint draws of f or targets at X_new (n, m)): f | σ², y is Gaussian."""
        X_new = as_inputs(X_new, "X_new")
        k = self.process.kernel
        Ks = k(self.X, X_new)
        w = self._root_product(Ks)
        cov = k(X_new) - w @ w.T
        m = cov.shape[0]
        cov = cov + (self.process.noise if noisy else 0.0) * jnp.eye(m, dtype=cov.dtype)
        root = psd_root(cov)
        key_s, key_z = jax.random.split(as_key(seed))
        s2 = self._sample_s2(key_s, n)
        z = jax.random.normal(key_z, (n, m), dtype=cov.dtype)
        mean = Ks.T @ self._alpha
        return np.asarray(s2), np.asarray(mean[None, :] + jnp.sqrt(s2)[:, None] * (z @ root.T))

    def sample_functions(self, X_new, n: int, seed=0, *, noisy: bool = False) -> np.ndarray:
        """(n, m) joint draws of f(X_new) (or of targets, ``noisy=True``) from the posterior."""
        return self._draw(X_new, check_n(n), seed, noisy)[1]

    def sample(self, n: int, seed=0) -> dict[str, np.ndarray]:
        """`n` joint posterior draws of σ² and of f at the training inputs."""
        s2, f = self._draw(self.X, check_n(n), seed, noisy=False)
        return {"sigma2": s2, "f": f}

    def attrs(self):
        out = super().attrs()
        out["bayeskit_log_marginal_likelihood"] = repr(self.log_marginal_likelihood)
        return out


def _conditional():
    """The compiled predictive moments (one program in the program cache; jit specialises it per
    kernel structure and shapes)."""
    return cached(program_key("ProcessPosterior.conditional", _conditional_impl), lambda: jax.jit(_conditional_impl))


def _conditional_impl(kernel, L, alpha, X, X_new):
    """Predictive mean K*ₓA⁻¹y and variance per unit σ², k** − K*ₓA⁻¹Kₓ*, at X_new."""
    Ks = kernel(X, X_new)  # (n, m)
    w = jax.scipy.linalg.solve_triangular(L, Ks, lower=True)
    return Ks.T @ alpha, jnp.maximum(kernel.diag(X_new) - jnp.sum(w * w, axis=0), 0.0)
