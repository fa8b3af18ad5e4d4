"""Priors as dataset generators: what amortised engines (a PFN) are trained on.

A dataset prior simulates regression datasets ``(x, y)``: ``sample(key, B, T)`` returns B
independent datasets of T points each, x of shape (B, T, d) and y of shape (B, T), as JAX arrays
drawn under one ``jit`` + ``vmap`` (they cross to PyTorch once per batch). A model offers one
through the `DatasetPriorSource` capability (``model.dataset_prior(x_dim=, priors=, inputs=)``).

* `ProcessPrior`: a `ScaleMixtureProcess` (GP, Student-t process, other scale mixtures), with
  optional hyperpriors (path -> NumPyro distribution, as `numpyro_model` takes them): per dataset
  θ ~ p(θ), σ² ~ p(σ²), y | x ~ N(0, σ² (K_θ(x, x) + ε I)).
* `ModelPrior`: a NumPyro model ``model(X, y=None)`` run forward at drawn inputs; its observed
  site is the target.
* `LearningCurvePrior`: LC-PFN's prior over learning curves (`bayeskit.models.learning_curves`).

Inputs are drawn i.i.d. from ``inputs``, a NumPyro distribution over one input point (event shape
(d,)); the default is uniform on [0, 1]^d.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ..core import cache
from ..core.checks import check_int
from ..core.errors import ConfigError, ModelError
from ..core.module import Module, field


def _uniform_inputs(x_dim: int):
    import numpyro.distributions as dist

    return dist.Uniform(0.0, 1.0).expand([x_dim]).to_event(1)


def _check_inputs(inputs, x_dim):
    if inputs is None:
        return _uniform_inputs(x_dim)
    shape = tuple(getattr(inputs, "event_shape", ())) + tuple(getattr(inputs, "batch_shape", ()))
    if not hasattr(inputs, "sample") or shape != (x_dim,):
        raise ConfigError(f"`inputs` must be a NumPyro distribution over one input point, of shape ({x_dim},) "
                          f"(e.g. dist.Uniform(0, 1).expand([{x_dim}]).to_event(1)), got {inputs!r}")
    return inputs


class DatasetPrior(Module, pytree=False):
    """Base class: ``sample(key, num_datasets, num_points) -> (x (B, T, d), y (B, T))``.

    A subclass sets ``x_dim`` and writes ``_one(key, num_points) -> (x (T, d), y (T,))``, one
    dataset; `sample` runs it jitted and vmapped over a batch of keys. The compiled simulator is
    kept with the prior and in the program cache (`core.cache`), so equal priors share it.
    """

    x_dim = 1
    #: where a dataset's queries lie in training: "anywhere" (exchangeable points, split at random) or
    #: "after" (ordered inputs, the queries follow the context: a learning curve's later epochs). A
    #: network trained on "after" predicts beyond the last context input only (`PFNPosterior.predict`).
    queries = "anywhere"

    def _one(self, key, num_points):  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, key, num_datasets: int, num_points: int):
        check_int("num_datasets", num_datasets)
        check_int("num_points", num_points)
        samplers = self.__dict__.setdefault("_samplers", {})  # frozen fields; a cache beside them
        if num_points not in samplers:
            samplers[num_points] = cache.cached(
                ("dataset_prior", self, num_points),
                lambda: jax.jit(jax.vmap(lambda k: self._one(k, num_points))))
        return samplers[num_points](jax.random.split(key, num_datasets))


class ProcessPrior(DatasetPrior):
    """Datasets from a scale-mixture process with hyperpriors: ``priors`` maps hyperparameter paths
    ('kernel.lengthscale', 'noise', ...) to NumPyro distributions; the rest keep their values.

    ``t_noise`` > 0 adds heavy-tailed noise γ·ε_i, ε_i ~ Student-t(2.1), γ ~ U(0, t_noise) per dataset
    (the "t-noise" GP tasks of the neural-process literature, where t_noise = 0.15).
    """

    process: object
    priors: dict = field(default_factory=dict, converter=lambda p: dict(p or {}))
    x_dim: int = 1
    inputs: object = None
    t_noise: float = 0.0

    def __check_init__(self):
        from .processes.process import ScaleMixtureProcess, hyperparameter_names

        if not isinstance(self.process, ScaleMixtureProcess):
            raise ConfigError(f"`process` must be a ScaleMixtureProcess, got {type(self.process).__name__}")
        check_int("x_dim", self.x_dim)
        names = hyperparameter_names(self.process)
        unknown = [k for k in self.priors if k not in names]
        if unknown:
            raise ConfigError(f"`priors` names {unknown[0]!r}, not a hyperparameter; they are {', '.join(names)}")
        try:
            jax.eval_shape(lambda k: self.process.scale_prior.sample(k), jax.random.key(0))
        except NotImplementedError as err:
            raise ModelError(f"the process's scale prior cannot simulate datasets: {err}") from None
        object.__setattr__(self, "inputs", _check_inputs(self.inputs, self.x_dim))
        object.__setattr__(self, "_names", names)
        from ..core.checks import check_real

        check_real("t_noise", self.t_noise, 0.0)

    def __repr__(self):
        hyper = f", hyperpriors on {', '.join(self.priors)}" if self.priors else ""
        t = f", t-noise {self.t_noise:g}" if self.t_noise else ""
        return (f"ProcessPrior({type(self.process.kernel).__name__} kernel, {type(self.process.scale_prior).__name__} "
                f"scale{hyper}{t}, x_dim={self.x_dim})")

    def _one(self, key, num_points):
        x, y, _ = self._one_with_parameters(key, num_points)
        return x, y

    def _one_with_parameters(self, key, num_points):
        leaves, treedef = jax.tree_util.tree_flatten(self.process)
        keys = jax.random.split(key, len(leaves) + 3)
        values = [self.priors[n].sample(k) if n in self.priors else v
                  for n, v, k in zip(self._names, leaves, keys, strict=False)]
        process = jax.tree_util.tree_unflatten(treedef, values)
        x = self.inputs.sample(keys[-3], (num_points,))
        s2 = process.scale_prior.sample(keys[-2])
        A = process.gram(x)
        L = jnp.linalg.cholesky(A + 1e-9 * jnp.mean(jnp.diagonal(A)) * jnp.eye(num_points, dtype=A.dtype))
        y = jnp.sqrt(s2) * (L @ jax.random.normal(keys[-1], (num_points,), A.dtype))
        if self.t_noise:  # keys of their own: the Gaussian part is the same with or without t-noise
            gamma = self.t_noise * jax.random.uniform(jax.random.fold_in(key, 1), dtype=y.dtype)
            y = y + gamma * jax.random.t(jax.random.fold_in(key, 2), 2.1, (num_points,), y.dtype)
        return x, y, {"process": process, "scale": s2}

    def sample_with_parameters(self, key, num_datasets: int, num_points: int):
        """(x, y, parameters) where ``parameters`` holds each dataset's process (a batched pytree) and
        σ²: what an oracle with the true hyperparameters needs."""
        check_int("num_datasets", num_datasets)
        check_int("num_points", num_points)
        run = cache.cached(("dataset_prior_parameters", self, num_points),
                           lambda: jax.jit(jax.vmap(lambda k: self._one_with_parameters(k, num_points))))
        return run(jax.random.split(key, num_datasets))


class ModelPrior(DatasetPrior):
    """Datasets from a NumPyro model ``model(X, y=None)`` run forward: its observed site ``target``
    (default: the only observed site) gives y at inputs X drawn from ``inputs``."""

    model: Callable
    x_dim: int = 1
    inputs: object = None
    target: str | None = None
    x_name: str = "X"
    y_name: str = "y"

    def __check_init__(self):
        from numpyro import handlers

        if not callable(self.model):
            raise ConfigError(f"`model` must be a NumPyro model function, got {type(self.model).__name__}")
        check_int("x_dim", self.x_dim)
        object.__setattr__(self, "inputs", _check_inputs(self.inputs, self.x_dim))
        x = self.inputs.sample(jax.random.key(0), (3,))
        tr = handlers.trace(handlers.seed(self.model, 0)).get_trace(**{self.x_name: x, self.y_name: None})
        observed = [n for n, s in tr.items() if s["type"] == "sample" and s["is_observed"]]
        sampled = {n for n, s in tr.items() if s["type"] == "sample"}
        if self.target is None:
            # with y=None the likelihood site is sampled, not observed: it is the site named like y, or the last one
            candidates = [n for n in sampled if n == self.y_name] or [n for n, s in tr.items() if s["type"] == "sample"]
            object.__setattr__(self, "target", (observed or candidates)[-1])
        if self.target not in sampled:
            raise ConfigError(f"`target` {self.target!r} is not a sample site of the model; its sites are "
                              f"{sorted(sampled)}")
        if tuple(jnp.shape(tr[self.target]["value"])) != (3,):
            raise ModelError(f"the model's target site {self.target!r} must hold one scalar per input row: at 3 "
                             f"inputs it has shape {tuple(jnp.shape(tr[self.target]['value']))}")

    def __repr__(self):
        return f"ModelPrior({getattr(self.model, '__name__', 'model')}, target {self.target!r}, x_dim={self.x_dim})"

    def _one(self, key, num_points):
        from numpyro import handlers

        k_x, k_model = jax.random.split(key)
        x = self.inputs.sample(k_x, (num_points,))
        tr = handlers.trace(handlers.seed(self.model, k_model)).get_trace(**{self.x_name: x, self.y_name: None})
        return x, tr[self.target]["value"]


class LearningCurvePrior(DatasetPrior):
    """LC-PFN's prior over learning curves (`bayeskit.models.learning_curves`): dataset i is one noisy
    curve at epochs 1 … T in order, so a split at n asks the network to extrapolate epochs n+1 … T
    from the first n. Curves are drawn and constrained on 1 … ``epochs``; T ≤ ``epochs``."""

    epochs: int = 100
    x_dim: int = field(default=1, init=False)
    queries = "after"

    def __check_init__(self):
        check_int("epochs", self.epochs, 2, why="a curve needs a first and a last epoch")

    def __repr__(self):
        return f"LearningCurvePrior(epochs={self.epochs})"

    def _one(self, key, num_points):
        from .learning_curves import sample_curve

        if num_points > self.epochs:
            raise ConfigError(f"`num_points` ({num_points}) must be at most the prior's `epochs` ({self.epochs})")
        k_curve, k_noise = jax.random.split(key)
        curve, log_sigma = sample_curve(k_curve, self.epochs)
        y = curve + jnp.exp(log_sigma) * jax.random.normal(k_noise, curve.shape, curve.dtype)
        t = jnp.arange(1, num_points + 1, dtype=curve.dtype)[:, None]
        return t, y[:num_points]
