"""The compiled sampler: starts, and one loop over leapfrog steps in which no chain waits.

A `Program` is built once per (model function, static data, data shapes, engine settings, start
strategy) and kept in the shared program cache (`core.cache`), so a second fit of the same model
with same-shaped data compiles nothing.

Chains run in **groups**. A group is a batch of chains ("lanes") advanced together by one loop
whose iteration is one leapfrog step of every lane: a lane whose trajectory ends records its draw,
updates its adaptation and begins its next transition while the others go on (`kernels`), so a
batch never waits for its longest trajectory, and the loop's fixed cost per iteration is shared
by the lanes. Groups are independent programs: on CPU they run on their own threads (one per
usable core), on accelerators one per device. Every chain's random numbers come from its own key
and transition index, so the draws do not depend on how chains are grouped.

The run (`core.loop.run`) calls a group's ``chunk`` for a fixed number of transitions at a time:
between chunks the host updates the progress bar, checks for stuck chains and keeps what is done,
so an interrupted run loses nothing already sampled.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ...core.cache import cached, program_key
from ...core.loop import chunk_length
from ...core.model import latent_values
from . import adaptation
from .hmc import INIT_BATCH
from .kernels import kinetic, leapfrog, sample_momentum, transition_seed

# Host round trips per run: each costs ~1 ms (dispatch, transfers, the stuck-chain check), as much
# as a chunk of a small model computes, so fewer than `core.loop`'s default; still a bar step of 5%.
CHUNKS = 20
STEP_SEARCH_LIMIT = 60  # doublings or halvings of the step-size search (2**60: any scale)


class Lanes(NamedTuple):
    """A group of chains in the middle of the run (every field has a leading lane axis)."""

    chain: tuple  # (position, logdensity, gradient): the last draw
    adapt: adaptation.AdaptationState
    tree: Any  # the transition in progress
    k: jax.Array  # its index (warmup and sampling counted together)
    key: jax.Array  # the chain's key (uint32[2])
    search: jax.Array  # find a step size for the metric before this transition (Stan's heuristic)


@dataclasses.dataclass
class Program:
    """Compiled pieces for one model, data layout and engine."""

    start: Any  # (chain_keys, uniforms, arrays, init_values) -> ((pos, logp, grad) per chain, found)
    prime: Any  # (chain, keys, k, arrays) -> Lanes: adaptation set up, step size found, first tree begun
    chunk: Any  # (Lanes, k0, k_stop, schedule, arrays) -> (Lanes, packed outputs per lane and transition)
    dim: int
    layout: dict  # names, shapes and dtypes of the packed outputs (see `unpack`)
    chunk_len: int
    schedule: tuple  # adaptation.Schedule as arrays
    _compiled: dict = dataclasses.field(default_factory=dict)

    def compiled_chunk(self, args):
        """`chunk` compiled ahead of time for these arguments' shapes and device (kept)."""
        lanes = args[0]
        key = (lanes.k.shape[0], tuple(lanes.k.devices()))
        if key not in self._compiled:
            self._compiled[key] = self.chunk.lower(*args).compile()
        return self._compiled[key]


def get_program(model, spec, engine, init_strategy) -> Program:
    """The Program for this model, static data, array layout, engine settings and start
    (built on first use; `core.cache` keeps it)."""
    # Array shapes are part of the key: the unconstrained layout (dim, unravel) depends on them.
    key = program_key("mcmc", model, static=spec.static, arrays=spec.arrays, engine=engine,
                      extra=(init_strategy.key,))
    return cached(key, lambda: _build(model, spec, engine, init_strategy))


def _build(model, spec, engine, init_strategy) -> Program:
    from numpyro.infer.util import constrain_fn, potential_energy, unconstrain_fn

    static = dict(spec.static)
    fn = model.fn

    def kwargs(arrays):
        return {**static, **arrays}

    # The unconstrained layout (which may differ from the constrained one) from an abstract run.
    def unconstrained_sites(arrays):
        from numpyro import handlers
        from numpyro.infer import init_to_uniform

        # init_to_uniform supplies values where a prior cannot be sampled (ImproperUniform)
        model = handlers.substitute(handlers.seed(fn, 0), substitute_fn=init_to_uniform())
        tr = handlers.trace(model).get_trace(**kwargs(arrays))
        return unconstrain_fn(fn, (), kwargs(arrays), latent_values(tr))

    from ...core.xla_flags import warn_if_inactive

    warn_if_inactive()
    shapes = jax.eval_shape(unconstrained_sites, spec.arrays)
    prototype = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    flat_prototype, unravel = ravel_pytree(prototype)
    dim, dtype = flat_prototype.shape[0], flat_prototype.dtype

    def logdensity_fn(arrays):
        return lambda flat: -potential_energy(fn, (), kwargs(arrays), unravel(flat))

    metric, target = engine.metric, engine.target_accept
    candidates = _candidates_fn(fn, kwargs, init_strategy, dtype)

    def start(chain_keys, uniforms, arrays, init_values, best):
        """Per chain: the first of INIT_BATCH candidates with a finite log density and gradient
        (with `best`: the one of highest log density, for restarting a stuck chain away from
        where the log density is explosive).

        ``uniforms`` (chains, INIT_BATCH, dim) are U(0, 1) draws made on the host: the default
        strategy needs nothing else, so this program has no random-number code to compile (XLA:CPU
        takes seconds over threefry). Other strategies run the model with ``chain_keys``.
        The host calls this again for chains that found none (`found` False), up to INIT_TRIES
        candidates in all; a loop here would double the compile time.
        """
        value_and_grad = jax.value_and_grad(logdensity_fn(arrays))

        def one(key, u):
            positions = candidates(key, u, arrays, init_values)
            values, grads = jax.vmap(value_and_grad)(positions)
            ok = jnp.isfinite(values) & jnp.all(jnp.isfinite(grads), axis=-1)
            pick = jnp.where(best, jnp.argmax(jnp.where(ok, values, -jnp.inf)), jnp.argmax(ok))
            return (positions[pick], values[pick], grads[pick]), ok[pick]

        return jax.vmap(one)(chain_keys, uniforms)

    def prime(chain, keys, k, arrays):
        """Lanes at transition `k` from draws `chain`: a fresh adaptation and the first trajectory
        begun; the first chunk finds the step size (`chunk` holds the one copy of that search,
        as XLA compiles every call of the model's gradient separately)."""
        kernel = engine.lane_kernel(logdensity_fn(arrays))

        def one(chain, key, k):
            adapt = adaptation.init(metric, chain[2], jnp.asarray(engine.initial_step_size, dtype))
            if engine.warmup == 0:  # no adaptation: the unit metric and the given step size
                adapt = adapt._replace(inverse_mass_matrix=adaptation.initial_inverse_mass_matrix(
                    "dense" if metric in adaptation.DENSE_METRICS else "diag_welford", chain[2]))
            tree = kernel.begin(transition_seed(key, k), chain, adapt.step_size, adapt.inverse_mass_matrix)
            return Lanes(chain, adapt, tree, k, key, jnp.asarray(engine.warmup > 0))

        return jax.vmap(one)(chain, keys, k)

    def chunk(lanes: Lanes, k0, k_stop, sched, arrays):
        logdensity = logdensity_fn(arrays)
        value_and_grad = jax.value_and_grad(logdensity)
        kernel = engine.lane_kernel(logdensity)
        size = lanes.k.shape[0]
        L = chunk_len
        stat_shapes = jax.eval_shape(lambda t: kernel.finish(t)[1], jax.tree.map(lambda a: a[0], lanes.tree))
        stat_dtypes = {n: sh.dtype for n, sh in stat_shapes.items()} | {"step_size": dtype, "lp": dtype}
        # one buffer for the draws and one for all statistics (as floats): two scatters per transition
        buffers = (jnp.zeros((size, L, dim), dtype), jnp.zeros((size, L, len(stat_dtypes)), dtype))
        rows = jnp.arange(size)

        def running(lanes):
            return lanes.k < k_stop

        def inner_cond(carry):
            lanes, _ = carry
            r = running(lanes)
            return jnp.any(r) & ~jnp.any(r & lanes.tree.done)

        def inner_body(carry):
            lanes, buffers = carry
            args = (lanes.tree, lanes.adapt.step_size, lanes.adapt.inverse_mass_matrix)
            if size == 1:
                # one chain (CPU): no vmap, so the kernel's conds stay branches, and no select, as the
                # loop only runs while the chain runs and is not done
                stepped = jax.tree.map(lambda a: a[None], kernel.step(*jax.tree.map(lambda a: a[0], args)))
                return lanes._replace(tree=stepped), buffers
            stepped = jax.vmap(kernel.step)(*args)
            move = running(lanes) & ~lanes.tree.done
            return lanes._replace(tree=_select(move, stepped, lanes.tree)), buffers

        def search(lanes):
            now = lanes.search & running(lanes)
            seeds = jax.vmap(functools.partial(transition_seed, stream=1))(lanes.key, lanes.k)
            eps = jax.vmap(functools.partial(find_step_size, value_and_grad))(
                seeds, lanes.chain, lanes.adapt.inverse_mass_matrix, lanes.adapt.step_size
            )
            adapt = _select(now, jax.vmap(adaptation.restart)(lanes.adapt, eps), lanes.adapt)
            return lanes._replace(adapt=adapt, search=lanes.search & ~now)

        def outer_body(carry):
            lanes, buffers = carry
            # a new metric (or a fresh chain): the step size found before the trajectory that uses
            # it; `begin` did not depend on it
            lanes = jax.lax.cond(jnp.any(lanes.search & running(lanes)), search, lambda x: x, lanes)
            lanes, (positions, stats_buf) = jax.lax.while_loop(inner_cond, inner_body, (lanes, buffers))
            ended = running(lanes) & lanes.tree.done
            chain, stats = jax.vmap(kernel.finish)(lanes.tree)
            chain = _select(ended, chain, lanes.chain)
            stats = stats | {"step_size": lanes.adapt.step_size, "lp": chain[1]}
            slot = jnp.where(ended, lanes.k - k0, L)  # L: out of range, dropped
            positions = positions.at[rows, slot].set(chain[0], mode="drop")
            packed = jnp.stack([stats[n].astype(dtype) for n in stat_dtypes], axis=-1)
            stats_buf = stats_buf.at[rows, slot].set(packed, mode="drop")

            at = jnp.minimum(lanes.k, sched[0].shape[0] - 1)
            adapting = ended & sched[0][at]

            def adapt_lanes(adapt):
                # only warmup transitions get here (a cond, not a select: sampling skips it all)
                adapt, switched = jax.vmap(functools.partial(adaptation.update, metric, target))(
                    adapt, stats["acceptance_rate"], chain[0], chain[2], tuple(s[at] for s in sched)
                )
                switched = switched & ended
                switch = jax.vmap(functools.partial(adaptation.switch_metric, metric))
                adapt = jax.lax.cond(jnp.any(switched), lambda a: _select(switched, switch(a), a), lambda a: a, adapt)
                return adapt, switched

            adapt, switched = jax.lax.cond(
                jnp.any(adapting), adapt_lanes, lambda a: (a, jnp.zeros_like(ended)), lanes.adapt
            )
            seed_tree = jax.vmap(transition_seed)(lanes.key, lanes.k + 1)
            adapt = _select(ended, adapt, lanes.adapt)
            tree = jax.vmap(kernel.begin)(seed_tree, chain, adapt.step_size, adapt.inverse_mass_matrix)
            lanes = Lanes(chain, adapt, _select(ended, tree, lanes.tree), lanes.k + ended, lanes.key,
                          lanes.search | (switched & ended))
            return lanes, (positions, stats_buf)

        lanes, (positions, stats) = jax.lax.while_loop(
            lambda c: jnp.any(running(c[0])), outer_body, (lanes, buffers)
        )
        constrain = functools.partial(constrain_fn, fn, (), kwargs(arrays), return_deterministic=True)
        site_shapes = jax.eval_shape(lambda x: constrain(unravel(x)), positions[0, 0])
        layout["values"] = [(n, sh.shape, sh.dtype) for n, sh in site_shapes.items()]
        layout["stats"] = list(stat_dtypes.items())
        # every site in one array (and the statistics in another): a chunk's results reach the host
        # in two transfers per group, not one per site and statistic
        names = [n for n, _, _ in layout["values"]]
        values = jax.vmap(jax.vmap(lambda x: _flatten(constrain(unravel(x)), names, dtype)))(positions)
        return lanes, (values, stats)

    layout: dict = {}  # filled when `chunk` is traced: how its packed results unpack
    chunk_len = chunk_length(engine.warmup + engine.draws, CHUNKS)
    sched = adaptation.schedule(metric, engine.warmup, engine.draws)
    return Program(
        start=_jit(start),
        prime=_jit(prime),
        chunk=_jit(chunk),
        dim=dim,
        layout=layout,
        chunk_len=chunk_len,
        schedule=tuple(sched),
    )


def find_step_size(value_and_grad, seed, chain, imm, step_size):
    """Stan's heuristic: double or halve the step size until one leapfrog step's acceptance
    probability crosses 0.8 (a fresh momentum each try)."""
    q, logp, g = chain
    log_target = jnp.log(0.8)

    def log_accept(eps, i):
        p = sample_momentum(seed, imm, q.dtype, offset=4 * q.shape[0] * i)
        q1, p1, logp1, _ = leapfrog(value_and_grad, q, p, g, eps, imm)
        delta = (-logp + kinetic(imm, p)) - (-logp1 + kinetic(imm, p1))
        return jnp.where(jnp.isnan(delta), -jnp.inf, delta)

    up = log_accept(step_size, 0) > log_target

    def cond(carry):
        i, _, crossed = carry
        return (i < STEP_SEARCH_LIMIT) & ~crossed

    def body(carry):
        i, eps, _ = carry
        eps = jnp.where(up, 2.0 * eps, 0.5 * eps)
        good = log_accept(eps, i + 1) > log_target
        return i + 1, eps, jnp.where(up, ~good, good)

    _, eps, _ = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), step_size, jnp.zeros((), bool)))
    return eps


def unpack(layout, values, stats):
    """Host side of a chunk's packed outputs ``(lanes, transitions, width)``: site and statistic
    arrays ``(lanes, transitions, *shape)`` in their own dtypes."""
    lead = values.shape[:2]
    sites, at = {}, 0
    for name, shape, dtype in layout["values"]:
        size = int(np.prod(shape, dtype=int))
        sites[name] = _cast(values[..., at:at + size], dtype).reshape(lead + tuple(shape))
        at += size
    return sites, {n: _cast(stats[..., i], t) for i, (n, t) in enumerate(layout["stats"])}


def _flatten(sites: dict, names, dtype):
    return jnp.concatenate([jnp.ravel(sites[n]).astype(dtype) for n in names]) if names else jnp.zeros(0, dtype)


def _cast(column, dtype):
    if dtype == np.bool_:
        return column > 0.5
    if np.issubdtype(dtype, np.integer):
        return np.round(column).astype(dtype)
    return column.astype(dtype)


def _select(pred, new, old):
    """Per lane: `new` where `pred` (shape (lanes,)), else `old`."""
    def one(n, o):
        return jnp.where(pred.reshape(pred.shape + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(one, new, old)


def _candidates_fn(fn, kwargs, init_strategy, dtype):
    """``candidates(key, uniforms, arrays, init_values) -> (INIT_BATCH, dim)`` flat unconstrained starts."""
    from numpyro import handlers
    from numpyro.infer.util import unconstrain_fn

    if init_strategy.kind == "uniform":  # no model run needed
        r = init_strategy.radius
        return lambda key, u, arrays, init_values: (2 * u - 1).astype(dtype) * r

    def one(key, arrays, init_values):
        model = handlers.substitute(handlers.seed(fn, key), substitute_fn=init_strategy.make(init_values))
        tr = handlers.trace(model).get_trace(**kwargs(arrays))
        latent = latent_values(tr)
        return ravel_pytree(unconstrain_fn(fn, (), kwargs(arrays), latent))[0].astype(dtype)

    def candidates(key, u, arrays, init_values):
        keys = jax.random.split(key, INIT_BATCH)
        return jax.vmap(lambda k: one(k, arrays, init_values))(keys)

    return candidates


# XLA:CPU options that cut the compile time of a NUTS program without slowing sampling
# (measured on garch11 and kidiq, 3 runs each: first fit 1 s faster, sampling unchanged).
# LLVM's expensive passes buy little for loop-bound samplers; the newer fusion emitters
# generate more code per fusion. YNNPACK reduction kernels (XLA's default for large sums) cannot
# sit inside a loop compiled as one kernel (`core.xla_flags`): without them the earnings model's
# loop is one kernel and its time per gradient halves. The memory-ordered scheduler keeps batched
# LAPACK kernels from running at once and deadlocking XLA's thread pool (`core.xla_flags`), also
# when JAX started before bayeskit could set it for every program. GPU keeps its defaults.
_CPU_COMPILE_OPTIONS = {"xla_llvm_disable_expensive_passes": True, "xla_cpu_use_fusion_emitters": False,
                        "xla_cpu_experimental_ynn_fusion_type": "",
                        "xla_cpu_enable_concurrency_optimized_scheduler": False}


@functools.cache
def _compiler_options() -> tuple:
    if jax.default_backend() != "cpu":
        return ()
    usable = []
    for name, value in _CPU_COMPILE_OPTIONS.items():
        try:  # XLA renames and drops options between releases: keep only those this one knows
            jax.jit(lambda x: x, compiler_options={name: value}).lower(1.0).compile()
        except Exception:  # noqa: BLE001 (XLA raises its own error types)
            continue
        usable.append((name, value))
    return tuple(usable)


def _jit(f, **kwargs):
    return jax.jit(f, compiler_options=dict(_compiler_options()), **kwargs)
