"""`bk.Exact`: closed-form (or quadrature-exact) inference for scale-mixture processes, with
type-II maximum likelihood of the hyperparameters."""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ...core.cache import cached, program_key
from ...core.checks import check_bool, check_int, check_positive
from ...core.engine import Engine
from ...core.errors import ConfigError
from ...core.model import MarginalLikelihood
from ...core.optimise import run_steps
from ...models.processes.process import (
    ScaleMixtureProcess,
    check_data,
    check_fixed,
    check_kernel_inputs,
    hyperparameter_domains,
    hyperparameter_names,
    with_working_jitter,
)
from .posterior import ProcessPosterior
from .settings import MatrixFree

CHOLESKY_MAX_N = 10_000  # "auto" switches to the matrix-free solver above this many points


class Exact(Engine):
    """Exact posterior of a `ScaleMixtureProcess`, after fitting its hyperparameters.

    With ``optimize`` the kernel, noise and scale-prior hyperparameters maximise the log marginal
    likelihood (type-II ML) by Adam for ``steps`` steps: positive ones on their logarithms, real
    ones (a `LogNormal` scale prior's ``loc``) as they are. Those named in ``fixed`` (paths such as
    ``"kernel.lengthscale"``, ``"noise"``, ``"scale_prior.a"``) stay as given, and so does a
    positive one set to exactly 0 (e.g. NNGP's default ``bias_var=0``: no bias term), which no
    log-scale step can leave; set it positive to learn it. A negative value of a positive
    hyperparameter is refused (`ConfigError`). A non-finite log ML stops the fit with a
    `SamplingError` that carries the posterior at the best point reached (``error.partial``).

    ``solver``: "cholesky" (dense, exact), "cg" or a `MatrixFree` (GPyTorch's matrix-free CG and
    stochastic Lanczos quadrature, for large N; needs the ``torch`` extra), or "auto": Cholesky
    up to N = 10,000, matrix-free above.
    """

    optimize: bool = True
    steps: int = 300
    learning_rate: float = 0.05
    fixed: tuple[str, ...] = ()
    progress: bool = True
    solver: str | MatrixFree = "auto"

    capability: ClassVar = MarginalLikelihood
    #: the Adam step compiles the same program whatever the number of steps or the solver setting
    runtime_fields: ClassVar = ("progress", "steps", "optimize", "solver")

    def __check_init__(self):
        check_bool("optimize", self.optimize)
        check_bool("progress", self.progress)
        check_int("steps", self.steps)
        check_positive("learning_rate", self.learning_rate)
        check_fixed(self.fixed)
        if not (isinstance(self.solver, MatrixFree) or self.solver in ("auto", "cholesky", "cg")):
            raise ConfigError(f"`solver` must be 'auto', 'cholesky', 'cg' or a bk.MatrixFree(...), got {self.solver!r}")

    def matrix_free(self, n: int) -> MatrixFree | None:
        """The matrix-free settings this engine uses for `n` data points, or None for Cholesky."""
        if isinstance(self.solver, MatrixFree):
            return self.solver
        if self.solver == "cg" or (self.solver == "auto" and n > CHOLESKY_MAX_N):
            return MatrixFree()
        return None

    def fit(self, model: ScaleMixtureProcess, data, key) -> ProcessPosterior:
        # A model may read its own data (e.g. class labels as one-hot targets) and make its own
        # posterior (a classifier's); by default both are a regression process's.
        X, y = model.check_data(data) if hasattr(model, "check_data") else check_data(data)
        check_kernel_inputs(model, X)  # before any kernel matrix: a named error, not JAX's broadcasting one
        own_posterior = getattr(model, "exact_posterior", None)
        settings = self.matrix_free(y.shape[0])
        if own_posterior is not None and settings is not None:
            if isinstance(self.solver, MatrixFree) or self.solver == "cg":
                raise ConfigError(f"{type(model).__name__} is fitted by Cholesky only: use solver='cholesky' or 'auto'")
            settings = None
        if settings is not None:
            from ...core.optional import needs_extra

            with needs_extra(f"the matrix-free solver (bk.MatrixFree, solver='cg', or solver='auto' above "
                             f"N = {CHOLESKY_MAX_N:,})"):
                from .matrix_free import fit_matrix_free

                return fit_matrix_free(self, settings, model, X, y, key)

        def posterior(process, history):
            if own_posterior is not None:
                return process.exact_posterior(X, y, history, engine=self)
            return ProcessPosterior(process, X, y, history, engine=self)

        process = with_working_jitter(model, X)
        history = ()
        if self.optimize:
            process, history = self._type2_ml(
                process, X, y, partial=lambda p, h: posterior(with_working_jitter(p, X), tuple(h)))
            process = with_working_jitter(process, X)
        return posterior(process, history)

    def _type2_ml(self, process, X, y, partial=None):
        treedef, values, free, real = self.free_leaves(process, y.dtype)
        if not free:  # nothing to learn (every hyperparameter fixed, zero or structural)
            return process, ()
        key = program_key("Exact.type2_ml", treedef, static=(tuple(free), real), arrays={"X": X, "y": y},
                          engine=self)
        build, step, init = cached(key, lambda: _optimiser(treedef, tuple(free), real, float(self.learning_rate)))
        theta = [values[i] if i in real else jnp.log(values[i]) for i in free]
        best, history = self.optimise(lambda th, st: step(th, st, values, X, y), theta, init(theta), y.shape[0],
                                      partial=None if partial is None else lambda th, h: partial(build(th, values), h))
        return build(best, values), history

    def free_leaves(self, process, dtype):
        """(treedef, leaf values, indices of the leaves to optimise, the subset of those on the real
        line) of a process: positive leaves are learned on the log scale, real ones as they are."""
        leaves, treedef = jax.tree_util.tree_flatten(process)
        names, domains = hyperparameter_names(process), hyperparameter_domains(process)
        values = [jnp.asarray(v, dtype=dtype) for v in leaves]
        unknown = [f for f in self.fixed if f not in names]
        if unknown:
            raise ConfigError(f"`fixed` names {unknown[0]!r}, not a hyperparameter; they are {', '.join(names)}")
        free, real = [], []
        for i, (name, domain, v) in enumerate(zip(names, domains, values, strict=True)):
            if name in self.fixed or name == "jitter":
                continue
            v = np.asarray(v)
            if domain == "real":
                free.append(i)
                real.append(i)
            elif np.all(v > 0):
                free.append(i)
            elif not np.all(v == 0):  # 0 is a structural zero (no bias term, no noise): kept, as documented
                raise ConfigError(f"hyperparameter {name!r} must be positive to be learned on the log scale, got "
                                  f"{v.tolist()}: give positive values, or keep it as it is with fixed=({name!r},)")
        return treedef, values, free, tuple(real)

    def optimise(self, step, theta, state, n, partial=None):
        """Adam steps with a progress bar; the best finite point and the log ML history (a non-finite
        log ML raises `SamplingError` with ``partial(theta, history)`` at the best point)."""
        return run_steps(step, theta, state, steps=self.steps, n=n, progress=self.progress, desc="type-II ML",
                         label="log ML", partial=partial)


def _optimiser(treedef, free: tuple[int, ...], real: tuple[int, ...], learning_rate: float):
    """(build, jitted Adam step, init) for one process structure (kept in the program cache, so
    refits compile nothing).

    ``build(theta, values)`` puts exp(theta) into the free leaves (theta itself into the `real`
    ones); the loss is -log ML / n.
    """
    import optax

    def build(theta, values):
        vals = list(values)
        for i, t in zip(free, theta, strict=True):
            vals[i] = t if i in real else jnp.exp(t)
        return jax.tree_util.tree_unflatten(treedef, vals)

    opt = optax.adam(learning_rate)

    def loss(theta, values, X, y):
        return -build(theta, values).log_marginal_likelihood(X, y) / y.shape[0]

    @jax.jit
    def step(theta, state, values, X, y):
        value, grad = jax.value_and_grad(loss)(theta, values, X, y)
        updates, state = opt.update(grad, state)
        return optax.apply_updates(theta, updates), state, value

    return build, step, opt.init
