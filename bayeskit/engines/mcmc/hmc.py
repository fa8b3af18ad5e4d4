"""`bk.NUTS` and `bk.HMC`: Hamiltonian Monte Carlo on NumPyro models through BlackJAX.

The model's log density is taken in unconstrained space (NumPyro's transforms and
Jacobians), flattened to one vector per chain. Each chain adapts its own step size
and (diagonal or dense) inverse mass matrix with Stan's windowed scheme, then samples
with the adapted values. Draws are returned in constrained space together with the
model's deterministic sites and the sampler's statistics.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from ...core import seeds
from ...core.checks import check_bool, check_choice, check_int, check_positive, check_probability
from ...core.engine import Engine
from ...core.errors import ConfigError, InitializationError, ModelError
from ...core.loop import Progress, run  # noqa: F401 (Progress: the bar tests patch to interrupt a run)
from ...core.model import NumPyroModel, NumPyroProgram, latent_values
from ...core.module import Module
from ...core.posterior import DrawsPosterior

INIT_KINDS = ("uniform", "median", "sample")


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
    dense_mass: bool = False
    init: str | Mapping = "uniform"
    init_radius: float = 2.0
    initial_step_size: float = 1.0
    progress: bool = True

    capability: ClassVar = NumPyroProgram

    def __check_init__(self):
        check_int("chains", self.chains)
        check_int("draws", self.draws)
        check_int("warmup", self.warmup, minimum=0)
        check_probability("target_accept", self.target_accept)
        check_bool("dense_mass", self.dense_mass)
        if not isinstance(self.init, Mapping) and self.init not in INIT_KINDS:
            # check_choice's wording, plus the dict form it cannot know about
            raise ConfigError(
                f"`init` must be one of {', '.join(map(repr, INIT_KINDS))} or a dict of initial values, "
                f"got {self.init!r}"
            )
        check_positive("init_radius", self.init_radius)
        check_positive("initial_step_size", self.initial_step_size)
        check_bool("progress", self.progress)

    # -- what subclasses provide -------------------------------------------------------------
    def kernel(self):
        """Return ``(step, stats)``: ``step(key, state, logdensity, step_size, inverse_mass_matrix)``
        and ``stats(info) -> dict`` of per-draw statistics."""
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
        from .program import get_program, shard_count

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
        program = get_program(model, spec, self, strategy, shard_count(self.chains))

        # Per-chain keys and start candidates come from the seed through NumPy's SeedSequence:
        # pure in the seed, and no random-number program to compile before sampling starts.
        init_seq, run_seq = seeds.seed_sequence(key).spawn(2)
        state = self._start(program, init_seq, model, spec, strategy)
        return self._run(program, state, _raw_keys(run_seq, self.chains), model, spec)

    def _start(self, program, seq, model, spec, strategy):
        """Starting states; chains without a valid candidate retry with fresh draws (same program)."""
        import jax

        from .program import INIT_BATCH, INIT_TRIES

        def attempt(seq):
            rng = np.random.default_rng(seq)
            uniforms = rng.random((self.chains, INIT_BATCH, program.dim))
            return program.start(_raw_keys(seq, self.chains), uniforms, spec.arrays, strategy.values)

        retries = seq.spawn(INIT_TRIES // INIT_BATCH)
        state, found = attempt(retries[0])
        found = np.asarray(found)
        for retry_seq in retries[1:]:
            if found.all():
                return state
            retry, retry_found = attempt(retry_seq)
            take = ~found & np.asarray(retry_found)
            state = jax.tree.map(
                lambda new, old, take=take: np.where(take.reshape((-1,) + (1,) * (np.ndim(old) - 1)), new, old),
                retry,
                state,
            )
            found = found | take
        if not found.all():
            bad = np.flatnonzero(~found)
            raise InitializationError(_explain_init_failure(model, spec, strategy, retries[-1], bad))
        return state

    def _run(self, program, state, chain_keys, model, spec) -> DrawsPosterior:
        """Warmup then sampling, one compiled chunk of ``program.chunk_len`` steps per call of
        ``advance``; each chunk's record is the kept (post-warmup) draws and statistics, or None."""
        import jax

        total, L = self.warmup + self.draws, program.chunk_len

        def advance(state, start, stop):
            idx = np.arange(start, start + L)  # the compiled chunk has L steps: pad the last one
            active = idx < stop
            safe = np.minimum(idx, total - 1)
            xs = (idx.astype(np.int32), program.stage[safe], program.window_end[safe] & active, active)
            state, out = program.chunk(state, chain_keys, xs, spec.arrays)
            out = jax.device_get(out)  # waits for the chunk: the bar shows steps done, not dispatched
            keep = active & (idx >= self.warmup)
            return state, (jax.tree.map(lambda a: a[:, keep], out) if keep.any() else None)

        def postfix(records, done):
            if done <= self.warmup:
                return f"{self.chains} chains"
            divergences = sum(int(np.sum(r[1]["diverging"])) for r in records if r is not None)
            return f"{self.chains} chains, {divergences} divergences"

        def partial(state, records, done):
            kept = [r for r in records if r is not None]
            return self._posterior(kept, model, spec) if kept else None

        result = run(
            advance, state, total=total, chunk=L, progress=self.progress, desc=model.name,
            phases=[("warmup", self.warmup), ("sampling", self.draws)], postfix=postfix, partial=partial,
        )
        kept = [r for r in result.records if r is not None]
        if not kept:  # interrupted during warmup: there are no draws to return
            raise KeyboardInterrupt
        return self._posterior(kept, model, spec)

    def _posterior(self, kept, model, spec) -> DrawsPosterior:
        values = {k: np.concatenate([p[0][k] for p in kept], axis=1) for k in kept[0][0]}
        stats = {k: np.concatenate([p[1][k] for p in kept], axis=1) for k in kept[0][1]}
        return DrawsPosterior.from_spec(values, spec, model=model, engine=self, sample_stats=stats, markov=True)


class NUTS(_HMCFamily):
    """The No-U-Turn sampler (BlackJAX's multinomial, iterative NUTS) with Stan's warmup.

    Parameters
    ----------
    chains, warmup, draws
        Number of chains, warmup (adaptation) steps and kept draws per chain.
    target_accept
        Target mean acceptance probability of the step-size adaptation (Stan: 0.8).
    max_tree_depth
        Maximum number of trajectory doublings (at most ``2**max_tree_depth`` gradient steps).
    dense_mass
        Adapt a dense inverse mass matrix instead of a diagonal one.
    init
        ``"uniform"`` (unconstrained values uniform in ``[-init_radius, init_radius]``),
        ``"median"``, ``"sample"`` (a prior draw), or a dict of constrained initial values.
    progress
        Show warmup and sampling progress bars.
    """

    max_tree_depth: int = 10

    def __check_init__(self):
        check_int("max_tree_depth", self.max_tree_depth)

    def kernel(self):
        import blackjax

        base = blackjax.nuts.build_kernel()
        depth = self.max_tree_depth

        def step(key, state, logdensity, step_size, inverse_mass_matrix):
            return base(key, state, logdensity, step_size, inverse_mass_matrix, max_num_doublings=depth)

        def stats(info):
            return {**_transition_stats(info), "tree_depth": info.num_trajectory_expansions}

        return step, stats


class HMC(_HMCFamily):
    """Hamiltonian Monte Carlo with about `num_steps` leapfrog steps per draw and Stan's warmup.

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

    def kernel(self):
        import blackjax
        import jax

        base = blackjax.hmc.build_kernel()
        n, jitter = self.num_steps, self.jitter
        low, high = (n + 1) // 2, (3 * n) // 2

        def step(key, state, logdensity, step_size, inverse_mass_matrix):
            if jitter:
                key, key_steps = jax.random.split(key)
                steps = jax.random.randint(key_steps, (), low, high + 1)
            else:
                steps = n
            return base(key, state, logdensity, step_size, inverse_mass_matrix, num_integration_steps=steps)

        return step, _transition_stats


def _transition_stats(info) -> dict:
    """Per-draw statistics every HMC-family transition reports, under ArviZ's names."""
    return {
        "diverging": info.is_divergent,
        "energy": info.energy,
        "acceptance_rate": info.acceptance_rate,
        "n_steps": info.num_integration_steps,
    }


def _raw_keys(seq: np.random.SeedSequence, n: int) -> np.ndarray:
    """`n` raw JAX PRNG keys (uint32[2]) drawn from a NumPy SeedSequence."""
    return seq.generate_state(2 * n, dtype=np.uint32).reshape(n, 2)


def _explain_init_failure(model, spec, strategy, seq, bad_chains) -> str:
    """Say which sites make the log density (or its gradient) non-finite at a failed start."""
    import jax
    import jax.numpy as jnp
    from numpyro import handlers
    from numpyro.infer.util import potential_energy, unconstrain_fn

    from .program import INIT_TRIES

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
