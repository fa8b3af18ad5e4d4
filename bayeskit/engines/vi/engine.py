"""`bk.VI`: variational inference on NumPyro models with programmable objectives and per-choice
gradient estimators.

The optimisation runs as compiled chunks of steps (`lax.scan`): between chunks the host updates
the progress bar and, when asked, writes a checkpoint. A step whose objective or gradient is not
finite stops the run: the state after the last finite step is kept and returned with the error.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import ClassVar

import numpy as np

from ...core.checks import check_int
from ...core.engine import Engine
from ...core.errors import ConfigError, SamplingError
from ...core.loop import chunk_length
from ...core.model import NumPyroProgram
from ...core.posterior import DrawsPosterior
from . import estimators as est
from .families import as_family
from .objectives import as_objective

_PROGRAMS: OrderedDict = OrderedDict()  # compiled programs, least recently used first


class VI(Engine):
    """Stochastic-gradient variational inference.

    ``objective``: a program ``(model, guide) -> scalar`` to maximise (`bk.vi.elbo`, `iwelbo(K)`,
    `forward_kl(K)`, `rws(K)` or your own). ``guide``: "mean_field", "full_rank",
    `bk.vi.LowRank(rank)`, `bk.vi.Flow()`, or a NumPyro guide function. ``estimator``: how each
    random choice of the guide is differentiated: None (reparameterised where possible, else
    REINFORCE with a running baseline), one of "reparam", "reinforce", "enum", "mvd" for all, or a
    dict site -> estimator. ``optimizer``: an optax optimizer (default Adam(``learning_rate``)).
    ``draws``: posterior draws taken from the fitted guide. ``checkpoint``: a file the state is
    written to every chunk of steps; ``resume=True`` continues from it.
    """

    objective: Callable | str = "elbo"
    guide: object = "mean_field"
    estimator: str | Mapping | None = None
    steps: int = 2000
    learning_rate: float = 0.01
    optimizer: object = None
    draws: int = 1000
    progress: bool = True
    checkpoint: str | None = None
    resume: bool = False

    capability: ClassVar = NumPyroProgram

    def __check_init__(self):
        as_objective(self.objective)
        as_family(self.guide)
        check_int("steps", self.steps)
        check_int("draws", self.draws)
        if not (isinstance(self.learning_rate, (int, float)) and not isinstance(self.learning_rate, bool)
                and self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ConfigError(f"`learning_rate` must be a positive number, got {self.learning_rate!r}")
        if self.estimator is not None and not isinstance(self.estimator, Mapping):
            est.as_estimator(self.estimator, "*")
        if isinstance(self.estimator, Mapping):
            for site, value in self.estimator.items():
                est.as_estimator(value, site)
        if self.resume and not self.checkpoint:
            raise ConfigError("`resume=True` needs `checkpoint=` (the file to resume from)")

    def _estimators(self):
        return est.chooser(self.estimator)

    def fit(self, model, data, key) -> DrawsPosterior:
        import jax

        spec = model.inspect(data)
        family = as_family(self.guide)
        objective = as_objective(self.objective)
        estimators = self._estimators()
        # a compiled program is reused by later fits of the same model, guide, objective, estimators,
        # optimizer and data layout: refitting compiles nothing
        estimator_key = tuple(sorted(self.estimator.items())) if isinstance(self.estimator, Mapping) else self.estimator
        cache_key = (model.fn, family, objective, estimator_key, self.optimizer, self.learning_rate, spec.static,
                     spec.array_signature())
        try:
            hash(cache_key)
        except TypeError:  # an unhashable model, guide or optimizer: build without caching
            cache_key = None
        program = _PROGRAMS.get(cache_key) if cache_key is not None else None
        if program is not None:
            _PROGRAMS.move_to_end(cache_key)
        guide_fn = program.guide_fn if program else (family.build(model.fn) if hasattr(family, "build") else family)
        reverse_fn = getattr(family, "reverse", None)
        if isinstance(self.estimator, Mapping):
            unknown = set(self.estimator) - {s.name for s in spec.latent} - _guide_sites(guide_fn, spec, key)
            if unknown:
                raise ConfigError(f"`estimator` names site {sorted(unknown)[0]!r}, which the guide does not sample")
        key_init, key_run, key_draw = jax.random.split(key, 3)
        sites = _param_sites(model.fn, guide_fn, reverse_fn, spec, key_init)
        state = _initial_state(sites, self)
        if program is None:
            program = _Program(objective, model.fn, guide_fn, reverse_fn, spec, estimators, sites, _optimizer(self))
            if cache_key is not None:
                _PROGRAMS[cache_key] = program
                if len(_PROGRAMS) > 16:
                    _PROGRAMS.popitem(last=False)
        state, history, bad = program.run(state, key_run, self, spec.arrays)
        post = _posterior(model, spec, guide_fn, reverse_fn, sites, state, history, key_draw, self)
        if bad is not None:
            last = ", the last with a finite objective" if state.step < bad else ""
            raise SamplingError(f"the objective or its gradient was not finite at step {bad}: the run stopped there "
                                f"and kept the parameters of step {state.step}{last} (error.partial); lower the "
                                f"learning rate or check the model", partial=post)
        return post


def _guide_sites(guide_fn, spec, key) -> set:
    from numpyro import handlers

    tr = handlers.trace(handlers.seed(guide_fn, key)).get_trace(**spec.kwargs())
    return {n for n, s in tr.items() if s["type"] == "sample"}


def _param_sites(model_fn, guide_fn, reverse_fn, spec, key) -> dict:
    """{name: (initial constrained value, constraint)} of the param sites of the guide, the model (run
    at the guide's latent values) and the reverse model (run at them too)."""
    import jax
    from numpyro import handlers
    from numpyro.distributions import constraints

    def trace(fn, k, substitute=None):
        program = handlers.seed(fn, k)
        if substitute:
            program = handlers.substitute(program, data=substitute)
        return handlers.trace(program).get_trace(**spec.kwargs())

    k1, k2, k3 = jax.random.split(key, 3)
    traces = [trace(guide_fn, k1)]
    latents = {n: s["value"] for n, s in traces[0].items() if s["type"] == "sample" and not s["is_observed"]}
    traces.append(trace(model_fn, k2, latents))
    if reverse_fn is not None:
        z = {n: s["value"] for n, s in traces[0].items() if s["type"] == "sample" and not s["is_observed"]
             and not s["infer"].get("is_auxiliary", False)}
        traces.append(trace(lambda **kw: reverse_fn(z, **kw), k3))
    return {n: (s["value"], s["kwargs"].get("constraint", constraints.real)) for tr in traces for n, s in tr.items()
            if s["type"] == "param"}


def _constrain(sites, unconstrained):
    from numpyro.distributions.transforms import biject_to

    return {k: biject_to(sites[k][1])(v) for k, v in unconstrained.items()}


@dataclasses.dataclass
class _State:
    unconstrained: dict
    opt_state: object
    baseline: object
    step: int
    history: list


def _initial_state(sites, engine) -> _State:
    import jax
    import jax.numpy as jnp
    from numpyro.distributions.transforms import biject_to

    if engine.resume and os.path.exists(engine.checkpoint):
        with open(engine.checkpoint, "rb") as f:
            saved = pickle.load(f)
        return _State(jax.tree_util.tree_map(jnp.asarray, saved["unconstrained"]),
                      jax.tree_util.tree_map(jnp.asarray, saved["opt_state"]), jnp.asarray(saved["baseline"]),
                      saved["step"], list(saved["history"]))
    unconstrained = {k: biject_to(c).inv(v) for k, (v, c) in sites.items()}
    return _State(unconstrained, _optimizer(engine).init(unconstrained), jnp.zeros(()), 0, [])


def _optimizer(engine):
    import optax

    return engine.optimizer if engine.optimizer is not None else optax.adam(engine.learning_rate)


class _Program:
    """The compiled chunk of optimisation steps."""

    def __init__(self, objective, model_fn, guide_fn, reverse_fn, spec, estimators, sites, optimizer):
        import jax
        import jax.numpy as jnp
        from numpyro import handlers

        from .runtime import surrogate

        self.guide_fn = guide_fn
        static = dict(spec.static)
        g_tr = handlers.trace(handlers.seed(guide_fn, 0)).get_trace(**spec.kwargs())
        baselines = [v for v in _all_estimators(estimators, g_tr) if isinstance(v, est.Reinforce)]
        running = any(b.baseline == "running" for b in baselines)
        fixed = next((float(b.baseline) for b in baselines if isinstance(b.baseline, (int, float))), 0.0)
        decay = baselines[0].decay if baselines else 0.9

        def constrain(u):
            return _constrain(sites, u)

        def step(carry, key, arrays):
            u, opt_state, baseline, bad, count = carry

            def loss(u):
                total, value = surrogate(objective, model_fn, guide_fn, {**static, **arrays}, constrain(u),
                                         key, estimators, baseline if running else fixed, reverse_fn)
                return -total, value

            (_, value), grads = jax.value_and_grad(loss, has_aux=True)(u)
            updates, new_opt = optimizer.update(grads, opt_state, u)
            new_u = jax.tree_util.tree_map(lambda a, b: a + b, u, updates)
            new_baseline = decay * baseline + (1 - decay) * value if running else baseline
            # one reduction flags a non-finite gradient (NaN and inf survive a sum); the step keeps
            # no copy of the previous state: on a failure the host replays the chunk (`run`)
            finite = jnp.isfinite(value + sum((jnp.sum(g) for g in jax.tree_util.tree_leaves(grads)), 0.0))
            bad = jnp.where((bad < 0) & ~finite, count, bad)
            return (new_u, new_opt, new_baseline, bad, count + 1), value

        def chunk(carry, keys, arrays):
            return jax.lax.scan(lambda c, k: step(c, k, arrays), carry, keys)

        self._chunk = jax.jit(chunk)

    def run(self, state: _State, key, engine, arrays):
        """Run the remaining steps in compiled chunks: (state, history, None), or on a non-finite
        step b: (the state of step b − 1, the history up to it, b)."""
        from tqdm.auto import tqdm

        total = engine.steps
        length = chunk_length(total)
        history = list(state.history)
        start = state.step
        starts = [state]  # the states the last two chunks started from: a failure replays from one
        with tqdm(total=total, initial=start, desc="VI", disable=not engine.progress, dynamic_ncols=True) as bar:
            while start < total:
                stop = min(start + length, total)
                carry, values = self._chunk(self._carry(state), self._keys(key, start, stop), arrays)
                values = np.asarray(values)
                bad = int(carry[3])
                if bad >= 0:
                    history.extend(values[:bad - start].tolist())
                    return self._replay(starts, max(bad - 1, 0), key, arrays, history), history, bad
                history.extend(values.tolist())
                bar.update(stop - start)
                bar.set_postfix_str(f"objective {np.mean(values[-max(1, len(values) // 2):]):.3f}", refresh=False)
                start = stop
                state = _State(*carry[:3], start, history)
                starts = [starts[-1], state]
                if engine.checkpoint:
                    _save_checkpoint(engine.checkpoint, state)
        return state, history, None

    @staticmethod
    def _carry(state: _State):
        import jax.numpy as jnp

        return (state.unconstrained, state.opt_state, state.baseline, jnp.asarray(-1), jnp.asarray(state.step))

    @staticmethod
    def _keys(key, start, stop):
        import jax.numpy as jnp

        # step t's key is fold_in(key, t): a resumed or replayed run repeats the uninterrupted one exactly
        return _step_keys(key, jnp.arange(start, stop))

    def _replay(self, starts, target, key, arrays, history) -> _State:
        """The state before step `target`, recomputed from the latest chunk start at or before it
        (the same keys and the same compiled step: bit for bit the state the run passed through)."""
        # (a run resumed from a checkpoint and failing at once has nothing earlier: it keeps its start)
        origin = next((s for s in reversed(starts) if s.step <= target), starts[0])
        if origin.step >= target:
            return dataclasses.replace(origin, history=history)
        carry, _ = self._chunk(self._carry(origin), self._keys(key, origin.step, target), arrays)
        return _State(*carry[:3], target, history)


def _fold_in_steps(key, steps):
    import jax

    return jax.vmap(lambda t: jax.random.fold_in(key, t))(steps)


def _step_keys(key, steps):
    """Step t's key: fold_in(key, t) (compiled once, not per chunk)."""
    global _STEP_KEYS
    if _STEP_KEYS is None:
        import jax

        _STEP_KEYS = jax.jit(_fold_in_steps)
    return _STEP_KEYS(key, steps)


_STEP_KEYS = None


def _all_estimators(estimators, guide_trace):
    return [estimators(n, s["fn"]) for n, s in guide_trace.items()
            if s["type"] == "sample" and not s.get("is_observed", False)]


def _save_checkpoint(path, state: _State):
    import jax

    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump({"unconstrained": jax.tree_util.tree_map(np.asarray, state.unconstrained),
                     "opt_state": jax.tree_util.tree_map(np.asarray, state.opt_state),
                     "baseline": np.asarray(state.baseline), "step": state.step, "history": state.history}, f)
    os.replace(tmp, path)  # atomic: a crash mid-write leaves the previous checkpoint


class VIPosterior(DrawsPosterior):
    """Draws from the fitted guide (one chain), with ``params`` (the fitted parameters, constrained),
    ``objective_trace`` (the objective per step) and ``guide`` (the NumPyro guide function)."""

    def __repr__(self):
        last = self.objective_trace[-1] if len(self.objective_trace) else float("nan")
        return f"VIPosterior({self.shape[1]} draws; {', '.join(self.draws)}; objective {last:.4f})"

    def evaluate(self, objective="elbo", n: int = 10_000, seed=0) -> tuple[float, float]:
        """(mean, standard error) of ``n`` independent runs of an objective program at the fitted
        parameters: e.g. ``post.evaluate(bk.vi.iwelbo(100))`` for a tight bound on log p(x)."""
        import jax

        from ...core.posterior import _check_n
        from ...core.seeds import as_key
        from .runtime import evaluate

        n = _check_n(n)
        program = as_objective(objective)
        params = jax.tree_util.tree_map(jax.numpy.asarray, self.params)
        choose = est.chooser(None)

        def one(key):
            return evaluate(program, self.model.fn, self.guide, self._data, params, key, choose,
                            reverse_fn=self.reverse)[0]

        values = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(as_key(seed), n)))
        return float(values.mean()), float(values.std(ddof=1) / np.sqrt(n))


def _posterior(model, spec, guide_fn, reverse_fn, sites, state, history, key, engine) -> VIPosterior:
    import jax
    from numpyro.infer import Predictive

    params = _constrain(sites, state.unconstrained)
    k1, k2 = jax.random.split(key)
    latent_names = [s.name for s in spec.latent]
    if hasattr(guide_fn, "sample_posterior"):
        draws = guide_fn.sample_posterior(k1, params, sample_shape=(engine.draws,))
    else:
        draws = Predictive(guide_fn, params=params, num_samples=engine.draws)(k1, **spec.kwargs())
    draws = {k: v for k, v in draws.items() if k in latent_names}
    deterministic = [s.name for s in spec.deterministic]
    if deterministic:
        extra = Predictive(model.fn, posterior_samples=draws, params=params, return_sites=deterministic)(
            k2, **spec.kwargs())
        draws.update(extra)
    observed = {s.name: spec.arrays[s.data_key] for s in spec.observed if s.data_key in spec.arrays}
    constant = {k: v for k, v in spec.arrays.items() if k not in spec.observed_keys}
    post = VIPosterior({k: np.asarray(v)[None] for k, v in draws.items()}, observed_data=observed,
                       constant_data=constant, static_data=dict(spec.static), observed_keys=spec.observed_keys,
                       latent_sites=tuple(latent_names), model=model, engine=engine.settings())
    post.params = jax.tree_util.tree_map(np.asarray, params)  # values may be pytrees (a flow's networks)
    post.objective_trace = np.asarray(history)
    post.guide, post.reverse = guide_fn, reverse_fn
    post._data = spec.kwargs()
    return post
