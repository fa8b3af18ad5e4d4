"""Multi-class classification with a scale-mixture process prior, by sparse variational inference.

Model (Lee et al. 2022, classification): C latent functions share the scale σ²,

    σ² ~ p(σ²),   f_c | σ² ~ GP(0, σ² K) independently over c,   y | f ~ Categorical(softmax f(x)).

Variational family, with M inducing inputs Z and u_c = f_c(Z):

    q(σ²) = IG(a', b'),   q(u_c | σ²) = N(L m_c, σ² L S_c Lᵀ),   S_c = R_c R_cᵀ,   K(Z, Z) = L Lᵀ,

the paper's q(u | σ²) = N(m, σ² S) written in whitened coordinates (the same family; better
conditioned for optimisation). The ELBO is

    Σ_i E_q[log softmax(f(x_i))_{y_i}] − KL(IG(a', b') ‖ p(σ²)) − Σ_c E_q(σ²) KL(N(m_c, σ² S_c) ‖ N(0, σ² I)),

KL terms closed form (`divergences.py`). Given σ², f_c(x) is Gaussian with mean μ_c(x) = aᵀm_c and
variance σ² v_c(x), v_c = k(x, x) − aᵀa + ‖R_cᵀa‖², a = L⁻¹k(Z, x); over q(σ²) it is a Student t
with 2a' degrees of freedom. ``scale_prior=Fixed(s)`` is the Gaussian-process counterpart
(q(σ²) a point mass at s).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ...core.checks import check_int
from ...core.errors import DataError, ModelError
from ...core.module import Module, field
from ..kernels.base import Kernel, check_kernel
from .divergences import expected_gaussian_kl, kl_inverse_gamma
from .process import check_xy
from .scale_priors import Fixed, InverseGamma, ScalePrior

INDUCING_JITTER = 1e-6  # added to K(Z, Z), relative to its mean diagonal


class ProcessClassifier(Module):
    """A Student-t (``InverseGamma``) or Gaussian (``Fixed``) process classifier with `num_classes`
    classes. Fit with ``bk.fit(model, data={"X": X, "y": labels}, engine=bk.SparseVariational())``;
    labels are integers in [0, num_classes). Capability: `SparseClassifier` (`core.model`).
    """

    kernel: Kernel
    num_classes: int = field(static=True, default=2)
    scale_prior: ScalePrior = InverseGamma(2.0, 2.0)
    num_inducing: int = field(static=True, default=50)

    def __check_init__(self):
        check_kernel(self.kernel)
        if not isinstance(self.scale_prior, (Fixed, InverseGamma)):
            raise ModelError("`scale_prior` of a classifier must be InverseGamma (Student-t process) or Fixed "
                             f"(Gaussian process): q(σ²) is inverse gamma, got {self.scale_prior!r}")
        check_int("num_classes", self.num_classes, 2)
        check_int("num_inducing", self.num_inducing, 1)

    @property
    def student_t(self) -> bool:
        return isinstance(self.scale_prior, InverseGamma)


def check_labels(data, num_classes: int | None):
    """(X, labels) from ``data={"X": ..., "y": ...}`` with named errors; ``num_classes=None`` takes the
    largest label + 1."""
    X, y = check_xy(data, "classifier", "class labels")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise DataError(f"`y` contains {int((~np.isfinite(y)).sum())} non-finite value(s) (NaN or inf); it must hold "
                        f"integer class labels")
    if y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
        raise DataError(f"`y` must hold integer class labels, got dtype {y.dtype}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 2
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"`y` labels must be in [0, {num_classes}) for num_classes={num_classes}, "
                        f"got values from {y.min()} to {y.max()}")
    return X, jnp.asarray(y.astype(np.int32))


def inducing_factor(kernel, Z):
    """Lower Cholesky factor of K(Z, Z) + jitter."""
    Kzz = kernel(Z)
    jitter = INDUCING_JITTER * jnp.mean(jnp.diagonal(Kzz))
    return jnp.linalg.cholesky(Kzz + jitter * jnp.eye(Z.shape[0], dtype=Kzz.dtype))


def latent_moments(kernel, Z, m, R, X):
    """μ (C, n) and v (C, n): f_c(x) | σ² ~ N(μ_c(x), σ² v_c(x)) under q."""
    L = inducing_factor(kernel, Z)
    a = jax.scipy.linalg.solve_triangular(L, kernel(Z, X), lower=True)  # (M, n)
    mean = m @ a
    Ra = jnp.einsum("cmk,mn->ckn", R, a)  # R_cᵀ a
    v = kernel.diag(X) - jnp.sum(a * a, axis=0) + jnp.sum(Ra * Ra, axis=1)
    return mean, jnp.maximum(v, 1e-12)


def sample_sigma2(scale_prior, a_q, b_q, key, shape):
    """Reparameterised draws of σ² from q: b'/Gamma(a') (implicit gradients), or the fixed value."""
    if isinstance(scale_prior, Fixed):
        return jnp.full(shape, scale_prior.value)
    return b_q / jax.random.gamma(key, a_q, shape)


def kl(scale_prior, m, R, a_q, b_q):
    """KL(q(u, σ²) ‖ p(u, σ²)), summed over the classes (whitened: p(v | σ²) = N(0, σ² I))."""
    eye = jnp.eye(m.shape[-1], dtype=m.dtype)
    if isinstance(scale_prior, Fixed):
        inv_scale, kl_scale = 1.0 / scale_prior.value, 0.0
    else:
        inv_scale = a_q / b_q
        kl_scale = kl_inverse_gamma(a_q, b_q, scale_prior.a, scale_prior.b)
    per_class = jax.vmap(lambda mc, Rc: expected_gaussian_kl(mc, Rc, eye, inv_scale))(m, R)
    return kl_scale + jnp.sum(per_class)


def expected_log_likelihood(scale_prior, mean, v, y, a_q, b_q, key, num_samples: int):
    """Monte Carlo Σ_i E_q[log softmax(f(x_i))_{y_i}]: σ² drawn per sample and point (shared by the
    classes, as in the model), f by the reparameterisation trick."""
    key_s, key_e = jax.random.split(key)
    n = y.shape[0]
    s2 = sample_sigma2(scale_prior, a_q, b_q, key_s, (num_samples, 1, n))
    eps = jax.random.normal(key_e, (num_samples, *mean.shape), dtype=mean.dtype)
    f = mean[None] + jnp.sqrt(s2 * v[None]) * eps  # (S, C, n)
    logp = jax.nn.log_softmax(f, axis=1)
    picked = jnp.take_along_axis(logp, y[None, None, :], axis=1)[:, 0, :]
    return jnp.sum(jnp.mean(picked, axis=0))
