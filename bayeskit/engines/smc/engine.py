"""`bk.ParticleFilter` and `bk.PaRIS`: sequential Monte Carlo for state-space models."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ...core import distributed
from ...core.cache import cached, program_key
from ...core.checkpoint import Checkpoint, fingerprint
from ...core.checks import as_numeric, check_bool, check_choice, check_int, check_real, check_type
from ...core.engine import Engine
from ...core.errors import ConfigError, DataError, SamplingError
from ...core.model import FeynmanKac
from ...core.seeds import split
from . import filter as smc_filter
from . import resampling
from .learning import Learn, standard_errors
from .paris import InformationExtension, PaRISExtension, ScoreExtension
from .posterior import SMCPosterior
from .proposals import ParametricProposal, Proposal


def check_observations(data, model, missing: str):
    """(y (T, p), observed (T,)) from ``data={"y": ...}``; NaN rows are missing only if asked.
    Validates the model's parameters first."""
    validate = getattr(model, "validate", None)
    if validate is not None:
        validate()
    if not isinstance(data, dict) or "y" not in data or set(data) - {"y"}:
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise DataError(f"`data` for a state-space model must be a dict with key 'y', got {got}")
    y = as_numeric("`y`", data["y"], dtype=float)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] < 2:
        raise DataError(f"`y` must be a (T,) or (T, p) array with T >= 2, got shape {y.shape}")
    p = int(model.obs_dim)
    if y.shape[1] != p:
        raise DataError(f"`y` has {y.shape[1]} columns but {type(model).__name__} observes {p} per step")
    bad = ~np.isfinite(y)
    if bad.any():
        rows = np.flatnonzero(bad.any(1))
        if missing != "skip" or np.isinf(y).any():
            raise DataError(f"`y` has non-finite values at time steps {rows[:5].tolist()}"
                            f"{' ...' if rows.size > 5 else ''}; pass missing='skip' to treat NaN rows as missing")
        if (bad.any(1) & ~bad.all(1)).any():
            raise DataError("`y` rows must be wholly NaN (missing) or wholly observed with missing='skip'")
    return jnp.asarray(np.nan_to_num(y)), jnp.asarray(~bad.any(1))


class ParticleFilter(Engine):
    """A particle filter: bootstrap (default), guided (``proposal=``) or auxiliary (``auxiliary=True``
    for the look-ahead log g_{t+1}(E[x_{t+1} | x_t], y_{t+1}), or a function log η(x, y_next, t)).

    ``runs`` independent filters run vectorised; the Posterior holds each run's log-likelihood
    estimate, the first run's filtering moments and last filtering distribution (for forecasts,
    `SMCPosterior.predict`), and its particles (``keep_particles``, for joint smoothing draws by
    backward simulation).
    """

    n_particles: int = 1000
    resampling: str = "systematic"
    ess_threshold: float = 0.5
    proposal: Proposal | ParametricProposal | None = None
    auxiliary: bool | Callable = False
    runs: int = 1
    missing: str = "error"
    keep_particles: bool = True
    progress: bool = True

    capability: ClassVar = FeynmanKac

    def __check_init__(self):
        check_int("n_particles", self.n_particles, 2)
        check_int("runs", self.runs)
        check_choice("resampling", self.resampling, sorted(resampling.RESAMPLERS))
        check_real("ess_threshold", self.ess_threshold, 0.0, 1.0)
        check_choice("missing", self.missing, ("error", "skip"))
        check_type("proposal", self.proposal, (Proposal, ParametricProposal),
                   "a bk.smc.Proposal or a ParametricProposal (e.g. GaussianProposal)", optional=True)
        if not (isinstance(self.auxiliary, bool) or callable(self.auxiliary)):
            raise ConfigError(f"`auxiliary` must be a bool or a function log η(x, y_next, t), got {self.auxiliary!r}")
        check_bool("keep_particles", self.keep_particles)
        check_bool("progress", self.progress)

    @property
    def effective_functional(self):
        """The additive functional the engine smooths (None for a plain filter)."""
        return None

    def _settings(self, model) -> smc_filter.FilterSettings:
        if hasattr(self.proposal, "check"):
            self.proposal.check(model)
        lookahead = "default" if self.auxiliary is True else (self.auxiliary if callable(self.auxiliary) else None)
        return smc_filter.FilterSettings(self.n_particles, self.resampling, self.ess_threshold, lookahead,
                                         self.keep_particles)

    def _extension(self, model):
        return None

    def fit(self, model, data, key) -> SMCPosterior:
        return self._fit(model, data, key)

    def _fit(self, model, data, key, *, engine=None, se_params=(), **extra) -> SMCPosterior:
        """The posterior of one fit; ``engine`` (default self) is recorded as the engine that made it,
        ``se_params`` names the parameters whose standard errors to report, ``extra`` goes to the posterior."""
        engine = self if engine is None else engine
        ys, observed = check_observations(data, model, self.missing)
        settings = self._settings(model)
        extension = self._extension(model)
        keys = split(key, self.runs)
        outs, (x_last, logW_last), functional = _run(model, self.proposal, ys, observed, keys, settings, extension)
        outs = jax.tree_util.tree_map(np.asarray, outs)
        increments = outs["log_increment"]  # (runs, T)
        broken = ~np.isfinite(increments)
        first = {k: v[0] for k, v in outs.items()}
        if broken.any():
            t = int(np.min(np.argmax(broken, axis=1)[broken.any(1)]))
            partial = SMCPosterior(model, ys, observed, {k: v[:t] for k, v in first.items()},
                                   increments[:, :t].sum(1), engine=engine,
                                   one_step_log_densities=increments[:, :t])
            raise SamplingError(f"all particle weights are zero (log weight -inf) at time step t = {t}: the "
                                f"observation there is impossible under every particle; check the model or "
                                f"the data, or use more particles", partial=partial)
        functional, information = _split_information(functional, self.effective_functional)
        if se_params:
            extra["standard_errors"] = standard_errors(model, information.mean(0), se_params)
        return SMCPosterior(model, ys, observed, first, increments.sum(1), functional, engine=engine,
                            final_particles=np.asarray(x_last[0]), final_log_weights=np.asarray(logW_last[0]),
                            information_runs=information, one_step_log_densities=increments, **extra)


class PaRIS(ParticleFilter):
    """PaRIS smoothing of an additive functional E[h_init(x_0) + Σ_t h(x_t, x_{t+1}, t) | y] along a
    particle filter, with ``K`` backward draws per particle (``backward="exact"`` O(N²) per step,
    ``"rejection"`` O(N) when the transition density is bounded, or ``"auto"``: rejection above
    256 particles when it can).

    ``functional(x, x_next, t)`` returns (...) or (..., m) for batched states; the Posterior's
    ``functional`` is its estimate (mean over runs; ``functional_runs`` per run). ``functional="score"``
    estimates ∇θ log p(y) in the model's parameters by Fisher's identity (`ScoreExtension`),
    raveled in the order of ``jax.tree_util.tree_leaves(model)``; ``"information"`` also the observed
    information by Louis' identity (``observed_information``).

    ``learn=Learn(params=..., proposal=...)`` first fits the named model parameters (maximum
    likelihood) and/or a `ParametricProposal` (score climbing on KL(p ‖ r_φ)) by stochastic
    gradients from PaRIS (``functional`` may then be left None: the score); the Posterior is then
    fitted at the result (``learned``, ``learned_proposal``, ``learning_history``, ``learning_trace``).
    """

    functional: Callable | str | None = None
    initial_functional: Callable | None = None
    K: int = 2
    backward: str = "auto"
    keep_particles: bool = False
    learn: Learn | None = None

    def __check_init__(self):
        check_int("K", self.K)
        check_type("learn", self.learn, Learn, "a bk.smc.Learn(params=...)", optional=True)
        functional = self.effective_functional
        if not (callable(functional) or functional in ("score", "information")):
            raise ConfigError("`functional` must be a function h(x, x_next, t) of batched states, 'score' or "
                              f"'information', got {self.functional!r}")
        check_choice("backward", self.backward, ("auto", "exact", "rejection"))

    @property
    def effective_functional(self):
        """``functional``, or "score" when it is None and the engine learns (the score drives learning)."""
        if self.functional is None and self.learn is not None:
            return "score"
        return self.functional

    def _backward(self, model) -> str:
        """'auto': accept-reject above 256 particles when the transition density is bounded, else exact."""
        if self.backward != "auto":
            return self.backward
        bounded = model.transition_log_bound(0) is not None
        return "rejection" if bounded and self.n_particles > 256 else "exact"

    def fit(self, model, data, key):
        if self.learn is not None:
            return self._fit_learning(model, data, key)
        return self._fit(model, data, key)

    def _score(self, model) -> ScoreExtension:
        score = ScoreExtension(None, self.K, self._backward(model), wrt_model=bool(self.learn.params),
                               wrt_proposal=self.learn.proposal)
        score.check(model)
        return score

    def _score_estimator(self, model, ys, observed):
        """estimate(model, proposal, key, carry) -> (score, log p̂(y), carry) from one unconditional PaRIS
        pass (which carries nothing from step to step)."""
        settings = dataclasses.replace(self._settings(model), keep_particles=False)
        score = self._score(model)

        def estimate(current, proposal, k, carry):
            outs, _, value = _run(current, proposal, ys, observed, k[None], settings, score)
            return np.asarray(value[0]), float(outs["log_increment"][0].sum()), None

        return estimate

    def _fit_learning(self, model, data, key):
        ys, observed = check_observations(data, model, self.missing)
        if self.learn.proposal and not isinstance(self.proposal, ParametricProposal):
            raise ConfigError("Learn(proposal=True) fits the engine's proposal: pass a ParametricProposal, "
                              "e.g. proposal=GaussianProposal.from_prior(model, key)")
        from .learning import learn

        key_learn, key_final = split(key, 2)
        estimate = self._score_estimator(model, ys, observed)
        checkpoint = Checkpoint.of(self.learn.checkpoint, self.learn.resume,
                                   lambda: self._learning_fingerprint(model, ys, observed, key_learn))
        fitted, proposal, history, trace = learn(model, self.proposal, self.learn, estimate, key_learn,
                                                 self.progress and distributed.is_root(), ys.shape[0], checkpoint)
        final = self.functional if callable(self.functional) else "information"
        final_engine = dataclasses.replace(self, learn=None, proposal=proposal, functional=final)
        return final_engine._fit(
            fitted, data, key_final, engine=self, learned=fitted, learned_proposal=proposal,
            learning_history=tuple(history),
            learning_trace={p: np.array([t[p] for t in trace]) for p in trace[0]} if trace else {},
            se_params=self.learn.params if final == "information" else ())

    def _learning_fingerprint(self, model, ys, observed, key) -> dict:
        """What decides the learning run's numbers (`core.checkpoint.fingerprint`): the engine's settings
        (its `Learn` less where it checkpoints), the seed, the model's starting values and the data."""
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        settings["learn"] = dataclasses.replace(self.learn, checkpoint=None, resume=False)
        return fingerprint({"engine": type(self).__name__, **settings}, key, model=model,
                           data=(np.asarray(ys), np.asarray(observed)))

    def _extension(self, model):
        backward = self._backward(model)
        functional = self.effective_functional
        if functional == "score":
            extension = ScoreExtension(None, self.K, backward)
        elif functional == "information":
            extension = InformationExtension(None, self.K, backward)
        else:
            extension = PaRISExtension(functional, self.K, backward, self.initial_functional)
        extension.check(model)
        return extension


def _split_information(functional, kind):
    """(functional runs, information runs or None) from the engine's per-run output: for
    ``"information"`` each run carries m + m² numbers, the score (the functional) and the observed
    information (m, m) by Louis' identity."""
    if functional is None:
        return None, None
    runs = np.asarray(functional)
    if kind != "information":
        return runs, None
    m = int(round((-1 + np.sqrt(1 + 4 * runs.shape[-1])) / 2))
    return runs[:, :m], runs[:, m:].reshape(-1, m, m)


def _layout(tree) -> tuple:
    """The structure and leaf shapes/dtypes of a pytree argument (a model, a proposal)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((np.shape(v), str(jnp.result_type(v))) for v in leaves)


def _compiled(kind: str, program: Callable, model, proposal, arrays: dict, *static):
    """``jax.jit(program)`` from the shared program cache, keyed by the model's and proposal's structure,
    the static settings and the array shapes."""
    key = program_key(kind, _layout(model), static=(_layout(proposal), *static), arrays=arrays)
    return cached(key, lambda: jax.jit(program))


#: Independent runs are computed in vectorised blocks of this many (fewer when there are fewer runs). The
#: blocks, not the runs, are what is spread over devices and processes (`core.distributed`): a vectorised
#: program's rounding can depend on its batch size, so a fixed block keeps every run's numbers the same
#: on 1 device, N devices and N processes. Measured (benchmarks/scaling.py, docs/distributed.md): blocks
#: of 4 cost no more than one batch of all runs on CPU.
RUN_BLOCK = 4


def in_blocks(compute: Callable, keys):
    """``compute(block_keys)`` (a pytree with a leading run axis) over all runs' ``keys``, block by block:
    this process's contiguous share of the blocks, each on one of its devices in turn, then gathered
    (every run, in run order, on every process) and brought to the host. The last block is filled up
    with copies of the last key, whose results are dropped."""
    runs = keys.shape[0]
    size = min(runs, RUN_BLOCK)
    n_blocks = -(-runs // size)
    if n_blocks * size > runs:
        keys = jnp.concatenate([keys, jnp.repeat(keys[-1:], n_blocks * size - runs, axis=0)])
    devices = distributed.local_devices()
    outs = [compute(jax.device_put(keys[b * size:(b + 1) * size], devices[j % len(devices)]))
            for j, b in enumerate(distributed.block(n_blocks))]  # dispatched before any is awaited
    local = jax.tree_util.tree_map(lambda *a: np.concatenate([np.asarray(x) for x in a]), *outs) if outs else None
    return jax.tree_util.tree_map(lambda a: a[:runs], distributed.gather_rows(local))


def _run(model, proposal, ys, observed, keys, settings, extension):
    def program(model, proposal, ys, observed, keys):
        return jax.vmap(lambda k: smc_filter.run(model, ys, observed, k, settings, extension,
                                                 proposal=proposal))(keys)

    def compute(block):
        run = _compiled("smc-filter", program, model, proposal, {"ys": ys, "keys": block}, settings, extension)
        return run(model, proposal, ys, observed, block)

    if keys.shape[0] == 1:  # one run (learning's steps): as it is, on this process
        return compute(keys)
    return in_blocks(compute, keys)


class ParticleGibbs(PaRIS):
    """PaRIS particle Gibbs: ``sweeps`` conditional-SMC sweeps of PaRIS, each frozen on a reference
    path traced back through the previous sweep's backward indices; the estimate averages the
    sweeps after ``burn_in``. Resampling is multinomial at every step (the exact conditional law).

    The Posterior's ``functional`` is the averaged estimate per run; ``sample`` returns the
    reference paths after burn-in (an MCMC chain per run over the smoothing distribution, so the
    Posterior is ``markov``); ``log_likelihood`` comes from each run's first, unconditional, filter.

    With ``learn=Learn(...)`` each gradient step is one conditional sweep at the current parameters,
    its reference carried over from the step before (PPG-driven learning: the score, or the proposal's
    Markov-score-climbing gradient, from a nearly unbiased estimator instead of PaRIS's self-normalised one).
    """

    sweeps: int = 20
    burn_in: int = 5
    resampling: str = "multinomial"
    ess_threshold: float = 1.0

    def __check_init__(self):
        check_int("sweeps", self.sweeps)
        check_int("burn_in", self.burn_in, 0)
        if self.burn_in >= self.sweeps:
            raise ConfigError(f"`burn_in` ({self.burn_in}) must be smaller than `sweeps` ({self.sweeps})")
        if self.resampling != "multinomial" or self.ess_threshold != 1.0:
            raise ConfigError("ParticleGibbs resamples multinomially at every step (the conditional SMC law): "
                              "leave `resampling` and `ess_threshold` at their defaults")

    def _fit(self, model, data, key, *, engine=None, se_params=(), **extra) -> SMCPosterior:
        engine = self if engine is None else engine
        ys, observed = check_observations(data, model, self.missing)
        settings = dataclasses.replace(self._settings(model), keep_particles=True)
        extension = dataclasses.replace(self._extension(model), keep_indices=True)
        keys = split(key, self.runs)
        estimate, per_sweep, paths, outs = _run_gibbs(model, self.proposal, ys, observed, keys, settings, extension,
                                                      self.sweeps, self.burn_in)
        outs = jax.tree_util.tree_map(np.asarray, outs)
        first = {k: v[0] for k, v in outs.items() if k not in ("particles", "log_weights", "ancestors",
                                                                 "backward_indices")}
        functional, information = _split_information(estimate, self.effective_functional)
        if se_params:
            extra["standard_errors"] = standard_errors(model, information.mean(0), se_params)
        return SMCPosterior(model, ys, observed, first, outs["log_increment"].sum(1), functional, engine=engine,
                            markov=True, paths=np.asarray(paths)[:, self.burn_in:],  # (runs, sweeps − burn_in, T, d)
                            sweep_estimates=np.asarray(per_sweep),  # (runs, sweeps, m)
                            information_runs=information,
                            one_step_log_densities=outs["log_increment"],  # the unconditional first filters'
                            **extra)

    def _score_estimator(self, model, ys, observed):
        """estimate(model, proposal, key, reference) -> (score, log p̂(y), next reference) from one
        conditional sweep, the reference path carried from call to call (None at the first: one is
        drawn): a Markov chain whose kernel, at any parameters, leaves their smoothing law invariant
        (score climbing). log p̂(y) is the conditional filter's, for progress."""
        settings = dataclasses.replace(self._settings(model), keep_particles=True)
        score = dataclasses.replace(self._score(model), keep_indices=True)

        def estimate(current, proposal, k, reference):
            k_first, k_sweep = jax.random.split(k)
            if reference is None:
                reference = _first_reference(current, proposal, ys, observed, k_first, settings, score)
            value, reference, increments = _sweep(current, proposal, ys, observed, k_sweep, settings, score,
                                                  reference)
            return np.asarray(value), float(jnp.sum(increments)), reference

        return estimate


def _first_reference(model, proposal, ys, observed, key, settings, extension):
    from .gibbs import first_reference

    def program(model, proposal, ys, observed, key):
        return first_reference(model, ys, observed, key, settings, extension, proposal)[0]

    run = _compiled("smc-first-reference", program, model, proposal, {"ys": ys}, settings, extension)
    return run(model, proposal, ys, observed, key)


def _sweep(model, proposal, ys, observed, key, settings, extension, reference):
    from .gibbs import sweep

    def program(model, proposal, ys, observed, key, reference):
        return sweep(model, ys, observed, key, settings, extension, reference, proposal)

    run = _compiled("smc-sweep", program, model, proposal, {"ys": ys, "reference": reference}, settings, extension)
    return run(model, proposal, ys, observed, key, reference)


def _run_gibbs(model, proposal, ys, observed, keys, settings, extension, sweeps, burn_in):
    from .gibbs import particle_gibbs

    def program(model, proposal, ys, observed, keys):
        return jax.vmap(lambda k: particle_gibbs(model, ys, observed, k, settings, extension, sweeps, burn_in,
                                                 proposal))(keys)

    def compute(block):
        run = _compiled("smc-gibbs", program, model, proposal, {"ys": ys, "keys": block}, settings, extension,
                        sweeps, burn_in)
        return run(model, proposal, ys, observed, block)

    return in_blocks(compute, keys)
