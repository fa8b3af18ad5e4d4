"""The output of sequential Monte Carlo: likelihood estimates, filtering marginals over time,
smoothed functionals, joint smoothing draws by backward simulation and forecasts."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ...core.cache import cached, program_key
from ...core.checks import check_int
from ...core.errors import ConfigError, ModelError
from ...core.posterior import Posterior, check_n
from ...core.seeds import as_key


class SMCPosterior(Posterior):
    """Particle approximation of p(x_{0:T−1} | y) for a state-space model.

    ``log_likelihood`` (mean over runs of log p̂(y); ``log_likelihood_runs`` per run, each an
    unbiased estimate of p(y) on the natural scale), ``one_step_log_densities`` (runs, T): each
    run's log p̂(y_t | y_{0:t−1}), the filter's log-likelihood increments, which sum over t to
    ``log_likelihood_runs`` (0 at unobserved steps; what `bayeskit.diagnostics.compare_sequential`
    compares models by), ``filter_mean`` / ``filter_var`` (T, d),
    ``ess`` (T,), ``functional`` (PaRIS: the mean over runs of ``functional_runs`` (runs, m)).
    ``sample(n)`` draws whole state paths from the smoothing distribution by forward-filtering
    backward-simulation (needs the particles: ``keep_particles=True``), or from particle Gibbs'
    reference ``paths`` (runs, draws, T, d). ``predict`` forecasts states and observations
    beyond the data from the last filtering distribution.

    Everything is given at construction: with ``functional="information"`` the score is the
    functional and ``information_runs`` (runs, m, m) the per-run observed information
    (``observed_information`` their mean); after learning, ``learned`` (the fitted model),
    ``learned_proposal``, ``learning_history``, ``learning_trace`` and ``standard_errors``.
    ``engine`` is the engine that made it; ``markov`` is True only for particle Gibbs (its
    reference paths are Markov chains, one per run).
    """

    def __init__(self, model, ys, observed, outputs, log_likelihood_runs, functional=None, *, engine=None,
                 markov: bool = False, final_particles=None, final_log_weights=None, paths=None,
                 sweep_estimates=None, information_runs=None, learned=None, learned_proposal=None,
                 learning_history=None, learning_trace=None, standard_errors=None, one_step_log_densities=None):
        self.model, self.ys, self.observed = model, ys, observed
        self.outputs = outputs
        self.log_likelihood_runs = np.asarray(log_likelihood_runs)
        self.one_step_log_densities = (None if one_step_log_densities is None
                                       else np.asarray(one_step_log_densities, dtype=float))
        self.log_likelihood = float(np.mean(self.log_likelihood_runs))
        self.functional_runs = None if functional is None else np.asarray(functional)
        self.functional = None if functional is None else np.mean(self.functional_runs, axis=0)
        self.engine = engine
        self.markov = bool(markov)
        self.filter_mean, self.filter_var = outputs["mean"], outputs["var"]
        self.ess, self.resampled = outputs["ess"], outputs["resampled"]
        # the first run's last filtering distribution (particles (N, d), normalised log weights (N,))
        self.final_particles = None if final_particles is None else np.asarray(final_particles)
        self.final_log_weights = None if final_log_weights is None else np.asarray(final_log_weights)
        self.paths = None if paths is None else np.asarray(paths)  # particle Gibbs: (runs, draws, T, d)
        self.sweep_estimates = None if sweep_estimates is None else np.asarray(sweep_estimates)  # (runs, sweeps, m)
        self.information_runs = None if information_runs is None else np.asarray(information_runs)
        self.observed_information = None if information_runs is None else self.information_runs.mean(0)
        self.learned, self.learned_proposal = learned, learned_proposal
        self.learning_history = None if learning_history is None else tuple(learning_history)
        self.learning_trace = learning_trace
        self.standard_errors = standard_errors

    def __repr__(self):
        extra = "" if self.functional is None else f", functional {np.round(self.functional, 4).tolist()}"
        return (f"SMCPosterior({type(self.model).__name__}, T={self.filter_mean.shape[0]}, "
                f"log-likelihood {self.log_likelihood:.3f}{extra})")

    def sample(self, n: int, seed=0) -> dict[str, np.ndarray]:
        """`n` state paths x (n, T, d) from the particle smoothing distribution (FFBSi)."""
        n = check_n(n)
        if self.paths is not None:  # particle Gibbs: draw from its chains' paths
            flat = self.paths.reshape(-1, *self.paths.shape[2:])
            idx = np.asarray(jax.random.choice(as_key(seed), flat.shape[0], (n,)))
            return {"x": flat[idx]}
        if "particles" not in self.outputs:
            raise ConfigError("smoothing draws need the filter's particles: fit with keep_particles=True")
        x = jnp.asarray(self.outputs["particles"])
        logW = jnp.asarray(self.outputs["log_weights"])
        program = cached(program_key("smc-backward-simulation", jax.tree_util.tree_structure(self.model),
                                     static=(n,), arrays={"x": x, "logW": logW}),
                         lambda: jax.jit(lambda model, x, logW, key: _backward_simulation(model, x, logW, key, n)))
        return {"x": np.asarray(program(self.model, x, logW, as_key(seed)))}

    def predict(self, new_data: Mapping | None = None, *, seed=0, n: int | None = None, **options) -> dict:
        """Forecasts beyond the data: ``new_data={"steps": h}`` (default 1) returns ``{"x": (n, h, d),
        "y": (n, h, p)}``, the states x_T … x_{T+h−1} and their observations, simulated forward from
        `n` particles drawn from the last filtering distribution p(x_{T−1} | y) (particle Gibbs: from
        the last states of its reference paths). `n` defaults to the number of particles (paths)."""
        if options:
            raise ConfigError(f"unknown option(s) {', '.join(map(repr, options))} for SMCPosterior.predict")
        if new_data is None:
            new_data = {}
        if not isinstance(new_data, Mapping) or set(new_data) - {"steps"}:
            got = sorted(new_data) if isinstance(new_data, Mapping) else type(new_data).__name__
            raise ConfigError(f"`new_data` for a state-space forecast must be None or {{'steps': h}}, got {got}")
        steps = new_data.get("steps", 1)
        check_int("steps", steps)
        if self.paths is not None:
            x_last = self.paths[..., -1, :].reshape(-1, self.paths.shape[-1])
            logW = np.full(x_last.shape[0], -np.log(x_last.shape[0]))
        elif self.final_particles is not None:
            x_last, logW = self.final_particles, self.final_log_weights
        else:
            raise ConfigError("forecasting needs the particles of the last filtering step, which this posterior "
                              "does not hold (a failed or loaded run): refit it")
        n = x_last.shape[0] if n is None else check_n(n)
        T = int(self.filter_mean.shape[0])
        x_last, logW = jnp.asarray(x_last), jnp.asarray(logW)
        program = cached(program_key("smc-forecast", jax.tree_util.tree_structure(self.model), static=(n, steps),
                                     arrays={"x": x_last}),
                         lambda: jax.jit(lambda model, x, logW, key, t0: _forecast(model, x, logW, key, t0, n, steps)))
        try:
            xs, ys = program(self.model, x_last, logW, as_key(seed), T - 1)
        except NotImplementedError as err:
            raise ModelError(f"forecasting with {type(self.model).__name__} needs transition_sample and "
                             f"observation_sample (or transition() and observation()): {err}") from None
        return {"x": np.asarray(xs), "y": np.asarray(ys)}

    def traces(self) -> dict[str, np.ndarray]:
        """``ess`` of the first run's weights per time step; after learning, ``learning_loss`` (the
        progress value per step: −log p̂(y)/T, or −E[log r_φ]/T for a proposal alone) and
        ``learning_{p}`` for each scalar parameter learned."""
        out = {"ess": np.asarray(self.ess, dtype=float)}
        if self.learning_history:
            out["learning_loss"] = np.asarray(self.learning_history, dtype=float)
        for name, values in (self.learning_trace or {}).items():
            values = np.asarray(values)
            if name != "proposal" and values.ndim == 1:
                out[f"learning_{name}"] = values
        return out

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


def _backward_simulation(model, x, logW, key, n):
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


def _forecast(model, x, logW, key, t0, n, steps):
    """x_{t0} ~ Σ W δ_x, then x_{t+1} ~ q_t(x_t, ·) and y_{t+1} ~ g_{t+1}(x_{t+1}, ·) for t = t0 … t0+steps−1:
    (states (n, steps, d), observations (n, steps, p))."""
    k_pick, k_steps = jax.random.split(key)
    x_now = x[jax.random.categorical(k_pick, logW, shape=(n,))]

    def step(x_t, inputs):
        t, k = inputs
        k_next, k_obs = jax.random.split(k)
        x_next = model.transition_sample(k_next, x_t, t)
        return x_next, (x_next, model.observation_sample(k_obs, x_next, t + 1))

    _, (xs, ys) = jax.lax.scan(step, x_now, (t0 + jnp.arange(steps), jax.random.split(k_steps, steps)))
    return jnp.swapaxes(xs, 0, 1), jnp.swapaxes(ys, 0, 1)
