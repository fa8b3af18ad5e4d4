"""A worked example of a new engine (docs/extending.md): self-normalised importance sampling from the
prior of a NumPyro model, resampled to equally weighted draws.

    w_i ∝ p(y | θ_i),  θ_i ~ p(θ),   draws = θ_{I_j},  I_j ~ Categorical(w)

Exact as the number of particles grows; useful only when the posterior is not far from the prior,
which the effective sample size of the weights (reported) shows. It is the whole engine: a frozen
settings class that names the capability it needs, checks its settings and returns a Posterior.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from bayeskit.core.checks import check_int
from bayeskit.core.engine import Engine
from bayeskit.core.errors import SamplingError
from bayeskit.core.model import NumPyroProgram
from bayeskit.core.posterior import DrawsPosterior


class ImportanceSampling(Engine):
    """Importance sampling from the prior: ``particles`` prior draws weighted by the likelihood,
    resampled to ``draws`` posterior draws (one chain of independent draws)."""

    particles: int = 20_000
    draws: int = 2_000

    capability: ClassVar = NumPyroProgram

    def __check_init__(self):
        check_int("particles", self.particles, minimum=2)
        check_int("draws", self.draws)

    def fit(self, model, data, key) -> DrawsPosterior:
        from numpyro.infer import Predictive
        from numpyro.infer.util import log_likelihood

        spec = model.inspect(data)
        kwargs = {**spec.kwargs(), **{k: None for k in spec.observed_keys}}
        key_prior, key_resample = jax.random.split(key)
        latent = {s.name: s for s in spec.latent}
        prior = Predictive(model.fn, num_samples=self.particles, return_sites=list(latent))(key_prior, **kwargs)
        log_lik = log_likelihood(model.fn, prior, **spec.kwargs())
        log_w = sum(jnp.sum(v.reshape(self.particles, -1), axis=1) for v in log_lik.values())
        if not bool(jnp.any(jnp.isfinite(log_w))):
            raise SamplingError("every prior draw has zero likelihood: importance sampling cannot proceed")
        weights = jax.nn.softmax(log_w)
        idx = jax.random.choice(key_resample, self.particles, (self.draws,), p=weights)
        ess = float(1.0 / jnp.sum(weights**2))
        values = {k: np.asarray(v[idx])[None] for k, v in prior.items()}
        deterministic = Predictive(model.fn, posterior_samples={k: v[0] for k, v in values.items()},
                                   return_sites=[s.name for s in spec.deterministic])(key_resample, **kwargs)
        values.update({k: np.asarray(v)[None] for k, v in deterministic.items()})
        stats = {"ess": np.full((1, self.draws), ess)}
        return DrawsPosterior.from_spec(values, spec, model=model, engine=self, sample_stats=stats, markov=False)
