"""Maximum likelihood for state-space models by stochastic gradient ascent on the PaRIS score.

Each step estimates ∇θ log p(y) by Fisher's identity with PaRIS (`ScoreExtension`) at the current
parameters and takes an Adam step on unconstrained coordinates: log for positive parameters,
atanh for parameters in (−1, 1) (``constraints`` of the model class), identity otherwise.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ...core.errors import ConfigError
from ...core.optimise import run_steps

TRANSFORMS = {  # name: (to unconstrained, from unconstrained)
    "real": (lambda v: v, lambda u: u),
    "positive": (jnp.log, jnp.exp),
    "symmetric_unit": (jnp.arctanh, jnp.tanh),
}


@dataclasses.dataclass(frozen=True)
class Learn:
    """Learn the model parameters named in ``params`` (field names, e.g. ("rho", "sigma")) by
    ``steps`` Adam steps of size ``learning_rate`` on the PaRIS score; progress shows log p̂(y)."""

    params: tuple[str, ...]
    steps: int = 200
    learning_rate: float = 0.02

    def __post_init__(self):
        if isinstance(self.params, str) or not self.params or not all(isinstance(p, str) for p in self.params):
            raise ConfigError(f"`params` must be a non-empty tuple of parameter names, got {self.params!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"`steps` must be an int >= 1, got {self.steps!r}")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ConfigError(f"`learning_rate` must be positive, got {self.learning_rate!r}")


def learn(model, learn_settings: Learn, estimate, key, progress: bool, T: int):
    """(fitted model, history of log p̂(y), trace of the learned parameters).

    ``estimate(model, key) -> (score raveled over all leaves, log p̂(y))``.
    """
    import optax

    names = [f.name for f in dataclasses.fields(model)]
    unknown = [p for p in learn_settings.params if p not in names]
    if unknown:
        raise ConfigError(f"`params` names {unknown[0]!r}, not a parameter of {type(model).__name__}; "
                          f"they are {', '.join(names)}")
    constraints = getattr(type(model), "constraints", {})
    for p in learn_settings.params:
        kind = constraints.get(p, "real")
        value = np.asarray(getattr(model, p))
        if kind == "positive" and not np.all(value > 0):
            raise ConfigError(f"{type(model).__name__} learns `{p}` on the log scale, which needs every entry "
                              f"positive (a full covariance would need a Cholesky parameterisation)")
        if kind == "symmetric_unit" and not np.all(np.abs(value) < 1):
            raise ConfigError(f"`{p}` must start inside (-1, 1) to be learned")
    # where each field sits in the raveled score
    leaves = [jnp.asarray(getattr(model, f)) for f in names]
    offsets = np.cumsum([0] + [v.size for v in leaves])
    slots = {f: (offsets[i], offsets[i + 1], leaves[i].shape) for i, f in enumerate(names)}

    def to_model(theta):
        values = {p: TRANSFORMS[constraints.get(p, "real")][1](u) for p, u in theta.items()}
        return dataclasses.replace(model, **values)

    theta = {p: TRANSFORMS[constraints.get(p, "real")][0](jnp.asarray(getattr(model, p), float))
             for p in learn_settings.params}
    opt = optax.adam(learn_settings.learning_rate)
    keys = iter(jax.random.split(key, learn_settings.steps))
    trace = []

    def step(theta, state):
        current = to_model(theta)
        score, loglik = estimate(current, next(keys))
        grads = {}
        for p, u in theta.items():
            lo, hi, shape = slots[p]
            g_value = jnp.asarray(score[lo:hi]).reshape(shape)
            _, vjp = jax.vjp(TRANSFORMS[constraints.get(p, "real")][1], u)
            grads[p] = -vjp(g_value)[0] / T  # descend on -log p(y) / T
        updates, state = opt.update(grads, state)
        trace.append({p: np.asarray(getattr(current, p)) for p in theta})
        return optax.apply_updates(theta, updates), state, -loglik / T

    theta, history = run_steps(step, theta, opt.init(theta), steps=learn_settings.steps, n=T, progress=progress,
                               desc="particle MLE", label="log p̂(y)", keep="last")
    return to_model(theta), history, trace
