"""`bk.MartingalePosterior`: posteriors from predictives by predictive resampling (Fong, Holmes &
Walker, JRSS-B 2023).

Given the observed y_{1:n}, draw the unseen future Y_{n+1}, …, Y_{n+N} one step at a time from the
predictive rule (Y_{i+1} ~ P_i, then update to P_{i+1}), and evaluate the functional θ = f(P_{n+N}).
Repeated, the θ's are draws from the martingale posterior; for a c.i.d. rule P_i converges, and
for a conjugate rule the law of θ is the Bayesian posterior's. One program does it: a scan over
the horizon, vmapped over a chunk of draws, compiled once (cached across fits).

The horizon is finite, so the draws miss the variance of θ_∞ − θ_N. Their functional is also
taken half-way, and because the martingale's increments shrink like 1/i², Var(θ_N − θ_{N/2})
estimates that missing variance: its ratio to Var(θ_N) is reported (``post.truncation``), and
the fit warns when it exceeds `TRUNCATION_LIMIT`.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ...core import cache, loop
from ...core.checks import check_bool, check_int
from ...core.engine import Engine
from ...core.errors import ConfigError, ModelError
from ...core.model import PredictiveRule
from . import functionals as fn
from .posterior import MartingaleDraws

#: Largest fraction of the posterior variance a finite horizon may miss before the fit warns.
TRUNCATION_LIMIT = 0.05
#: Bytes of predictive states a chunk of draws may hold at once.
CHUNK_BYTES = 2**27
#: Draws per compiled chunk at most (so the program does not depend on `draws`: a refit with other
#: `draws` compiles nothing).
CHUNK_DRAWS = 250


def _as_dict(value, functional) -> dict:
    if isinstance(value, dict):
        return value
    return {fn.name_of(functional): value}


class MartingalePosterior(Engine):
    """Predictive resampling of a c.i.d. predictive rule (a `bk.martingale` rule as the model).

    ``functional``: what the posterior is of, a function of the limiting predictive P_N returning
    an array or a dict of arrays (`bk.martingale.mean`, `Quantile(q)`, `Density(at)`, `CDF(at)`,
    `coefficients`, or your own). ``horizon``: forward draws N per posterior draw (None: 50 n, at
    least 1,000 and at most 20,000: the draws then miss about n / (n + N) of the variance).
    ``draws``: posterior draws. ``chunk``: draws per compiled batch (None: as many as 128 MiB of
    predictive states allow, at most `CHUNK_DRAWS`; the last batch is padded, so ``draws`` changes
    no compiled program).
    """

    functional: object = fn.mean
    horizon: int | None = None
    draws: int = 1000
    chunk: int | None = None
    progress: bool = True

    capability: ClassVar = PredictiveRule
    runtime_fields: ClassVar[tuple[str, ...]] = ("progress", "draws")

    def __check_init__(self):
        if not callable(self.functional):
            raise ConfigError(f"`functional` must be a function of the predictive P_N (such as bk.martingale.mean), "
                              f"got {type(self.functional).__name__}")
        check_int("horizon", self.horizon, 2, why="forward draws per posterior draw", optional=True)
        check_int("draws", self.draws)
        check_int("chunk", self.chunk, optional=True)
        check_bool("progress", self.progress)

    def horizon_for(self, n: int) -> int:
        return self.horizon if self.horizon is not None else int(min(max(1000, 50 * n), 20_000))

    def fit(self, model, data, key) -> MartingaleDraws:
        rule = model
        check = getattr(rule, "check_data", None)
        if check is not None:  # named errors for bad data before anything reads it
            check(data)
        n = _observations(data)
        horizon = self.horizon_for(n)
        state = rule.condition(data, horizon)
        self._check_functional(rule, state)
        chunk = self.chunk or _chunk_size(state, self.draws)
        program = cache.cached(
            cache.program_key("martingale", type(rule), engine=self,
                              extra=(jax.tree_util.tree_structure(rule), _signature(state), horizon, chunk)),
            lambda: _build(self.functional, horizon),
        )
        key_draws = jax.random.fold_in(key, 0)

        def advance(_, first, last):
            index = jnp.arange(first, first + chunk)  # a whole chunk every time: one compiled shape
            keys = jax.vmap(lambda i: jax.random.fold_in(key_draws, i))(index)
            end, mid = program(keys, rule, state)
            take = last - first
            cut = lambda t: jax.tree_util.tree_map(lambda a: np.asarray(a)[:take], t)  # noqa: E731
            return None, (cut(end), cut(mid))

        result = loop.run(advance, None, total=self.draws, chunk=chunk, progress=self.progress,
                          desc="martingale posterior", what="draws",
                          partial=lambda state_, records, done: self._posterior(rule, state, records, horizon))
        return self._posterior(rule, state, result.records, horizon)

    def _check_functional(self, rule, state) -> None:
        """Evaluate the functional once on P_n (abstractly: nothing runs), so one the predictive cannot
        answer fails here with its name rather than inside the compiled run."""
        try:
            jax.eval_shape(lambda s: self.functional(rule.distribution(s)), state)
        except ModelError:
            raise
        except Exception as exc:  # a method the predictive lacks, or one NumPyro cannot compute here
            raise ModelError(f"functional {fn.name_of(self.functional)!r} cannot be evaluated on the predictive of "
                             f"{type(rule).__name__} ({type(rule.distribution(state)).__name__}): "
                             f"{type(exc).__name__}: {exc}") from exc

    def _posterior(self, rule, state, records, horizon):
        end = [_as_dict(e, self.functional) for e, _ in records]
        mid = [_as_dict(m, self.functional) for _, m in records]
        draws = {k: np.concatenate([e[k] for e in end])[None] for k in end[0]}
        halves = {k: np.concatenate([m[k] for m in mid])[None] for k in mid[0]}
        return MartingaleDraws(draws, halves, rule=rule, state=state, horizon=horizon, engine=self)


def _observations(data) -> int:
    y = data.get("y") if isinstance(data, dict) else None
    return int(np.shape(y)[0]) if y is not None and np.ndim(y) > 0 else 1


def _signature(state) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(state)
    return (treedef, tuple((np.shape(x), str(jnp.asarray(x).dtype)) for x in leaves))


def _chunk_size(state, draws: int) -> int:
    size = sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(state))
    return int(max(1, min(CHUNK_BYTES // max(size, 1), CHUNK_DRAWS)))


def _build(functional, horizon: int):
    half = horizon // 2

    def one(key, rule, state):
        key_start, key_first, key_second = jax.random.split(key, 3)
        state = rule.start(state, key_start)

        def step(s, k):
            return rule.forward(s, k), None

        state, _ = jax.lax.scan(step, state, jax.random.split(key_first, half))
        mid = functional(rule.distribution(state))
        state, _ = jax.lax.scan(step, state, jax.random.split(key_second, horizon - half))
        return functional(rule.distribution(state)), mid

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))
