"""`bk.NUTS` and `bk.HMC`: Hamiltonian Monte Carlo on NumPyro models through BlackJAX.

The model's log density is taken in unconstrained space (NumPyro's transforms and
Jacobians), flattened to one vector per chain. Each chain adapts its own step size
and (diagonal or dense) inverse mass matrix with Stan's windowed scheme, then samples
with the adapted values. Draws are returned in constrained space together with the
model's deterministic sites and the sampler's statistics.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import warnings
from collections.abc import Mapping
from typing import ClassVar, NamedTuple

import numpy as np

from ...core import distributed, seeds
from ...core.checkpoint import Checkpoint, fingerprint
from ...core.checks import check_bool, check_checkpoint, check_choice, check_int, check_positive, check_probability
from ...core.engine import Engine
from ...core.errors import ConfigError, ConvergenceWarning, InitializationError, ModelError
from ...core.loop import Progress, run  # noqa: F401 (Progress: the bar tests patch to interrupt a run)
from ...core.model import NumPyroModel, NumPyroProgram, latent_values
from ...core.module import Module
from ...core.posterior import DrawsPosterior
from ...core.threads import usable_cores

INIT_KINDS = ("uniform", "median", "sample")
METRICS = ("diag", "low_rank", "dense", "diag_welford")  # see `adaptation`
INIT_BATCH = 8  # start candidates tried at once per chain
INIT_TRIES = 104  # at most this many per chain (NumPyro tries 100)


class InitStrategy(Module, pytree=False):
    """Where chains start: NumPyro's init strategies, with user values passed as arrays.

    ``kind`` is one of `INIT_KINDS` or ``"values"`` (``values``: constrained values by site name,
    other sites uniform in ``[-radius, radius]``, unconstrained).
    """

    kind: str
    radius: float
    values: dict

    def __check_init__(self):
        check_choice("init", self.kind, (*INIT_KINDS, "values"))
        check_positive("init_radius", self.radius)

    @property
    def key(self):
        shapes = tuple((k, np.shape(v), str(np.asarray(v).dtype)) for k, v in sorted(self.values.items()))
        return (self.kind, self.radius, shapes)

    def make(self, values):
        from numpyro.infer import init_to_median, init_to_sample, init_to_uniform

        if self.kind == "values":
            return _init_to_values(values, self.radius)
        if self.kind == "median":
            return init_to_median(num_samples=15)
        if self.kind == "sample":
            return init_to_sample()
        return init_to_uniform(radius=self.radius)

    def describe(self) -> str:
        if self.kind == "uniform":
            return f"init='uniform' (unconstrained values in [-{self.radius}, {self.radius}])"
        if self.kind == "values":
            return f"init={{{', '.join(self.values)}}} (other sites uniform in [-{self.radius}, {self.radius}])"
        return f"init={self.kind!r}"


def _init_to_values(values: dict, radius: float):
    """NumPyro init strategy: the given constrained values, other latent sites uniform in [-radius, radius]."""
    from numpyro.infer import init_to_uniform

    fallback = init_to_uniform(radius=radius)

    def strategy(site=None):
        if site is None:
            return strategy
        if site["type"] == "sample" and not site["is_observed"] and site["name"] in values:
            return values[site["name"]]
        return fallback(site)

    return strategy


class _HMCFamily(Engine):
    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    target_accept: float = 0.8
    metric: str = "diag"
    init: str | Mapping = "uniform"
    init_radius: float = 2.0
    initial_step_size: float = 1.0
    cores: int | None = None
    progress: bool = True
    checkpoint: str | None = None
    resume: bool = False

    capability: ClassVar = NumPyroProgram
    runtime_fields: ClassVar[tuple[str, ...]] = (*Engine.runtime_fields, "cores")

    def __check_init__(self):
        check_int("chains", self.chains)
        check_int("draws", self.draws)
        check_int("warmup", self.warmup, minimum=0)
        check_probability("target_accept", self.target_accept)
        check_choice("metric", self.metric, METRICS)
        if not isinstance(self.init, Mapping) and self.init not in INIT_KINDS:
            # check_choice's wording, plus the dict form it cannot know about
            raise ConfigError(
                f"`init` must be one of {', '.join(map(repr, INIT_KINDS))} or a dict of initial values, "
                f"got {self.init!r}"
            )
        check_positive("init_radius", self.init_radius)
        check_positive("initial_step_size", self.initial_step_size)
        if self.cores is not None:
            check_int("cores", self.cores)
        check_bool("progress", self.progress)
        check_checkpoint(self.checkpoint, self.resume)

    # -- what subclasses provide -------------------------------------------------------------
    def lane_kernel(self, logdensity_fn):
        """The transition as a `kernels.LaneKernel` over `logdensity_fn` (flat position -> log density)."""
        raise NotImplementedError

    #: Settings left out of `compile_key` beyond the runtime ones: ``chains`` only changes array
    #: shapes (one Program serves every chain count), and the start is keyed by `InitStrategy.key`
    #: (kind, radius, shapes of the values), so new initial values reuse the compiled program.
    keyed_elsewhere: ClassVar[tuple[str, ...]] = ("chains", "init", "init_radius")

    def compile_key(self) -> tuple:
        """Settings that change the compiled program: `Engine.compile_key` less `keyed_elsewhere`."""
        return tuple(
            item for item in super().compile_key()
            if not (isinstance(item, tuple) and item[0] in self.keyed_elsewhere)
        )

    def settings(self) -> dict:
        out = super().settings()
        if isinstance(self.init, Mapping):
            out["init"] = "values:" + ",".join(self.init)
        return out

    # -- fitting -------------------------------------------------------------------------------
    def _init_strategy(self) -> InitStrategy:
        if isinstance(self.init, Mapping):
            values = {k: np.asarray(v) for k, v in self.init.items()}
            return InitStrategy("values", float(self.init_radius), values)
        return InitStrategy(self.init, float(self.init_radius), {})

    def fit(self, model: NumPyroModel, data, key) -> DrawsPosterior:
        from .program import get_program

        spec = model.inspect(data)
        discrete = [s.name for s in spec.latent if s.discrete]
        if discrete:
            raise ModelError(
                f"{type(self).__name__} needs continuous latent variables; model {model.name!r} has discrete "
                f"latent site(s) {', '.join(map(repr, discrete))}: marginalise them out or observe them"
            )
        strategy = self._init_strategy()
        unknown = [k for k in strategy.values if k not in {s.name for s in spec.latent}]
        if unknown:
            raise ConfigError(f"`init` names {unknown[0]!r}, which is not a latent site of model {model.name!r}")
        program = get_program(model, spec, self, strategy)
        checkpoint = Checkpoint.of(self.checkpoint, self.resume, lambda: self._fingerprint(model, spec, key))
        saved = checkpoint.load() if checkpoint is not None else None

        # Per-chain keys and start candidates come from the seed through NumPy's SeedSequence:
        # pure in the seed, and no random-number program to compile before sampling starts.
        init_seq, run_seq, restart_seq = seeds.seed_sequence(key).spawn(3)
        chain = self._start(program, init_seq, model, spec, strategy) if saved is None else None
        runner = _Runner(self, program, spec, _raw_keys(run_seq, self.chains), restart_seq, strategy)
        return runner.run(chain, model, checkpoint, saved)

    def _fingerprint(self, model, spec, key) -> dict:
        """What decides the draws (`core.checkpoint.fingerprint`): the settings but `cores` (each chain is
        its own program on CPU), the seed, the model's function, the data and any initial values."""
        settings = {"engine": type(self).__name__,
                    **{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "cores"}}
        return fingerprint(settings, key, model=(model.name, model.fn), data=(dict(spec.static), spec.arrays))

    def _start(self, program, seq, model, spec, strategy, best=False):
        """Starting points (position, logdensity, gradient) per chain; chains without a valid
        candidate retry with fresh draws (same program). With `best`, the most probable of each
        batch of candidates (restarts)."""
        chains = self.chains

        def attempt(seq):
            rng = np.random.default_rng(seq)
            uniforms = rng.random((chains, INIT_BATCH, program.dim))
            state, found = program.start(_raw_keys(seq, chains), uniforms, spec.arrays, strategy.values,
                                         np.asarray(best))
            return _host(state), np.asarray(found)

        retries = seq.spawn(INIT_TRIES // INIT_BATCH)
        state, found = attempt(retries[0])
        for retry_seq in retries[1:]:
            if found.all():
                return state
            retry, retry_found = attempt(retry_seq)
            take = ~found & retry_found
            state = tuple(np.where(take.reshape((-1,) + (1,) * (np.ndim(o) - 1)), n, o)
                          for n, o in zip(retry, state, strict=True))
            found = found | take
        if not found.all():
            bad = np.flatnonzero(~found)
            raise InitializationError(_explain_init_failure(model, spec, strategy, retries[-1], bad))
        return state


class _Runner:
    """One fit's run: chains in groups (threads on CPU, devices elsewhere), warmup then sampling in
    chunks, stuck chains restarted during warmup, a checkpoint after each chunk when asked.

    A checkpoint is written at chunk boundaries only, where every chain has reached the same
    transition (a chunk ends when all its lanes have; a chunk that ran ahead is not part of it):
    it holds every chain's `program.Lanes` (position, adaptation state with step size, metric,
    moment accumulators and window position through ``k``, the trajectory begun, the key), the
    restart bookkeeping (restarts per chain, the restart seed stream's position, the chains left
    stuck) and, in the loop's records, the draws kept so far."""

    def __init__(self, engine, program, spec, chain_keys, restart_seq, strategy):
        self.engine, self.program, self.spec = engine, program, spec
        self.chain_keys, self.restart_seq, self.strategy = chain_keys, restart_seq, strategy
        self.groups = chain_groups(engine.chains, engine.cores)  # this process's chains (`core.distributed`)
        on_cpu = _backend() == "cpu"
        self.workers = (engine.cores or usable_cores()) if on_cpu else max(len(self.groups), 1)
        self.progress = engine.progress and distributed.is_root()
        self.restarts = np.zeros(engine.chains, int)
        self.stuck = np.zeros(0, int)

    def run(self, chain, model, checkpoint=None, saved=None) -> DrawsPosterior:
        """Sample from `chain` (per-chain starting points), or from `saved` (a `core.checkpoint.Saved`)
        when resuming."""
        import jax

        from .program import unpack

        engine, program = self.engine, self.program
        total, warmup = engine.warmup + engine.draws, engine.warmup
        if saved is None:
            lanes = [self._prime(tuple(a[g.chains] for a in chain), g, np.zeros(len(g.chains), np.int32))
                     for g in self.groups]
        else:
            lanes = self._restore(saved.state)

        # the schedule and the data go to each device once, not at every chunk
        on_device = {d: (_on(d, program.schedule), _on(d, self.spec.arrays)) for d in {g.device for g in self.groups}}
        placed = [on_device[g.device] for g in self.groups]

        # Run-ahead: a group whose chunk is done starts its next one at once, on its worker, rather
        # than waiting for the slowest group and the host's bookkeeping between chunks (the draws do
        # not change: a group's chunk depends on its own lanes only). Not across the boundaries where
        # the host may restart stuck chains; stopped when the run ends (or is interrupted).
        pool = _pool(self.workers) if self.workers > 1 else None
        ahead: dict = {}  # (group, start) -> future of a chunk started early
        finished = threading.Event()

        def may_run_ahead(stop):
            return pool is not None and stop < total and stop > RESTART_BEFORE * warmup

        def launch(i, fn, lane, start, stop):
            def task():
                out = jax.block_until_ready(fn(lane, np.int32(start), np.int32(stop), *placed[i]))
                if may_run_ahead(stop) and not finished.is_set():
                    # registered before this future completes: the host looks it up only after that
                    ahead[(i, stop)] = launch(i, fn, out[0], stop, min(stop + program.chunk_len, total))
                return out

            return pool.submit(task) if pool is not None else _Done(task())

        def advance(lanes, start, stop):
            args = [(lanes[i], np.int32(start), np.int32(stop), *placed[i]) for i in range(len(self.groups))]
            # Compiled here, one group at a time: tracing runs NumPyro's handler stack, a global
            # that two threads tracing at once would interleave. The threads only execute.
            compiled = [program.compiled_chunk(a) for a in args]
            futures = [ahead.pop((i, start), None) or launch(i, compiled[i], lanes[i], start, stop)
                       for i in range(len(self.groups))]
            outs = [f.result() for f in futures]
            lanes = [o[0] for o in outs]
            out = jax.device_get([o[1] for o in outs])  # waits for the chunk: the bar shows steps done
            n = stop - start
            local = unpack(program.layout, np.concatenate([o[0] for o in out])[:, :n],
                           np.concatenate([o[1] for o in out])[:, :n]) if out else None
            # every process gets every chain's draws, in chain order (one gather per chunk, on the host)
            values, stats = distributed.gather_rows(local)
            if stop <= warmup:
                lanes = self._restart_stuck(lanes, stop, model)
            if stop == warmup or (warmup == 0 and start == 0):
                self.stuck = np.flatnonzero(self._stuck(lanes))  # adapted, and still stuck: say so
            keep = np.arange(start, stop) >= warmup
            return lanes, ((jax.tree.map(lambda a: a[:, keep], (values, stats))) if keep.any() else None)

        def postfix(records, done):
            if done <= warmup:
                return f"{engine.chains} chains"
            divergences = sum(int(np.sum(r[1]["diverging"])) for r in records if r is not None)
            return f"{engine.chains} chains, {divergences} divergences"

        def partial(state, records, done):
            kept = [r for r in records if r is not None]
            return self._posterior(kept, model) if kept else None

        try:
            result = run(
                advance, lanes, total=total, chunk=program.chunk_len, progress=self.progress, desc=model.name,
                phases=[("warmup", warmup), ("sampling", engine.draws)], postfix=postfix, partial=partial,
                start=saved.done if saved else 0, records=saved.records if saved else (),
                checkpoint=checkpoint, snapshot=self._snapshot,
            )
        finally:
            finished.set()
            while ahead:  # popitem, not a loop over the dict: a worker may still be adding its last one
                ahead.popitem()[1].cancel()
        kept = [r for r in result.records if r is not None]
        if not kept:  # interrupted during warmup: there are no draws to return
            raise KeyboardInterrupt
        return self._posterior(kept, model)

    def _snapshot(self, lanes) -> dict:
        """The run's state between chunks, on the host: lanes stacked over chains (as on CPU every chain
        is its own group, a resume does not depend on how chains were grouped) and the restart bookkeeping."""
        stacked = distributed.gather_rows(_concat_lanes([_host(lane) for lane in lanes]) if lanes else None)
        return {"lanes": stacked, "restarts": self.restarts.copy(), "stuck": self.stuck.copy(),
                "restart_streams": self.restart_seq.n_children_spawned}

    def _restore(self, state) -> list:
        """The lanes of each group from a `_snapshot`, and the restart bookkeeping as it was."""
        import jax

        self.restarts, self.stuck = np.array(state["restarts"]), np.array(state["stuck"])
        self.restart_seq.spawn(state["restart_streams"])  # move the stream to where the run was
        return [_on(g.device, jax.tree.map(lambda a, g=g: a[g.chains], state["lanes"])) for g in self.groups]

    def _prime(self, chain, group, k):
        return self.program.prime(_on(group.device, chain), _on(group.device, self.chain_keys[group.chains]),
                                  _on(group.device, k), _on(group.device, self.spec.arrays))

    def _restart_stuck(self, lanes, done, model):
        """Restart chains whose step size collapsed (see `stuck_chains`) from the most probable of
        8 fresh candidates each (away from where the log density explodes), while enough warmup is
        left to adapt again."""
        engine = self.engine
        if done > RESTART_BEFORE * engine.warmup:
            return lanes
        stuck = self._stuck(lanes) & (self.restarts < MAX_RESTARTS)
        if not stuck.any():
            return lanes
        seq = self.restart_seq.spawn(1)[0]
        fresh = self.engine._start(self.program, seq, model, self.spec, self.strategy, best=True)
        self.restarts[stuck] += 1
        out = []
        for lane, g in zip(lanes, self.groups, strict=True):
            mask = stuck[g.chains]
            if not mask.any():
                out.append(lane)
                continue
            primed = self._prime(tuple(a[g.chains] for a in fresh), g, np.full(len(g.chains), done, np.int32))
            out.append(_on(g.device, _select_host(mask, primed, lane)))
        return out

    def _stuck(self, lanes) -> np.ndarray:
        """Which chains are stuck, over every process's chains (the median is over all of them)."""
        local = None
        if lanes:
            step = np.concatenate([np.asarray(ln.adapt.step_size) for ln in lanes])
            scale = np.concatenate([_metric_scale(np.asarray(ln.adapt.inverse_mass_matrix)) for ln in lanes])
            local = (step * scale, np.concatenate([np.asarray(ln.chain[0]) for ln in lanes]))
        return stuck_chains(*distributed.gather_rows(local))

    def _posterior(self, kept, model) -> DrawsPosterior:
        values = {k: np.concatenate([p[0][k] for p in kept], axis=1) for k in kept[0][0]}
        stats = {k: np.concatenate([p[1][k] for p in kept], axis=1) for k in kept[0][1]}
        if distributed.is_root():
            self._warn_restarts()
        return DrawsPosterior.from_spec(values, self.spec, model=model, engine=self.engine, sample_stats=stats,
                                        markov=True)

    def _warn_restarts(self):
        if len(self.stuck):
            warnings.warn(
                f"chain(s) {', '.join(map(str, self.stuck))} ended warmup stuck: step size under {STUCK_RATIO:g} of "
                "the median chain's, or too small to move the position; their draws barely move. Restarts (at most "
                f"{MAX_RESTARTS} per chain, in the first half of warmup) did not help: check the model where they are, "
                "or start them elsewhere (init=)",
                ConvergenceWarning, stacklevel=4,
            )
        if self.restarts.any():
            chains = np.flatnonzero(self.restarts)
            warnings.warn(
                f"chain(s) {', '.join(map(str, chains))} stopped moving during warmup (step size "
                f"collapsed to under {STUCK_RATIO:g} of the other chains') and were restarted from fresh starting "
                f"points ({', '.join(str(self.restarts[c]) for c in chains)} time(s)); check their draws, and the "
                "model where they started, if R-hat flags them",
                ConvergenceWarning, stacklevel=4,
            )


# -- chain groups ------------------------------------------------------------------------------

RESTART_BEFORE = 0.5  # stuck chains are restarted only in the first half of warmup
MAX_RESTARTS = 3
STUCK_RATIO = 1e-4  # a chain is stuck when its step length is this far below the median chain's
STUCK_ABSOLUTE = 1e-12  # ... or when its steps cannot change its position (relative to its size)


def stuck_chains(step_length, position) -> np.ndarray:
    """Chains whose step length (step size times the metric's typical scale) collapsed: below
    `STUCK_RATIO` times the median over chains (with three chains or more), or too small to change
    their position in floating point."""
    step_length = np.asarray(step_length, float)
    size = 1.0 + np.max(np.abs(position), axis=-1)
    stuck = ~np.isfinite(step_length) | (step_length < STUCK_ABSOLUTE * size)
    if step_length.shape[0] >= 3:
        stuck |= step_length < STUCK_RATIO * np.median(step_length)
    return stuck


def _metric_scale(imm) -> np.ndarray:
    """Typical scale of a position step per unit step size: the geometric mean of sqrt(diag M^-1)."""
    diag = imm if imm.ndim == 2 else np.diagonal(imm, axis1=-2, axis2=-1)
    return np.exp(0.5 * np.mean(np.log(np.maximum(diag, 1e-300)), axis=-1))


class ChainGroup(NamedTuple):
    chains: np.ndarray  # chain indices
    device: object


def chain_groups(chains: int, cores: int | None = None) -> list[ChainGroup]:
    """How chains run: on CPU every chain is its own group (a one-lane compiled loop), and `cores`
    threads run the groups; on accelerators one group of contiguous chains per device, its chains
    the lanes of one vectorised loop.

    One lane per CPU group is the faster layout there (with XLA:CPU compiling the sampler's loop
    as one kernel, `core.xla_flags`, a lane costs the same or less alone as in a batch: every lane
    pays for every other lane's end-of-trajectory work) and it makes a chain's draws depend on its
    seed only, not on `cores` or the number of devices. On accelerators the draws depend on the
    group sizes too (XLA may round a vectorised ``log`` or ``exp`` differently from a scalar one).

    Over several processes (JAX's distributed runtime, `core.distributed`) the groups are this
    process's contiguous `distributed.block` of the chains, on its own devices; chain indices stay
    global, so keys, starts and the gathered draws do not depend on the layout. A process with no
    chain (fewer chains than processes) gets no group.
    """
    devices = distributed.local_devices()
    mine = distributed.block(chains)
    if _backend() == "cpu":
        return [ChainGroup(np.array([c]), devices[c % len(devices)]) for c in mine]
    n = min(len(devices), len(mine))
    bounds = mine.start + np.linspace(0, len(mine), n + 1).round().astype(int)
    return [ChainGroup(np.arange(bounds[i], bounds[i + 1]), devices[i]) for i in range(n)]


def _backend() -> str:
    import jax

    return jax.default_backend()


_POOLS: dict = {}


def _pool(workers: int):
    """A thread pool of `workers` threads, kept for the process (XLA releases the GIL while it runs)."""
    if workers not in _POOLS:
        from concurrent.futures import ThreadPoolExecutor

        _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bayeskit-chains")
    return _POOLS[workers]


class _Done:
    """A finished result with a future's `result()`."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def _on(device, tree):
    import jax

    return jax.device_put(tree, device)


def _host(tree):
    import jax

    return jax.tree.map(np.asarray, jax.device_get(tree))


def _concat_lanes(trees):
    """Pytrees with a leading lane axis, concatenated along it."""
    import jax

    return jax.tree.map(lambda *a: np.concatenate(a), *trees)


def _select_host(mask, new, old):
    import jax

    def one(n, o):
        n, o = np.asarray(n), np.asarray(o)
        return np.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(one, new, old)


class NUTS(_HMCFamily):
    """The No-U-Turn Sampler (multinomial, iterative) with a gradient-based warmup.

    Parameters
    ----------
    chains, warmup, draws
        Number of chains, warmup (adaptation) transitions and kept draws per chain.
    target_accept
        Target mean acceptance probability of the step-size adaptation (Stan: 0.8).
    max_tree_depth
        Maximum number of trajectory doublings (at most ``2**max_tree_depth`` gradient steps).
    metric
        ``"diag"`` (default): a diagonal metric from the variances of draws and gradients (nutpie's
        Fisher-divergence estimate); ``"low_rank"``: that diagonal corrected in the directions where
        draws and gradients show correlations (nutpie's low-rank modified metric; d x d work per
        step, for moderate dimensions); ``"dense"``: Stan's dense covariance of the draws;
        ``"diag_welford"``: Stan's diagonal (variances of the draws). See `adaptation`.
    init
        ``"uniform"`` (unconstrained values uniform in ``[-init_radius, init_radius]``),
        ``"median"``, ``"sample"`` (a prior draw), or a dict of constrained initial values.
    cores
        CPU threads to run chains on (default: every core this process may use), each chain its own
        compiled loop. The draws depend on the seed only, not on `cores` (see `chain_groups`).
    progress
        Show warmup and sampling progress bars.
    checkpoint, resume
        A file the run's whole state (chains, adaptation, keys, draws so far) is written to after
        every chunk, atomically; ``resume=True`` continues from it and gives the draws of the
        uninterrupted run (a missing file: starts afresh). Resuming a file of another run (settings,
        seed, model or data) is a `ConfigError`.
    """

    max_tree_depth: int = 10

    def __check_init__(self):
        check_int("max_tree_depth", self.max_tree_depth)

    def lane_kernel(self, logdensity_fn):
        from .kernels import nuts

        return nuts(logdensity_fn, self.max_tree_depth)


class HMC(_HMCFamily):
    """Hamiltonian Monte Carlo with about `num_steps` leapfrog steps per draw and the same warmup.

    Same settings as `NUTS`, with ``num_steps`` in place of ``max_tree_depth``. With ``jitter``
    (default) each draw takes a number of steps uniform on ``[ceil(num_steps/2), floor(3 num_steps/2)]``
    (independent of the state, so the chain stays exact): a fixed path length can resonate with
    the posterior's periods and mix very slowly.
    """

    num_steps: int = 16
    jitter: bool = True

    def __check_init__(self):
        check_int("num_steps", self.num_steps)
        check_bool("jitter", self.jitter)

    def lane_kernel(self, logdensity_fn):
        from .kernels import hmc

        return hmc(logdensity_fn, self.num_steps, self.jitter)


def _raw_keys(seq: np.random.SeedSequence, n: int) -> np.ndarray:
    """`n` raw JAX PRNG keys (uint32[2]) drawn from a NumPy SeedSequence."""
    return seq.generate_state(2 * n, dtype=np.uint32).reshape(n, 2)


def _explain_init_failure(model, spec, strategy, seq, bad_chains) -> str:
    """Say which sites make the log density (or its gradient) non-finite at a failed start."""
    import jax
    import jax.numpy as jnp
    from numpyro import handlers
    from numpyro.infer.util import potential_energy, unconstrain_fn


    kwargs = spec.kwargs()
    chain_key = _raw_keys(seq, max(bad_chains) + 1)[bad_chains[0]]
    seeded = handlers.substitute(handlers.seed(model.fn, chain_key), substitute_fn=strategy.make(strategy.values))
    tr = handlers.trace(seeded).get_trace(**kwargs)
    problems = []
    for name, site in tr.items():
        if site["type"] != "sample":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # NumPyro's out-of-support notice: we report it
            lp = float(jnp.sum(site["fn"].log_prob(site["value"])))
        if not math.isfinite(lp):
            kind = "observed" if site["is_observed"] else "latent"
            problems.append(f"{name!r} ({kind}) has log density {lp}")
    if not problems:
        latent = latent_values(tr)
        params = unconstrain_fn(model.fn, (), kwargs, latent)
        grads = jax.grad(lambda p: potential_energy(model.fn, (), kwargs, p))(params)
        problems = [f"{n!r} (latent) has a non-finite gradient" for n, g in grads.items() if not np.isfinite(g).all()]
    where = "; ".join(problems) or "the total log density is not finite"
    return (
        f"no initial point with a finite log density and gradient was found for chain(s) "
        f"{', '.join(map(str, bad_chains))} of model {model.name!r} after {INIT_TRIES} tries with "
        f"{strategy.describe()}. At the last try: {where}. Check that observed values lie in the "
        "support of their distributions, or pass init={...} with valid values."
    )
