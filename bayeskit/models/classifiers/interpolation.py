"""Kernel interpolation as a classifier: what an infinitely wide network trained to zero loss predicts.

With one-hot targets Y (n, C) and a kernel K, the classifier is argmax_c of the scores

    s(x) = k(x, X) (K + λ I)⁻¹ Y        (λ = ``ridge``; λ = 0 interpolates, as the paper does)

(for two classes, sign(yᵀK⁻¹k(x)) with y = ±1). It is the posterior mean of C independent GPs fitted
to the one-hot columns, which is how `bk.Exact` fits it: the model offers the `MarginalLikelihood`
capability (gram, factor, log marginal likelihood of the columns), and its own posterior.

Scores are computed from log|k| (deep kernels under- and overflow float64) and each test point's
scores are divided by a positive number of its own, which changes no argmax: s_j ∝ Σ_i a_i·k_ij/max_i|k_ij|.
An infinitely deep kernel (``WideDeep(depth=math.inf)``) gives its limiting rule the same way: the
normalised training Gram tends to I, and k(x, X) to 1 (majority vote), the indicator of the nearest
point (1-NN), or σ(⟨x, x_i⟩) ~ ‖x − x_i‖^(−α) (singular kernel vote; σ the Koenigs function of ř).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ...core.checks import check_int, check_non_negative_values
from ...core.errors import ConfigError, DataError
from ...core.module import Module, field
from ...core.posterior import Posterior, check_n
from ...core.seeds import as_key
from ..kernels.base import Kernel, as_inputs, check_kernel
from ..processes.classification import check_labels
from ..processes.linalg import psd_root

QUERY_CHUNK = 2048  # test points per block of k(x, X): memory n × QUERY_CHUNK


def _is_limit(kernel) -> bool:
    return getattr(kernel, "depth", None) == math.inf


def log_cross(kernel, X, X_new):
    """(sign, log|k|) of the (n, m) cross-kernel: the kernel's own ``log_matrix`` where it has one."""
    if _is_limit(kernel):
        return limit_log_cross(kernel, X, X_new)
    if hasattr(kernel, "log_matrix"):
        return kernel.log_matrix(X, X_new)
    K = kernel(X, X_new)
    return jnp.sign(K), jnp.log(jnp.abs(K))


def limit_log_cross(kernel, X, X_new):
    """log k(x_i, x) of an infinitely deep kernel's rule, up to a factor per test point."""
    from .wide_deep import sphere_delta

    delta = sphere_delta(X, X_new)  # (n, m)
    rule = kernel.limit
    if rule.rule == "majority":
        log_k = 0.0 * delta  # (not a constant array: XLA would fold the reductions over it)
    elif rule.rule == "nearest_neighbour":
        log_k = jnp.where(delta == jnp.min(delta, axis=0, keepdims=True), 0.0, -jnp.inf)
    else:
        from .deep_limits import koenigs_log

        # σ(⟨x, x_i⟩), the Koenigs function of ř; a training point equal to x takes the whole vote
        sign, log_k = koenigs_log(delta, kernel.activation)
        exact = delta == 0.0
        log_k = jnp.where(jnp.any(exact, axis=0, keepdims=True), jnp.where(exact, 0.0, -jnp.inf), log_k)
        return jnp.where(exact, 1.0, sign), log_k
    return jnp.ones_like(delta), log_k


class KernelClassifier(Module):
    """Kernel interpolation (``ridge=0``) or kernel ridge classification with a bayeskit kernel; fit it
    with ``bk.fit(KernelClassifier(WideDeep(Sine(2.0), depth=1000)), {"X": X, "y": labels}, bk.Exact())``.

    ``y`` holds integer labels 0 … C − 1 (``num_classes`` C, default: the largest label + 1).
    ``ridge`` λ > 0 is a learnable leaf: `bk.Exact` fits it by the marginal likelihood of the
    one-hot columns (``fixed=("ridge",)`` keeps it). ``jitter`` is added to the diagonal when the
    Gram matrix is numerically singular (`bk.Exact` raises it with a warning).
    """

    kernel: Kernel
    ridge: float = 0.0
    num_classes: int | None = field(static=True, default=None)
    jitter: float = 0.0

    def __check_init__(self):
        check_kernel(self.kernel)
        check_non_negative_values("KernelClassifier", ridge=self.ridge, jitter=self.jitter)
        check_int("num_classes", self.num_classes, 2, optional=True)

    @property
    def noise(self):
        """The ridge, under the name the process engines report it by."""
        return self.ridge

    # -- data -----------------------------------------------------------------------------------------
    def check_data(self, data):
        """(X, one-hot targets Y (n, C)) from ``{"X": ..., "y": labels}``."""
        X, y = check_labels(data, self.num_classes)
        y = np.asarray(y)
        if np.unique(y).size < 2:
            raise DataError("`y` must contain at least two classes")
        classes = self.num_classes or int(y.max()) + 1
        return X, jnp.asarray(np.eye(classes)[y], dtype=X.dtype)

    # -- MarginalLikelihood ---------------------------------------------------------------------------
    def gram(self, X):
        """A = K̃(X, X) + (λ + jitter) I; I for an infinitely deep kernel (its normalised limit)."""
        n = X.shape[0]
        K = jnp.eye(n, dtype=X.dtype) if _is_limit(self.kernel) else self.kernel(X)
        return K + (self.ridge + self.jitter) * jnp.eye(n, dtype=K.dtype)

    def factor(self, X, Y):
        """(Cholesky factor of A, A⁻¹Y, q = tr(YᵀA⁻¹Y), log|A|)."""
        L = jnp.linalg.cholesky(self.gram(X))
        alpha = jax.scipy.linalg.cho_solve((L, True), Y)
        return L, alpha, jnp.sum(Y * alpha), 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))

    def log_marginal_likelihood(self, X, Y):
        """Σ_c log N(Y_c | 0, A): the evidence of C independent GPs on the one-hot columns."""
        _, _, q, logdet = self.factor(X, Y)
        return _columns_log_ml(q, logdet, Y.shape)

    def exact_posterior(self, X, Y, history=(), *, engine=None):
        """The fitted classifier (what `bk.Exact` returns for this model)."""
        return KernelClassifierPosterior(self, X, Y, history, engine=engine)


def _columns_log_ml(q, logdet, shape):
    """Σ_c log N(Y_c | 0, A) from q = tr(YᵀA⁻¹Y) and log|A|, for Y of `shape` (n, C)."""
    n, c = shape
    return -0.5 * (q + c * logdet + n * c * math.log(2 * math.pi))


class Classification:
    """Predicted labels at m points, with the (rescaled) scores (m, C) they are the argmax of."""

    def __init__(self, scores):
        self.scores = np.asarray(scores)

    def __repr__(self):
        return f"Classification({self.scores.shape[0]} points, {self.scores.shape[1]} classes)"

    @property
    def labels(self) -> np.ndarray:
        return np.argmax(self.scores, axis=1)

    predicted = labels

    def accuracy(self, y) -> float:
        """The share of points whose label is predicted."""
        y = np.asarray(y)
        if y.shape != (self.scores.shape[0],):
            raise ConfigError(f"`y` must have shape ({self.scores.shape[0]},), got {y.shape}")
        return float(np.mean(self.labels == y))


class KernelClassifierPosterior(Posterior):
    """A fitted `KernelClassifier`: ``predict(X_new)`` gives a `Classification` (labels, scores,
    accuracy); ``sample(n)`` draws the C latent score functions at the training inputs from the GP
    reading of the model (with ``ridge=0`` they equal the one-hot targets: zero variance)."""

    markov = False

    def __init__(self, model, X, Y, history=(), *, engine=None):
        self.model, self.X, self.Y = model, X, Y
        self.history = tuple(history)
        self.engine = engine
        self._L, self._alpha, q, logdet = model.factor(X, Y)  # one Gram and one factorisation serve both
        self.log_marginal_likelihood = float(_columns_log_ml(q, logdet, Y.shape))

    def __repr__(self):
        return (f"KernelClassifierPosterior({type(self.model.kernel).__name__} kernel, n={self.X.shape[0]}, "
                f"{self.Y.shape[1]} classes, ridge {float(self.model.ridge):.3g})")

    def scores(self, X_new) -> np.ndarray:
        """(m, C) scores k(x, X)A⁻¹Y, each row divided by a positive number of its own."""
        X_new = as_inputs(X_new, "X")
        if X_new.shape[1] != self.X.shape[1]:
            raise DataError(f"`X` must have {self.X.shape[1]} columns like the training inputs, got {X_new.shape[1]}")
        blocks = [_scores(self.model.kernel, self.X, self._alpha, X_new[i:i + QUERY_CHUNK])
                  for i in range(0, X_new.shape[0], QUERY_CHUNK)]
        return np.concatenate([np.asarray(b) for b in blocks]) if blocks else np.zeros((0, self.Y.shape[1]))

    def predict(self, new_data=None, *, seed=0, n: int | None = None, **options) -> Classification:
        """Labels and scores at new inputs (``{"X": X_new}`` or an array; default: the training X).
        The classifier is deterministic: ``n`` is refused rather than ignored."""
        if options:
            raise ConfigError(f"unknown option(s) {', '.join(map(repr, options))} for {type(self).__name__}.predict")
        if n is not None:
            raise ConfigError(f"{type(self).__name__}.predict is deterministic: leave `n` out")
        as_key(seed)
        X_new = self.X if new_data is None else (new_data["X"] if isinstance(new_data, dict) else new_data)
        return Classification(self.scores(X_new))

    def sample(self, n: int, seed=0) -> dict[str, np.ndarray]:
        """`n` draws of the latent scores f (n, N, C) at the training inputs: f_c ~ N(K A⁻¹ Y_c, K − K A⁻¹ K)."""
        n = check_n(n)
        A = self.model.gram(self.X)
        K = A - (self.model.ridge + self.model.jitter) * jnp.eye(A.shape[0], dtype=A.dtype)
        W = jax.scipy.linalg.solve_triangular(self._L, K, lower=True)
        root = psd_root(K - W.T @ W)
        z = jax.random.normal(as_key(seed), (n, A.shape[0], self.Y.shape[1]), dtype=A.dtype)
        mean = K @ self._alpha
        return {"f": np.asarray(mean[None] + jnp.einsum("ij,sjc->sic", root, z))}

    def attrs(self):
        out = super().attrs()
        out["bayeskit_log_marginal_likelihood"] = repr(self.log_marginal_likelihood)
        out["bayeskit_jitter"] = repr(float(self.model.jitter))
        return out


@jax.jit
def _scores(kernel, X, alpha, X_new):
    sign, log_k = log_cross(kernel, X, X_new)  # (n, m)
    top = jnp.max(jnp.where(sign != 0, log_k, -jnp.inf), axis=0, keepdims=True)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    return (sign * jnp.exp(log_k - top)).T @ alpha
