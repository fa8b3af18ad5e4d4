"""The marginal law of y at inputs X under a scale-mixture process, as a NumPyro distribution.

    σ² ~ scale prior,   y | σ² ~ N(0, σ² A),   A = K(X, X) + ε I

`log_prob` integrates σ² out exactly (``process.log_marginal_likelihood``: closed form for the
inverse-gamma scale, quadrature otherwise); `sample` draws σ² and then y. Observing y through this
site (`numpyro_model`) makes the hyperparameter model a generative NumPyro model: prior
predictive draws, posterior predictive checks and simulation-based calibration work on it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints


class ProcessMarginal(dist.Distribution):
    """y (n,) at the n inputs X given the process's hyperparameters, σ² integrated out."""

    support = constraints.real_vector
    pytree_data_fields = ("process", "X")

    def __init__(self, process, X, *, validate_args=None):
        self.process, self.X = process, X
        super().__init__(batch_shape=(), event_shape=(X.shape[0],), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        k_scale, k_normal = jax.random.split(key)
        A = self.process.gram(self.X)
        n = A.shape[0]
        # the jitter ProcessPrior uses: A is well conditioned only up to the kernel's own jitter
        L = jnp.linalg.cholesky(A + 1e-9 * jnp.mean(jnp.diagonal(A)) * jnp.eye(n, dtype=A.dtype))
        s2 = self.process.scale_prior.sample(k_scale, sample_shape)
        z = jax.random.normal(k_normal, tuple(sample_shape) + (n,), A.dtype)
        return jnp.sqrt(jnp.asarray(s2))[..., None] * (z @ L.T)

    def log_prob(self, value):
        if value.ndim == 1:
            return self.process.log_marginal_likelihood(self.X, value)
        flat = value.reshape(-1, value.shape[-1])
        out = jax.vmap(lambda y: self.process.log_marginal_likelihood(self.X, y))(flat)
        return out.reshape(value.shape[:-1])
