"""The output of sequential Monte Carlo: likelihood estimates, filtering marginals over time,
smoothed functionals and joint smoothing draws by backward simulation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ...core.errors import ConfigError
from ...core.posterior import Posterior, _check_n
from ...core.seeds import as_key


class SMCPosterior(Posterior):
    """Particle approximation of p(x_{0:T−1} | y) for a state-space model.

    ``log_likelihood`` (mean over runs of log p̂(y); ``log_likelihood_runs`` per run, each an
    unbiased estimate of p(y) on the natural scale), ``filter_mean`` / ``filter_var`` (T, d),
    ``ess`` (T,), ``functional`` (PaRIS: (runs, m)). ``sample(n)`` draws whole state paths from
    the smoothing distribution by forward-filtering backward-simulation (needs the particles:
    ``keep_particles=True``).
    """

    def __init__(self, model, ys, observed, outputs, log_likelihood_runs, functional, settings):
        self.model, self.ys, self.observed = model, ys, observed
        self.outputs = outputs
        self.log_likelihood_runs = np.asarray(log_likelihood_runs)
        self.log_likelihood = float(np.mean(self.log_likelihood_runs))
        self.functional_runs = functional
        self.functional = None if functional is None else np.mean(functional, axis=0)
        self.engine_settings = settings
        self.filter_mean, self.filter_var = outputs["mean"], outputs["var"]
        self.ess, self.resampled = outputs["ess"], outputs["resampled"]
        self.paths = None  # particle Gibbs: reference paths (runs, draws, T, d)

    def __repr__(self):
        extra = "" if self.functional is None else f", functional {np.round(self.functional, 4).tolist()}"
        return (f"SMCPosterior({type(self.model).__name__}, T={self.filter_mean.shape[0]}, "
                f"log-likelihood {self.log_likelihood:.3f}{extra})")

    def sample(self, n: int, seed=0) -> dict[str, np.ndarray]:
        """`n` state paths x (n, T, d) from the particle smoothing distribution (FFBSi)."""
        n = _check_n(n)
        if self.paths is not None:  # particle Gibbs: draw from its chains' paths
            flat = self.paths.reshape(-1, *self.paths.shape[2:])
            idx = np.asarray(jax.random.choice(as_key(seed), flat.shape[0], (n,)))
            return {"x": flat[idx]}
        if "particles" not in self.outputs:
            raise ConfigError("smoothing draws need the filter's particles: fit with keep_particles=True")
        x = jnp.asarray(self.outputs["particles"])
        logW = jnp.asarray(self.outputs["log_weights"])
        return {"x": np.asarray(_backward_simulation(self.model, x, logW, as_key(seed), n))}

    def dim_names(self):
        return {"x": ("time", "state")}

    def groups(self, n_draws: int = 1000, seed=0):
        """Smoothing paths: particle Gibbs' reference paths with one chain per run (so R-hat compares
        runs), otherwise `n_draws` backward-simulation paths as one chain."""
        if self.paths is not None:
            return {"posterior": {"x": self.paths}}
        return super().groups(n_draws, seed)

    def attrs(self):
        out = super().attrs()
        out["bayeskit_log_likelihood"] = repr(self.log_likelihood)
        return out


def _backward_simulation_impl(model, x, logW, key, n):
    """Godsill, Doucet & West (2004): x_{T−1} ~ W_{T−1}, then x_t ~ W_t q_t(·, x_{t+1}) backwards."""
    T = x.shape[0]
    k_last, k_back = jax.random.split(key)
    last = jax.random.categorical(k_last, logW[-1], shape=(n,))

    def step(idx_next, inputs):
        t, k = inputs
        x_next = x[t + 1][idx_next]  # (n, d)
        logits = logW[t][None, :] + model.transition_log_prob(x[t][None, :, :], x_next[:, None, :], t)
        idx = jax.random.categorical(k, logits, axis=-1)
        return idx, idx

    _, idxs = jax.lax.scan(step, last, (jnp.arange(T - 1), jax.random.split(k_back, T - 1)), reverse=True)
    idxs = jnp.concatenate([idxs, last[None]])  # (T, n)
    return jnp.transpose(jnp.take_along_axis(x, idxs[:, :, None], axis=1), (1, 0, 2))


_backward_simulation = jax.jit(_backward_simulation_impl, static_argnums=4)
