"""`bk.SparseVariational`: sparse variational inference for process classifiers."""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ...core.cache import cached, program_key
from ...core.checks import check_bool, check_int, check_positive
from ...core.engine import Engine
from ...core.errors import ConfigError
from ...core.model import SparseClassifier
from ...core.optimise import run_steps
from ...models.processes import classification as clf
from ...models.processes.process import check_fixed, check_kernel_inputs, hyperparameter_names
from .posterior import ClassifierPosterior


class SparseVariational(Engine):
    """Maximise the ELBO of a `ProcessClassifier` over q(u | σ²), q(σ²), the inducing inputs and the
    kernel hyperparameters, by Adam for ``steps`` steps.

    Each step estimates the expected log-likelihood with ``num_samples`` reparameterised draws per
    point (on a random minibatch of ``batch_size`` points, scaled by n / batch, when given); the KL
    terms are exact. Inducing inputs start at a random subset of the training inputs and move
    unless ``learn_inducing=False``; positive kernel hyperparameters are learned on the log scale
    unless named in ``fixed`` (paths such as ``"kernel.weight_var"``). The prior's (a, b) stay.
    """

    steps: int = 2000
    learning_rate: float = 0.01
    num_samples: int = 8
    batch_size: int | None = None
    learn_inducing: bool = True
    fixed: tuple[str, ...] = ()
    progress: bool = True

    capability: ClassVar = SparseClassifier
    #: the Adam step compiles the same program whatever the number of steps
    runtime_fields: ClassVar = ("progress", "steps")

    def __check_init__(self):
        check_int("steps", self.steps)
        check_int("num_samples", self.num_samples)
        check_int("batch_size", self.batch_size, optional=True)
        check_positive("learning_rate", self.learning_rate)
        check_bool("learn_inducing", self.learn_inducing)
        check_bool("progress", self.progress)
        check_fixed(self.fixed)

    def fit(self, model: clf.ProcessClassifier, data, key) -> ClassifierPosterior:
        X, y = clf.check_labels(data, model.num_classes)
        check_kernel_inputs(model, X)
        n = X.shape[0]
        names = hyperparameter_names(model)
        unknown = [f for f in self.fixed if f not in names]
        if unknown:
            raise ConfigError(f"`fixed` names {unknown[0]!r}, not a hyperparameter; they are {', '.join(names)}")
        kernel_leaves, kernel_def = jax.tree_util.tree_flatten(model.kernel)
        kernel_names = [nm for nm in names if nm.startswith("kernel.")]
        free = tuple(i for i, (nm, v) in enumerate(zip(kernel_names, kernel_leaves, strict=True))
                     if nm not in self.fixed and bool(np.all(np.asarray(v) > 0)))
        key_init, key_run = jax.random.split(key)
        params = init_params(model, X, kernel_leaves, free, key_init)
        batch = n if self.batch_size is None else min(self.batch_size, n)
        key = program_key("SparseVariational.step", kernel_def, static=(free, batch, n),
                          arrays={"X": X, "y": y}, engine=self)
        step, init = cached(key, lambda: _step(kernel_def, free, float(self.learning_rate), self.num_samples, batch,
                                               n, self.learn_inducing))
        fixed_leaves = [jnp.asarray(v, dtype=X.dtype) for v in kernel_leaves]
        keys = iter(jax.random.split(key_run, self.steps))

        def one_step(p, state):
            return step(p, state, fixed_leaves, model.scale_prior, X, y, next(keys))

        params, history = run_steps(one_step, params, init(params), steps=self.steps, n=n, progress=self.progress,
                                    desc="sparse VI", label="ELBO", keep="last")
        kernel = build_kernel(kernel_def, fixed_leaves, free, params["kernel"])
        return ClassifierPosterior(model, kernel, params, X, y, history, engine=self)


def build_kernel(kernel_def, leaves, free, log_values):
    vals = list(leaves)
    for i, t in zip(free, log_values, strict=True):
        vals[i] = jnp.exp(t)
    return jax.tree_util.tree_unflatten(kernel_def, vals)


def init_params(model, X, kernel_leaves, free, key):
    """Inducing inputs at a random subset of X, q(v | σ²) at the prior N(0, σ² I), q(σ²) at p(σ²)."""
    n = X.shape[0]
    M = min(model.num_inducing, n)
    idx = np.sort(np.asarray(jax.random.choice(key, n, (M,), replace=False)))
    C = model.num_classes
    params = {
        "kernel": [jnp.log(jnp.asarray(kernel_leaves[i], dtype=X.dtype)) for i in free],
        "Z": X[idx],
        "m": jnp.zeros((C, M), X.dtype),
        "R_raw": jnp.zeros((C, M, M), X.dtype),  # R = tril(R_raw, -1) + diag(exp(diag R_raw)) = I
    }
    if model.student_t:
        params["log_a"] = jnp.log(jnp.asarray(model.scale_prior.a, X.dtype))
        params["log_b"] = jnp.log(jnp.asarray(model.scale_prior.b, X.dtype))
    return params


def unpack(params):
    """(Z, m, R, a', b') from the unconstrained parameters (a' = b' = None for the GP)."""
    R_raw = params["R_raw"]
    R = jnp.tril(R_raw, -1) + jax.vmap(jnp.diag)(jnp.exp(jnp.diagonal(R_raw, axis1=1, axis2=2)))
    if "log_a" in params:
        return params["Z"], params["m"], R, jnp.exp(params["log_a"]), jnp.exp(params["log_b"])
    return params["Z"], params["m"], R, None, None


def elbo(params, kernel_def, free, fixed_leaves, scale_prior, X, y, key, num_samples, n):
    """ELBO estimate on the points (X, y), the expected log-likelihood scaled by n / len(y)."""
    kernel = build_kernel(kernel_def, fixed_leaves, free, params["kernel"])
    Z, m, R, a_q, b_q = unpack(params)
    mean, v = clf.latent_moments(kernel, Z, m, R, X)
    ell = clf.expected_log_likelihood(scale_prior, mean, v, y, a_q, b_q, key, num_samples)
    return ell * (n / y.shape[0]) - clf.kl(scale_prior, m, R, a_q, b_q)


def _step(kernel_def, free, learning_rate, num_samples, batch, n, learn_inducing):
    """(jitted Adam step on -ELBO / n, init) for one structure (kept in the program cache, so refits
    compile nothing)."""
    import optax

    opt = optax.adam(learning_rate)

    @jax.jit
    def step(params, state, fixed_leaves, scale_prior, X, y, key):
        key_batch, key_mc = jax.random.split(key)
        if batch < n:
            idx = jax.random.choice(key_batch, n, (batch,), replace=False)
            X, y = X[idx], y[idx]

        def loss(p):
            if not learn_inducing:
                p = {**p, "Z": jax.lax.stop_gradient(p["Z"])}
            return -elbo(p, kernel_def, free, fixed_leaves, scale_prior, X, y, key_mc, num_samples, n) / n

        value, grad = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grad, state)
        return optax.apply_updates(params, updates), state, value

    return step, opt.init
