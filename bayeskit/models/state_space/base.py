"""State-space models: an initial law, a Markov transition and an observation density.

    x_0 ~ μ(x_0),   x_{t+1} | x_t ~ q_t(x_t, ·),   y_t | x_t ~ g_t(x_t, ·),   t = 0, …, T−1.

A model is a `core.module.Module`: a frozen dataclass and a JAX pytree whose parameters (its
fields) are the leaves, so ``jax.grad`` differentiates a log-likelihood or a score in them;
structural settings go in ``field(static=True)`` fields or class attributes. Declare parameters
as annotated fields::

    class RandomWalk(StateSpaceModel):
        scale: float = 1.0

        def initial(self): ...

States are arrays of shape (..., d) with d = ``state_dim``; observations (..., p). Write a model
either with NumPyro distributions (override ``initial``, ``transition`` and ``observation``, each
returning a distribution with event shape (d,) or (p,), e.g. ``Normal(loc, scale).to_event(1)``,
and batch shape following the leading axes of its input), or with plain JAX functions (override
the ``*_sample`` and ``*_log_prob`` methods directly). Batched inputs broadcast:
``transition_log_prob(x[:, None], x_next[None, :], t)`` is the (N, N) matrix the backward kernels
of smoothers need.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp

from ...core.module import Module


class StateSpaceModel(Module):
    """Base class. Subclasses set ``state_dim`` and ``obs_dim`` and describe μ, q_t and g_t.

    ``transition_log_bound(t)`` (optional) bounds log q_t(x, x') over x, x': smoothers use it for
    accept-reject backward sampling, which avoids the O(N²) backward kernel.

    Parameter values are checked by ``validate()``, which engines call before fitting, not on
    construction: ``jax.grad`` of a function of the model returns a model of cotangents, which must
    never be rejected.
    """

    state_dim: ClassVar[int] = 1
    obs_dim: ClassVar[int] = 1
    engines: ClassVar[tuple[str, ...]] = ("ParticleFilter", "PaRIS", "ParticleGibbs")
    name: ClassVar[str] = "StateSpaceModel"

    def validate(self) -> None:
        """Raise ModelError for invalid parameter values (concrete ones: traced values are skipped)."""

    # -- distributions (NumPyro) ---------------------------------------------------------------------
    def initial(self):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define initial() or initial_sample/_log_prob")

    def transition(self, x, t):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define transition() or transition_sample/_log_prob")

    def observation(self, x, t):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define observation() or observation_log_prob")

    # -- what the algorithms call ---------------------------------------------------------------------
    def initial_sample(self, key, n: int):
        """(n, d) draws from μ."""
        return self.initial().sample(key, (n,))

    def initial_log_prob(self, x):
        return self.initial().log_prob(x)

    def transition_sample(self, key, x, t):
        """One draw of x_{t+1} for each row of x (..., d)."""
        return self.transition(x, t).sample(key)

    def transition_log_prob(self, x, x_next, t):
        return self.transition(x, t).log_prob(x_next)

    def observation_log_prob(self, x, y, t):
        """log g_t(x, y) for each row of x (..., d); y is one observation (p,)."""
        return self.observation(x, t).log_prob(y)

    def observation_sample(self, key, x, t):
        return self.observation(x, t).sample(key)

    def transition_log_bound(self, t):
        """sup over (x, x') of log q_t(x, x'), or None when unbounded or unknown."""
        return None

    def simulate(self, key, T: int):
        """(states (T, d), observations (T, p)) drawn from the model."""
        key0, key = jax.random.split(key)
        x0 = self.initial_sample(key0, 1)[0]

        def step(x, inputs):
            t, k = inputs
            k_obs, k_next = jax.random.split(k)
            y = self.observation_sample(k_obs, x[None], t)[0]
            return self.transition_sample(k_next, x[None], t)[0], (x, y)

        _, (xs, ys) = jax.lax.scan(step, x0, (jnp.arange(T), jax.random.split(key, T)))
        return xs, ys
