"""Scale-mixture processes over functions: kernel + noise + a prior on the scale σ².

    σ² ~ p(σ²),   f | σ² ~ GP(0, σ² K),   y | f, σ² ~ N(f, σ² ε I)

(the noise is scaled by σ² too, as in Lee et al. 2022, which makes the inverse gamma conjugate).
With A = K(X, X) + ε I, q = yᵀA⁻¹y: the marginal likelihood is the 1-D mixture of
N(y | 0, σ² A) handled in `quadrature.py`, and the predictive at new inputs is a mixture over σ²
of N(μ*, σ² v*) with μ* = K*ₓA⁻¹y and v* = k** − K*ₓA⁻¹Kₓ* (+ ε for noisy targets).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ...core.checks import as_numeric, check_non_negative_values
from ...core.errors import BayeskitError, ConfigError, DataError, ModelError
from ...core.module import Module
from ..kernels.base import Kernel, as_inputs, check_kernel
from .linalg import quad_logdet
from .quadrature import log_marginal
from .scale_priors import InverseGamma, ScalePrior

MAX_JITTER = 1e-4  # relative to the mean diagonal of A


class ScaleMixtureProcess(Module):
    """A Gaussian process (``scale_prior=Fixed()``), Student-t process (``InverseGamma``) or any
    other scale mixture of a kernel. Fit with ``bk.fit(process, data={"X": X, "y": y}, engine=bk.Exact())``.

    ``noise`` is ε, the noise variance relative to σ²; ``jitter`` is added to the diagonal of A
    (absolute), normally 0: `bk.Exact` raises it, with a warning, if A is not numerically positive
    definite (duplicate inputs with tiny noise).

    Capabilities (`core.model`): `MarginalLikelihood` (``gram``, ``factor``,
    ``log_marginal_likelihood``: what `bk.Exact` fits) and `DatasetPriorSource` (``dataset_prior``:
    what amortised engines such as `bk.PFN` train on).
    """

    kernel: Kernel
    noise: float = 0.1
    scale_prior: ScalePrior = InverseGamma()
    jitter: float = 0.0

    def __check_init__(self):
        check_kernel(self.kernel)
        if not isinstance(self.scale_prior, ScalePrior):
            raise ModelError(f"`scale_prior` must be a ScalePrior (e.g. InverseGamma(2, 2)), got {self.scale_prior!r}")
        check_non_negative_values("ScaleMixtureProcess", noise=self.noise, jitter=self.jitter)

    # -- linear algebra ----------------------------------------------------------------------------
    def gram(self, X):
        """A = K(X, X) + (ε + jitter) I."""
        K = self.kernel(X)
        return K + (self.noise + self.jitter) * jnp.eye(K.shape[0], dtype=K.dtype)

    def factor(self, X, y):
        """(Cholesky factor of A, A⁻¹y, q = yᵀA⁻¹y, log|A|)."""
        L = jnp.linalg.cholesky(self.gram(X))
        alpha = jax.scipy.linalg.cho_solve((L, True), y)
        return L, alpha, jnp.dot(y, alpha), 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))

    def log_marginal_likelihood(self, X, y):
        """log p(y | X, hyperparameters), integrating σ² out."""
        q, logdet = quad_logdet(self.gram(X), y)
        return log_marginal(self.scale_prior, y.shape[0], q, logdet)

    # -- datasets from the prior (DatasetPriorSource) ------------------------------------------------
    def dataset_prior(self, *, x_dim: int, priors=None, inputs=None):
        """Datasets (X, y) simulated from this process: ``priors`` maps hyperparameter paths
        ('kernel.lengthscale', 'noise', ...) to NumPyro distributions, ``inputs`` is the distribution
        of one input point."""
        from ..priors import ProcessPrior

        return ProcessPrior(self, dict(priors or {}), x_dim=x_dim, inputs=inputs)


def hyperparameter_names(process) -> list[str]:
    """Paths of a process's hyperparameters, e.g. 'kernel.lengthscale', 'noise', 'scale_prior.a'."""
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(process)[0]]
    return [jax.tree_util.keystr(p).lstrip(".").replace("'", "") for p in paths]


def hyperparameter_domains(process) -> list[str]:
    """"positive" or "real" for each hyperparameter of `hyperparameter_names`, from the fields'
    ``domain`` (`core.module.field`); positive unless a field says otherwise."""
    import dataclasses

    out = []
    for path, _ in jax.tree_util.tree_flatten_with_path(process)[0]:
        obj, domain = process, "positive"
        for key in path:
            if isinstance(key, jax.tree_util.GetAttrKey):
                if dataclasses.is_dataclass(obj):
                    spec = {f.name: f for f in dataclasses.fields(obj)}.get(key.name)
                    domain = spec.metadata.get("domain", "positive") if spec is not None else "positive"
                obj = getattr(obj, key.name)
            elif isinstance(key, jax.tree_util.SequenceKey):
                obj = obj[key.idx]
            elif isinstance(key, jax.tree_util.DictKey):
                obj = obj[key.key]
        out.append(domain)
    return out


def check_fixed(fixed) -> None:
    """An engine's ``fixed`` setting: a tuple of hyperparameter paths (strings) to keep as given."""
    if isinstance(fixed, str) or not isinstance(fixed, (tuple, list)) or not all(isinstance(f, str) for f in fixed):
        raise ConfigError(f"`fixed` must be a tuple of hyperparameter paths such as ('kernel.lengthscale',), "
                          f"got {fixed!r}")


def numpyro_model(process: ScaleMixtureProcess, priors: dict):
    """A NumPyro model over the hyperparameters named in `priors` (path -> numpyro distribution),
    with σ² integrated out exactly: fit it with ``bk.fit(model, data={"X": X, "y": y}, engine=bk.NUTS())``
    for full Bayes over hyperparameters. Hyperparameters without a prior keep their values.

    y is an observed site of law `ProcessMarginal`, so the model also simulates: ``y=None`` draws
    datasets (prior and posterior predictive, `bk.diagnostics.sbc`).
    """
    import numpyro

    from .marginal import ProcessMarginal

    names = hyperparameter_names(process)
    unknown = [k for k in priors if k not in names]
    if unknown:
        raise ModelError(f"`priors` names {unknown[0]!r}, not a hyperparameter; they are {', '.join(names)}")
    leaves, treedef = jax.tree_util.tree_flatten(process)

    def model(X, y=None):
        values = [numpyro.sample(n, priors[n]) if n in priors else v for n, v in zip(names, leaves, strict=True)]
        proc = jax.tree_util.tree_unflatten(treedef, values)
        numpyro.sample("y", ProcessMarginal(proc, as_inputs(X, "X")), obs=None if y is None else jnp.asarray(y))

    model.__name__ = f"{type(process.scale_prior).__name__}_{type(process.kernel).__name__}_process"
    return model


def check_xy(data, owner: str, what: str) -> tuple[jax.Array, np.ndarray]:
    """(X as (n, d), y as a 1-D NumPy array) from ``data={"X": ..., "y": ...}``, with named errors
    for missing keys, shapes that disagree and non-finite inputs; `what` names y's contents."""
    if not isinstance(data, dict) or set(data) != {"X", "y"}:
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise DataError(f"`data` for a {owner} must be a dict with keys 'X' and 'y', got {got}")
    X = as_inputs(as_numeric("`X`", data["X"]), "X")
    y = np.asarray(as_numeric("`y`", data["y"]))
    if y.ndim != 1:
        raise DataError(f"`y` must be a 1-D array of {what}, got shape {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise DataError(f"`X` has {X.shape[0]} rows but `y` has {y.shape[0]} entries")
    if y.shape[0] == 0:
        raise DataError(f"`X` and `y` are empty (shapes {X.shape} and {y.shape}): a {owner} needs at least one point")
    bad = ~np.isfinite(np.asarray(X))
    if bad.any():
        raise DataError(f"`X` contains {int(bad.sum())} non-finite value(s) (NaN or inf)")
    return X, y


def check_data(data) -> tuple[jax.Array, jax.Array]:
    """(X, y) of a regression process, with named errors for bad shapes and values."""
    X, y = check_xy(data, "process", "targets")
    bad = ~np.isfinite(y.astype(float))
    if bad.any():
        raise DataError(f"`y` contains {int(bad.sum())} non-finite value(s) (NaN or inf)")
    return X, jnp.asarray(y)


def check_kernel_inputs(model, X) -> None:
    """The model's kernel takes inputs with X's d columns: a hyperparameter per input dimension (an ARD
    ``lengthscale``) has one entry or d of them, and the kernel matrix has the shape (n, n); else a
    `DataError` naming both (JAX would broadcast d = 1 silently, or fail with its broadcasting error)."""
    kernel = getattr(model, "kernel", None)
    if kernel is None:
        return
    d = X.shape[1]
    shapes = {f"kernel.{name}": np.shape(v) for name, v in zip(hyperparameter_names(kernel),
                                                               jax.tree_util.tree_leaves(kernel), strict=True)}
    listed = ", ".join(f"{k} {v}" for k, v in shapes.items() if v) or "all scalars"
    for name, shape in shapes.items():
        if name.endswith("lengthscale") and len(shape) == 1 and shape[0] not in (1, d):
            raise DataError(f"`X` has {d} column(s) (input dimensions), but {name} has {shape[0]} entries, one per "
                            f"input dimension: give X with {shape[0]} columns, or a lengthscale with 1 or {d} entries")
    try:
        out = jax.eval_shape(kernel, X[:2], X[:2])  # abstract: nothing is computed
    except BayeskitError:  # the kernel's own named error: the model raises it where it evaluates the kernel,
        return  # or never does (a WideDeep of infinite depth is the majority rule, no kernel matrix)
    except Exception as exc:  # a hyperparameter that does not broadcast against the inputs
        raise DataError(f"the kernel {type(kernel).__name__} cannot take `X` of shape {X.shape} (d = {d} input "
                        f"dimensions); its array hyperparameters: {listed} ({type(exc).__name__}: {exc})") from None
    if out.shape != (min(2, X.shape[0]),) * 2:
        raise DataError(f"the kernel {type(kernel).__name__} maps `X` of shape {X.shape} to a matrix of shape "
                        f"{out.shape} per pair of points rather than one number; its array hyperparameters: {listed}")


def check_new_inputs(X_new, X_train, name: str = "X") -> jax.Array:
    """Inputs to predict at, as (m, d) like the training inputs ``X_train``: numeric, finite, d columns."""
    X_new = as_inputs(as_numeric(f"`{name}`", X_new), name)
    d = X_train.shape[1]
    if X_new.shape[1] != d:
        raise DataError(f"new inputs `{name}` have {X_new.shape[1]} column(s), but the fit's `X` had {d} "
                        f"(one per input dimension); got shape {X_new.shape}")
    bad = ~np.isfinite(np.asarray(X_new))
    if bad.any():
        raise DataError(f"new inputs `{name}` contain {int(bad.sum())} non-finite value(s) (NaN or inf)")
    return X_new


def with_working_jitter(process: ScaleMixtureProcess, X) -> ScaleMixtureProcess:
    """`process` with the smallest jitter (0, then 1e-10 .. MAX_JITTER times the mean diagonal)
    that makes A numerically positive definite; warns when jitter is added, raises if none works."""
    A = np.asarray(process.gram(X))
    scale = float(np.mean(np.diag(A))) if A.size else 1.0
    for rel in [0.0] + [10.0**k for k in range(-10, -3)]:
        try:
            np.linalg.cholesky(A + rel * scale * np.eye(A.shape[0]))
        except np.linalg.LinAlgError:
            continue
        if rel == 0.0:
            return process
        jitter = process.jitter + rel * scale
        warnings.warn(
            f"the kernel matrix plus noise is not numerically positive definite (duplicate inputs or "
            f"noise={process.noise}); added jitter {jitter:.3g} to its diagonal",
            UserWarning,
            stacklevel=3,
        )
        return process.replace(jitter=jitter)
    raise ModelError(
        f"the kernel matrix plus noise is not positive definite even with jitter {MAX_JITTER:g} x its mean "
        f"diagonal; check the kernel hyperparameters and set noise > 0"
    )

