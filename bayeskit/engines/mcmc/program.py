"""The compiled sampler: initialisation, and one loop body for warmup and sampling.

A `Program` is built once per (model function, static data, data shapes, engine
settings, start strategy, shards) and kept in the shared program cache (`core.cache`),
so a second fit of the same model with same-shaped data compiles nothing. The run
(`core.loop.run`) calls it in fixed-length chunks of steps: between chunks the host
updates the progress bar and keeps what is done, so an interrupted run loses nothing
already sampled.

Chains are batched with ``vmap``; with several devices the batch is split over them
with ``shard_map`` (chains run independently, so no cross-device traffic).
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
from .adaptation import AdaptationState, stan_schedule, window_adaptation

INIT_BATCH = 8  # start candidates tried at once per chain
INIT_TRIES = 104  # at most this many per chain (NumPyro tries 100)


class ChainState(NamedTuple):
    hmc: Any  # blackjax HMCState per chain: position (flat), logdensity, logdensity_grad
    adaptation: AdaptationState


@dataclasses.dataclass
class Program:
    """Compiled pieces for one model, data layout and engine."""

    start: Any  # (chain_keys, uniforms, arrays, init_values) -> (ChainState, found a valid start per chain)
    chunk: Any  # (ChainState, chain_keys, xs, arrays) -> (ChainState, outputs per chain and step)
    dim: int
    chunk_len: int
    stage: np.ndarray
    window_end: np.ndarray
    shards: int


def get_program(model, spec, engine, init_strategy, shards: int) -> Program:
    """The Program for this model, static data, array layout, engine settings, start and shards
    (built on first use; `core.cache` keeps it)."""
    # Array shapes are part of the key: the unconstrained layout (dim, unravel) depends on them.
    key = program_key("mcmc", model, static=spec.static, arrays=spec.arrays, engine=engine,
                      extra=(init_strategy.key, shards))
    return cached(key, lambda: _build(model, spec, engine, init_strategy, shards))


def _build(model, spec, engine, init_strategy, shards: int) -> Program:
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
        latent = latent_values(tr)
        return unconstrain_fn(fn, (), kwargs(arrays), latent)

    shapes = jax.eval_shape(unconstrained_sites, spec.arrays)
    prototype = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    flat_prototype, unravel = ravel_pytree(prototype)
    dim, prototype_dtype = flat_prototype.shape[0], flat_prototype.dtype

    def logdensity_fn(arrays):
        return lambda flat: -potential_energy(fn, (), kwargs(arrays), unravel(flat))

    kernel, info_stats = engine.kernel()
    adapt_init, adapt_update = window_adaptation(engine.dense_mass, engine.target_accept)
    candidates = _candidates_fn(fn, kwargs, init_strategy, prototype_dtype)

    def start(chain_keys, uniforms, arrays, init_values):
        """Per chain: the first of INIT_BATCH candidates with a finite log density and gradient.

        ``uniforms`` (chains, INIT_BATCH, dim) are U(0, 1) draws made on the host: the default
        strategy needs nothing else, so this program has no random-number code to compile (XLA:CPU
        takes seconds over threefry). Other strategies run the model with ``chain_keys``.
        The host calls this again for chains that found none (`found` False), up to INIT_TRIES
        candidates in all; a loop here would double the compile time.
        """
        import blackjax

        logdensity = logdensity_fn(arrays)
        value_and_grad = jax.value_and_grad(logdensity)

        def one(key, u):
            positions = candidates(key, u, arrays, init_values)
            values, grads = jax.vmap(value_and_grad)(positions)
            ok = jnp.isfinite(values) & jnp.all(jnp.isfinite(grads), axis=-1)
            pick = jnp.argmax(ok)
            hmc = blackjax.mcmc.hmc.HMCState(positions[pick], values[pick], grads[pick])
            step0 = jnp.asarray(engine.initial_step_size, prototype_dtype)
            return ChainState(hmc, adapt_init(dim, step0)), ok[pick]

        state, found = jax.vmap(one)(chain_keys, uniforms)
        # Strong types throughout, so the state chunk() returns has the avals it was compiled for.
        return jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), state), found

    def chunk(state, chain_keys, xs, arrays):
        logdensity = logdensity_fn(arrays)

        def one_chain_step(chain_state, key, i, stage, window_end):
            hmc, adapt = chain_state
            new_hmc, info = kernel(
                jax.random.fold_in(key, i), hmc, logdensity, adapt.step_size, adapt.inverse_mass_matrix
            )
            stats = info_stats(info)
            stats["step_size"] = adapt.step_size
            stats["lp"] = new_hmc.logdensity
            new_adapt = adapt_update(adapt, stage, window_end, new_hmc.position, info.acceptance_rate)
            values = constrain_fn(fn, (), kwargs(arrays), unravel(new_hmc.position), return_deterministic=True)
            return ChainState(new_hmc, new_adapt), (values, stats)

        def body(state, x):
            i, stage, window_end, active = x
            new, out = jax.vmap(one_chain_step, in_axes=(0, 0, None, None, None))(
                state, chain_keys, i, stage, window_end
            )
            # Padding steps past the end of the run leave the state as it was; their outputs are dropped.
            return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, state), out

        state, out = jax.lax.scan(body, state, xs)
        # (steps, chains, ...) -> (chains, steps, ...)
        return state, jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), out)

    if shards > 1:
        start_c, chunk_c = _sharded(start, chunk, shards)
    else:
        start_c, chunk_c = _jit(start), _jit(chunk)
    stage, window_end = stan_schedule(engine.warmup, engine.draws)
    return Program(
        start=start_c,
        chunk=chunk_c,
        dim=dim,
        chunk_len=chunk_length(engine.warmup + engine.draws),
        stage=stage,
        window_end=window_end,
        shards=shards,
    )


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
# generate more code per fusion. GPU keeps its defaults.
_CPU_COMPILE_OPTIONS = {"xla_llvm_disable_expensive_passes": True, "xla_cpu_use_fusion_emitters": False}


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


def _sharded(start, chunk, shards: int):
    """Split the chain axis over `shards` devices; data and the step schedule are replicated."""
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()[:shards]), ("chain",))
    C, R = P("chain"), P()

    def smap(f, in_specs):
        # Each device runs its own chains; nothing is replicated that needs checking, and BlackJAX's
        # kernels mix device-varying and replicated values in cond branches, which the check rejects.
        return _jit(jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=C, check_vma=False))

    return smap(start, (C, C, R, R)), smap(chunk, (C, C, R, R))


def shard_count(chains: int) -> int:
    """The largest number of visible devices that divides `chains` evenly."""
    n = jax.device_count()
    return max(d for d in range(1, min(n, chains) + 1) if chains % d == 0)
