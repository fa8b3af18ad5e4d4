"""The variational posterior of a process classifier."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ...core.cache import cached, program_key
from ...core.errors import ConfigError, DataError
from ...core.posterior import Posterior, check_n
from ...core.seeds import as_key
from ...models.processes import classification as clf
from ...models.processes.predictive import ClassPredictive
from ...models.processes.process import check_new_inputs, hyperparameter_names


class ClassifierPosterior(Posterior):
    """q(u, σ²) of a fitted `ProcessClassifier`.

    ``predict(X_new)`` gives class probabilities E_q[softmax f(x)] (Monte Carlo over σ² and f);
    ``sample(n)`` draws σ² and the inducing values u (n, C, M) from q; ``elbo`` is the last
    estimate, ``history`` the ELBO per step. ``engine`` is the engine that fitted it; draws from q
    are independent (``markov`` False).
    """

    markov = False

    def __init__(self, model, kernel, params, X, y, history=(), *, engine=None):
        from .engine import unpack

        self.engine = engine
        self.model, self.kernel, self.X, self.y = model, kernel, X, y
        self.params = params
        self.Z, self.m, self.R, self.a_q, self.b_q = unpack(params)
        self.history = tuple(history)
        self.elbo = self.history[-1] if self.history else float("nan")

    def __repr__(self):
        kind = "Student-t" if self.model.student_t else "Gaussian"
        return (f"ClassifierPosterior({kind} process, {type(self.kernel).__name__} kernel, "
                f"{self.model.num_classes} classes, {self.Z.shape[0]} inducing points, ELBO {self.elbo:.3f})")

    def hyperparameters(self) -> dict:
        """Fitted kernel hyperparameters by path, q(σ²)'s (a', b') and the inducing inputs Z."""
        leaves = jax.tree_util.tree_leaves(self.kernel)
        names = [n for n in hyperparameter_names(self.model) if n.startswith("kernel.")]
        out = {n: np.asarray(v) for n, v in zip(names, leaves, strict=True)}
        if self.model.student_t:
            out["q_sigma2.a"], out["q_sigma2.b"] = np.asarray(self.a_q), np.asarray(self.b_q)
        out["Z"] = np.asarray(self.Z)
        return out

    def predict(self, new_data=None, *, seed=0, n: int | None = None, **options) -> ClassPredictive:
        """Predictive class probabilities at new inputs (``{"X": X_new}`` or an array; default: training X),
        averaged over ``n`` Monte Carlo draws of (σ², f) from q (default 2000; ``num_samples=`` is
        the same option under its older name)."""
        num_samples = options.pop("num_samples", None)
        if options:
            raise ConfigError(f"unknown option(s) {', '.join(map(repr, options))} for {type(self).__name__}.predict")
        if n is not None and num_samples is not None:
            raise ConfigError("pass the number of Monte Carlo draws once: `n` or `num_samples`, not both")
        if n is None:
            n, name = (2000, "n") if num_samples is None else (num_samples, "num_samples")
        else:
            name = "n"
        num_samples = check_n(n, name)
        if isinstance(new_data, dict) and "X" not in new_data:
            raise DataError(f"`new_data` must hold the new inputs under the key 'X' (as the fit's data did), got "
                            f"key(s) {sorted(new_data)}")
        X_new = self.X if new_data is None else check_new_inputs(
            new_data["X"] if isinstance(new_data, dict) else new_data, self.X)
        probs, mean, v = _predict()(self.kernel, self.model.scale_prior, self.Z, self.m, self.R, self.a_q, self.b_q,
                                  X_new, as_key(seed), num_samples)
        return ClassPredictive(np.asarray(probs), np.asarray(mean.T), np.asarray(v.T))

    def sample(self, n: int, seed=0) -> dict[str, np.ndarray]:
        """`n` draws from q of σ² and of the inducing values u_c = L(m_c + σ R_c ε) (n, C, M)."""
        n = check_n(n)
        key_s, key_e = jax.random.split(as_key(seed))
        s2 = clf.sample_sigma2(self.model.scale_prior, self.a_q, self.b_q, key_s, (n,))
        eps = jax.random.normal(key_e, (n, *self.m.shape), dtype=self.m.dtype)
        v = self.m[None] + jnp.sqrt(s2)[:, None, None] * jnp.einsum("cmk,sck->scm", self.R, eps)
        L = clf.inducing_factor(self.kernel, self.Z)
        return {"sigma2": np.asarray(s2), "u": np.asarray(jnp.einsum("mk,sck->scm", L, v))}


def _predict_impl(kernel, scale_prior, Z, m, R, a_q, b_q, X_new, key, num_samples):
    mean, v = clf.latent_moments(kernel, Z, m, R, X_new)
    key_s, key_e = jax.random.split(key)

    def chunk(k):  # 100 samples at a time: memory O(100 · C · m)
        ks, ke = jax.random.split(k)
        s2 = clf.sample_sigma2(scale_prior, a_q, b_q, ks, (100, 1, X_new.shape[0]))
        f = mean[None] + jnp.sqrt(s2 * v[None]) * jax.random.normal(ke, (100, *mean.shape), dtype=mean.dtype)
        return jnp.sum(jax.nn.softmax(f, axis=1), axis=0)

    chunks = -(-num_samples // 100)
    total = jax.lax.map(chunk, jax.random.split(key_e, chunks)).sum(0)
    return (total / (chunks * 100)).T, mean, v


def _predict():
    """The compiled predictive (one program in the program cache; jit specialises it per kernel
    structure, shapes and number of draws)."""
    return cached(program_key("ClassifierPosterior.predict", _predict_impl),
                  lambda: jax.jit(_predict_impl, static_argnames=("num_samples",)))
