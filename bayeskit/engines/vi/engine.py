"""`bk.VI`: variational inference on NumPyro models with programmable objectives and per-choice
gradient estimators.

The optimisation runs as compiled chunks of steps (`lax.scan`) driven by `core.loop.run`: between
chunks the host updates the progress bar and, when asked, writes a checkpoint. A step whose
objective or gradient is not finite stops the run: the state before that step's parameters were
last finite is recomputed and returned with the error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import ClassVar, NamedTuple

import numpy as np

from ...core import loop
from ...core.cache import cached, program_key
from ...core.checkpoint import Checkpoint, fingerprint
from ...core.checks import check_bool, check_checkpoint, check_choice, check_int, check_positive
from ...core.engine import Engine
from ...core.errors import ConfigError, SamplingError
from ...core.model import NumPyroProgram
from ...core.optimise import learning_rates
from ...core.posterior import DrawsPosterior, check_n
from ...core.seeds import as_key
from . import estimators as est
from .families import as_family
from .objectives import as_objective

STILL_IMPROVING = 0.01  # nats more steps may still gain for a fit to count as settled
SETTLE_STEPS = 0.1  # `_Program.settling` continues for this fraction of the steps
SETTLE_DRAWS = 256  # ... and compares the objective before and after on at least this many common draws
SETTLE_DRAW_OFFSET = 2**30  # ... those of the steps from here on (never a fit's)


class VI(Engine):
    """Stochastic-gradient variational inference.

    ``objective``: a program ``(model, guide) -> scalar`` to maximise (`bk.vi.elbo`, `iwelbo(K)`,
    `forward_kl(K)`, `rws(K)` or your own). ``guide``: "mean_field", "full_rank",
    `bk.vi.LowRank(rank)`, `bk.vi.Flow()`, or a NumPyro guide function. ``estimator``: how each
    random choice of the guide is differentiated: None (reparameterised where possible, else
    REINFORCE with a running baseline), one of "reparam", "reinforce", "enum", "mvd" for all, or a
    dict site -> estimator. ``steps``: optimisation steps, by Adam with learning rate ``learning_rate``
    decayed along a cosine to 1% of it (``schedule="cosine"``, the default: the late steps average
    the gradient noise out, so the fit settles) or held (``"constant"``); ``optimizer``: an optax
    optimizer to use instead (its own learning rate; ``schedule`` then unused). ``draws``: posterior
    draws taken from the fitted guide. The posterior says when the objective was still improving
    over the last steps (`VIPosterior.problems`, warned about after the fit).
    ``checkpoint``: a file the state is written to every chunk of steps; ``resume=True`` continues
    from it (or starts afresh when it does not exist yet). A checkpoint of another run (settings,
    seed, model or data; ``steps`` too where the schedule spans them) is refused (`ConfigError`).
    """

    objective: Callable | str = "elbo"
    guide: object = "mean_field"
    estimator: str | Mapping | None = None
    steps: int = 4000
    learning_rate: float = 0.05
    schedule: str = "cosine"
    optimizer: object = None
    draws: int = 1000
    progress: bool = True
    checkpoint: str | None = None
    resume: bool = False

    capability: ClassVar = NumPyroProgram
    # the learning rate of each step enters the compiled chunk as an argument: none of these recompile
    runtime_fields: ClassVar[tuple[str, ...]] = ("progress", "checkpoint", "resume", "steps", "draws",
                                                 "learning_rate", "schedule")

    def __check_init__(self):
        as_objective(self.objective)
        as_family(self.guide)
        check_int("steps", self.steps)
        check_int("draws", self.draws)
        check_positive("learning_rate", self.learning_rate)
        check_choice("schedule", self.schedule, ("cosine", "constant"))
        check_bool("progress", self.progress)
        check_checkpoint(self.checkpoint, self.resume)
        if isinstance(self.estimator, Mapping):
            for site, value in self.estimator.items():
                est.as_estimator(value, site)
        elif self.estimator is not None:
            est.as_estimator(self.estimator, "*")

    def compile_key(self) -> tuple:
        """The settings that change the compiled program: objective, family, estimators, optimizer
        (an unhashable one, or an unhashable guide, leaves the program uncached)."""
        estimator = self.estimator
        if isinstance(estimator, Mapping):
            estimator = tuple(sorted((k, est.as_estimator(v, k)) for k, v in estimator.items()))
        elif estimator is not None:
            estimator = est.as_estimator(estimator, "*")
        return (type(self).__name__, as_objective(self.objective), as_family(self.guide), estimator,
                self.optimizer)

    def learning_rates(self) -> np.ndarray:
        """The factor each step's update is scaled by: the learning rate of Adam's step (cosine-decayed
        or constant), or 1 with a user's ``optimizer`` (whose updates carry their own rate)."""
        if self.optimizer is not None:
            return np.ones(self.steps)
        return learning_rates(self.steps, self.learning_rate, self.schedule)

    def fit(self, model, data, key) -> VIPosterior:
        import jax

        spec = model.inspect(data)
        family = as_family(self.guide)
        # a compiled program is reused by later fits of the same model, guide, objective, estimators,
        # optimizer and data layout: refitting compiles nothing
        program = cached(program_key("vi", model, static=spec.static, arrays=spec.arrays, engine=self),
                         lambda: _Program(as_objective(self.objective), model.fn, family,
                                          est.chooser(self.estimator), _optimizer(self), self.optimizer is None))
        guide_fn, reverse_fn = program.guide_fn, program.reverse_fn
        if isinstance(self.estimator, Mapping):
            unknown = set(self.estimator) - {s.name for s in spec.latent} - _guide_sites(guide_fn, spec, key)
            if unknown:
                raise ConfigError(f"`estimator` names site {sorted(unknown)[0]!r}, which the guide does not sample")
        key_init, key_run, key_draw = jax.random.split(key, 3)
        sites = _param_sites(model.fn, guide_fn, reverse_fn, spec, key_init)
        checkpoint = Checkpoint.of(self.checkpoint, self.resume, lambda: self._fingerprint(model, spec, key))
        saved = checkpoint.load() if checkpoint is not None else None
        state = _initial_state(sites, self) if saved is None else _restore(saved.state)
        program.prepare(spec, sites)

        def posterior(state, history):
            return _posterior(model, spec, guide_fn, reverse_fn, sites, state, history, key_draw, self)

        result = program.run(state, key_run, self, spec.arrays, checkpoint, saved.records if saved else (),
                             partial=lambda state, records, done: posterior(state, _history(records)))
        history = _history(result.records)
        post = posterior(result.state, history)
        if result.stopped is None and not result.interrupted:
            post.settling = program.settling(result.state, key_run, self, spec, sites)
        if result.stopped is not None:
            bad, step = len(history), result.state.step  # the history holds steps 0 .. bad - 1
            last = ", the last with a finite objective" if step < bad else ""
            raise SamplingError(f"the objective or its gradient was not finite at step {bad}: the run stopped there "
                                f"and kept the parameters of step {step}{last} (error.partial); lower the "
                                f"learning rate or check the model", partial=post)
        return post

    def _fingerprint(self, model, spec, key) -> dict:
        """What decides the run's numbers (`core.checkpoint.fingerprint`): the settings but ``draws``
        (taken after the run) and, when the learning rates do not depend on it (a constant schedule,
        the user's optimizer), ``steps``: such a run may be resumed to go on for more steps. Then the
        seed, the model's function and the data."""
        skip = {"draws"} | ({"steps"} if self.schedule == "constant" or self.optimizer is not None else set())
        settings = {"engine": type(self).__name__,
                    **{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}}
        return fingerprint(settings, key, model=(model.name, model.fn), data=(dict(spec.static), spec.arrays))


def _history(records: list) -> np.ndarray:
    """The objective per step: what each chunk recorded (a resumed run's records include those before it)."""
    return np.concatenate([np.zeros(0), *records], dtype=float)


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


class _State(NamedTuple):
    """The optimiser's state after ``step`` steps (unconstrained parameters, as optax sees them)."""

    unconstrained: dict
    opt_state: object
    baseline: object  # the running REINFORCE baseline
    step: int


def _initial_state(sites, engine) -> _State:
    """The state at step 0."""
    import jax.numpy as jnp
    from numpyro.distributions.transforms import biject_to

    unconstrained = {k: biject_to(c).inv(v) for k, (v, c) in sites.items()}
    return _State(unconstrained, _optimizer(engine).init(unconstrained), jnp.zeros(()), 0)


def _restore(saved: _State) -> _State:
    """A checkpoint's state (host arrays) as the run left it."""
    import jax
    import jax.numpy as jnp

    return _State(*jax.tree_util.tree_map(jnp.asarray, tuple(saved[:3])), int(saved.step))


def _optimizer(engine):
    """The optax transformation whose updates, times each step's rate, are added to the parameters:
    Adam's direction (descending, so the rate's sign is in `_Program`), or the user's optimizer."""
    import optax

    return engine.optimizer if engine.optimizer is not None else optax.scale_by_adam()


class _Program:
    """The guide of one model and family, and the compiled chunk of optimisation steps for one
    objective, estimators, optimizer and data layout (cached: `core.cache`)."""

    def __init__(self, objective, model_fn, family, estimators, optimizer, default_optimizer: bool):
        self.objective, self.model_fn, self.estimators, self.optimizer = objective, model_fn, estimators, optimizer
        self.default_optimizer = default_optimizer
        self.guide_fn = family.build(model_fn) if hasattr(family, "build") else family
        self.reverse_fn = getattr(family, "reverse", None)
        self._chunk = None

    def prepare(self, spec, sites) -> None:
        """Define the compiled chunk (once): ``sites`` gives the parameters' constraints."""
        if self._chunk is not None:
            return
        import jax
        import jax.numpy as jnp
        from numpyro import handlers

        from .runtime import surrogate

        objective, model_fn, guide_fn, reverse_fn = self.objective, self.model_fn, self.guide_fn, self.reverse_fn
        estimators, optimizer = self.estimators, self.optimizer
        static = dict(spec.static)
        g_tr = handlers.trace(handlers.seed(guide_fn, 0)).get_trace(**spec.kwargs())
        baselines = [v for v in _all_estimators(estimators, g_tr) if isinstance(v, est.Reinforce)]
        running = any(b.baseline == "running" for b in baselines)
        fixed = next((float(b.baseline) for b in baselines if isinstance(b.baseline, (int, float))), 0.0)
        decay = baselines[0].decay if baselines else 0.9

        def constrain(u):
            return _constrain(sites, u)

        descend = -1.0 if self.default_optimizer else 1.0  # Adam's direction, or the user's signed updates

        def step(carry, rate, key, arrays):
            u, opt_state, baseline, bad, count = carry
            # step t's key is fold_in(key, t): a resumed or replayed run repeats the uninterrupted one exactly
            key_t = jax.random.fold_in(key, count)

            def loss(u):
                total, value = surrogate(objective, model_fn, guide_fn, {**static, **arrays}, constrain(u),
                                         key_t, estimators, baseline if running else fixed, reverse_fn)
                return -total, value

            (_, value), grads = jax.value_and_grad(loss, has_aux=True)(u)
            updates, new_opt = optimizer.update(grads, opt_state, u)
            new_u = jax.tree_util.tree_map(lambda a, b: a + descend * rate * b, u, updates)
            new_baseline = decay * baseline + (1 - decay) * value if running else baseline
            # one reduction flags a non-finite gradient (NaN and inf survive a sum); the step keeps
            # no copy of the previous state: on a failure the host replays the chunk (`_replay`)
            finite = jnp.isfinite(value + sum((jnp.sum(g) for g in jax.tree_util.tree_leaves(grads)), 0.0))
            bad = jnp.where((bad < 0) & ~finite, count, bad)
            return (new_u, new_opt, new_baseline, bad, count + 1), value

        def chunk(carry, rates, key, arrays):
            return jax.lax.scan(lambda c, rate: step(c, rate, key, arrays), carry, rates)

        self._chunk = jax.jit(chunk)

    def _advance(self, state: _State, key, arrays, rates: np.ndarray):
        import jax.numpy as jnp

        carry = (state.unconstrained, state.opt_state, state.baseline, jnp.asarray(-1), jnp.asarray(state.step))
        carry, values = self._chunk(carry, rates, key, arrays)
        return _State(*carry[:3], state.step + len(rates)), int(carry[3]), np.asarray(values, dtype=float)

    def run(self, state: _State, key, engine, arrays, checkpoint, records, partial) -> loop.LoopResult:
        """Run steps ``state.step … engine.steps − 1`` in compiled chunks (`core.loop.run`), after the
        ``records`` of a resumed run's earlier steps, writing ``checkpoint`` (or None) after each. On a
        non-finite step b the run stops (``result.stopped``) with the state before step b − 1, the
        last whose objective was finite, and the records of steps up to b − 1."""
        starts = [state]  # the states the last two chunks started from: a failure replays from one
        rates = engine.learning_rates()

        def advance(state, start, stop):
            new, bad, values = self._advance(state, key, arrays, rates[start:stop])
            if bad >= 0:
                kept = self._replay(starts, max(bad - 1, 0), key, arrays, rates)
                raise loop.Stop(kept, kept.step, values[:bad - start], f"not finite at step {bad}")
            starts[:] = [starts[-1], new]
            return new, values

        def postfix(records, done):
            values = records[-1]
            return f"objective {np.mean(values[-max(1, len(values) // 2):]):.3f}"

        return loop.run(advance, state, total=engine.steps, start=state.step, records=records,
                        progress=engine.progress, desc="VI", postfix=postfix, partial=partial, checkpoint=checkpoint)

    def settling(self, state: _State, key, engine, spec, sites) -> dict | None:
        """Would more steps still raise the objective? About `SETTLE_STEPS` (10%) more steps from the
        fitted state at the schedule's rate 90% through it (the last 10%'s scale), then the objective
        at both points on the same random draws: {"steps", "rate", "gain", "se", "draws"} of the
        paired mean difference (continued − fitted). A settled fit gains nothing (the continuation
        only adds noise); an unsettled one gains. None when there is too little to go on.

        Everything runs through the compiled chunk of the fit (one chunk's length at a time; the
        objective at fixed parameters is a chunk at learning rate 0 with the step counter, and so the
        draws, set alike), so the check compiles nothing."""
        from ...core.loop import chunk_length

        if engine.steps < 100:
            return None
        length = chunk_length(engine.steps)
        chunks = max(1, round(SETTLE_STEPS * engine.steps / length))
        rate = engine.learning_rates()[int(0.9 * (engine.steps - 1))]
        arrays, continued = spec.arrays, state
        for _ in range(chunks):
            continued, bad, _ = self._advance(continued, key, arrays, np.full(length, rate))
            if bad >= 0:
                return None

        def objective_at(s):  # the objective at s's parameters on SETTLE_DRAWS or more draws no fit step used
            return np.concatenate([
                self._advance(s._replace(step=SETTLE_DRAW_OFFSET + j * length), key, arrays, np.zeros(length))[2]
                for j in range(-(-SETTLE_DRAWS // length))])

        diff = objective_at(continued) - objective_at(state)
        diff = diff[np.isfinite(diff)]
        if diff.size < 2:
            return None
        return {"steps": chunks * length, "rate": float(rate), "gain": float(diff.mean()),
                "se": float(diff.std(ddof=1) / np.sqrt(diff.size)), "draws": int(diff.size)}

    def _replay(self, starts, target, key, arrays, rates) -> _State:
        """The state before step `target`, recomputed from the latest chunk start at or before it
        (the same keys and the same compiled step: bit for bit the state the run passed through)."""
        # (a run resumed from a checkpoint and failing at once has nothing earlier: it keeps its start)
        origin = next((s for s in reversed(starts) if s.step <= target), starts[0])
        if origin.step >= target:
            return origin
        return self._advance(origin, key, arrays, rates[origin.step:target])[0]


def _all_estimators(estimators, guide_trace):
    return [estimators(n, s["fn"]) for n, s in guide_trace.items()
            if s["type"] == "sample" and not s.get("is_observed", False)]


class VIPosterior(DrawsPosterior):
    """Draws from the fitted guide (one chain of independent draws), with ``params`` (the fitted
    parameters, constrained: the guide's and the model's own), ``objective_trace`` (the objective
    per step), ``guide`` (the NumPyro guide function) and ``reverse`` (a hierarchical family's
    reverse model, or None). ``data`` are the model arguments of the fit (observations included)."""

    def __init__(self, draws, *, params: Mapping, objective_trace, guide, reverse=None,
                 data: Mapping | None = None, markov: bool = False, **kwargs):
        super().__init__(draws, markov=markov, **kwargs)
        self.params = dict(params)
        self.objective_trace = np.asarray(objective_trace)
        self.guide, self.reverse = guide, reverse
        self._data = dict(data) if data is not None else self.model_kwargs()
        self.settling = None  # {"steps", "rate", "gain", "se"}: what more steps would gain (`_Program.settling`)

    def __repr__(self):
        last = self.objective_trace[-1] if len(self.objective_trace) else float("nan")
        return f"VIPosterior({self.shape[1]} draws; {', '.join(self.draws)}; objective {last:.4f})"

    def problems(self) -> list[str]:
        """The objective had not settled: `settling` (10% more steps, measured on common draws) raised it
        by more than `STILL_IMPROVING` nats and more than 4 standard errors."""
        check = self.settling
        if check is None or check["gain"] <= max(STILL_IMPROVING, 4 * check["se"]):
            return []
        return [f"the objective had not settled: {check['steps']} more steps (at the learning rate of the last "
                f"10%, {check['rate']:.2g}) raised it by {check['gain']:.3g} ± {check['se']:.2g} (on "
                f"{check['draws']} common draws); raise `steps` (or `learning_rate`)"]

    def traces(self) -> dict[str, np.ndarray]:
        """The objective per optimisation step."""
        return {**super().traces(), "objective": self.objective_trace}

    def model_params(self) -> dict:
        """`predict` runs the model with its own ``numpyro.param`` sites (a decoder's weights) at their
        fitted values."""
        return self.params

    def evaluate(self, objective="elbo", n: int = 10_000, seed=0) -> tuple[float, float]:
        """(mean, standard error) of ``n`` independent runs of an objective program at the fitted
        parameters: e.g. ``post.evaluate(bk.vi.iwelbo(100))`` for a tight bound on log p(x)."""
        import jax

        from .runtime import evaluate

        n = check_n(n)
        program = as_objective(objective)
        params = jax.tree_util.tree_map(jax.numpy.asarray, self.params)
        choose = est.chooser(None)

        def one(key):
            return evaluate(program, self.model.fn, self.guide, self._data, params, key, choose,
                            reverse_fn=self.reverse)[0]

        keys = jax.random.split(as_key(seed), n)
        # runs in vectorised batches sized to EVALUATE_MEMORY by one run's working memory, so that
        # n runs of a K-sample bound never need n times a run's memory at once
        batch = evaluation_batch(_run_bytes(one, keys[0]), n)
        values = np.asarray(jax.jit(lambda k: jax.lax.map(one, k, batch_size=batch))(keys))
        return float(values.mean()), float(values.std(ddof=1) / np.sqrt(n))


EVALUATE_MEMORY = 256 * 2**20  # bytes of working memory for one batch of `VIPosterior.evaluate`'s runs


def evaluation_batch(run_bytes: int, n: int) -> int:
    """How many runs of `run_bytes` working memory each to vectorise at once (1 .. n)."""
    return int(min(n, max(1, EVALUATE_MEMORY // max(int(run_bytes), 1))))


def _run_bytes(one, key) -> int:
    """Working memory of one run of a jitted program, from XLA's memory analysis (1 MiB if unknown)."""
    import jax

    try:
        stats = jax.jit(one).lower(key).compile().memory_analysis()
        return int(stats.temp_size_in_bytes + stats.output_size_in_bytes)
    except Exception:  # a backend without memory analysis: a guess that still bounds the batch
        return 2**20


def _posterior(model, spec, guide_fn, reverse_fn, sites, state, history, key, engine) -> VIPosterior:
    import jax
    from numpyro.infer import Predictive

    params = _constrain(sites, state.unconstrained)
    k1, k2 = jax.random.split(key)
    latent_names = [s.name for s in spec.latent]
    # JAX arrays: Predictive vmaps over draws, and a subsampling guide indexes its data with a traced
    # index (``y[idx]``), which a NumPy array refuses
    kwargs = {k: jax.numpy.asarray(v) if isinstance(v, np.ndarray) else v for k, v in spec.kwargs().items()}
    if hasattr(guide_fn, "sample_posterior"):
        draws = guide_fn.sample_posterior(k1, params, sample_shape=(engine.draws,))
    else:
        draws = Predictive(guide_fn, params=params, num_samples=engine.draws)(k1, **kwargs)
    draws = {k: v for k, v in draws.items() if k in latent_names}
    deterministic = [s.name for s in spec.deterministic]
    if deterministic:
        extra = Predictive(model.fn, posterior_samples=draws, params=params, return_sites=deterministic)(
            k2, **kwargs)
        draws.update(extra)
    return VIPosterior.from_spec(
        {k: np.asarray(v)[None] for k, v in draws.items()}, spec, model=model, engine=engine, markov=False,
        params=jax.tree_util.tree_map(np.asarray, params),  # values may be pytrees (a flow's networks)
        objective_trace=history, guide=guide_fn, reverse=reverse_fn, data=spec.kwargs())
