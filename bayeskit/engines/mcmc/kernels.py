"""HMC transitions cut into leapfrog steps: NUTS (multinomial, iterative) and fixed-length HMC.

A transition is three pure per-chain functions, so a driver can run many chains in one loop
over leapfrog steps in which every chain is always busy (`program`): a chain whose trajectory
ends records its draw and starts its next transition while the others go on.

* ``begin(seed, state, step_size, imm) -> tree``: draw the momentum, set up the trajectory
  (``seed``: uint32[2], one per chain and transition, from `transition_seed`);
* ``step(tree, step_size, imm) -> tree``: one leapfrog step and its bookkeeping;
* ``finish(tree) -> (state, stats)``: the new state and the transition's statistics
  (``tree.done`` says when).

NUTS is BlackJAX's (and Stan's, NumPyro's) algorithm: the trajectory doubles in a random
direction; inside a new subtree states are sampled multinomially (progressively, in the weights
``exp(-H)``); a finished subtree replaces the proposal with probability ``min(1, W_sub / W)``
(biased progressive sampling); the trajectory stops at a U-turn of the whole tree or of any
balanced block of a subtree (Betancourt's criterion on momentum sums, the ends counted half as in
NumPyro and BlackJAX), at a divergence, or after ``max_depth`` doublings. As in Stan (since 2.23),
every merge of two spans is also checked between the halves: the left span with the right one's
first point, and the left one's last point with the right span. Without those checks a nearly
periodic orbit can hide its U-turns from the ends of every span (a 10-d standard normal at step
size 0.8727: 30 steps per transition and 8% at the maximum depth for BlackJAX and NumPyro; 4.8
and none with them; `tests/test_nuts.py`). Only the layout for XLA is ours, and it is what the
time per gradient is made of on small models (issue 16):

* one step per loop iteration, no nested loops; the merge of a finished subtree under a ``cond``
  (a select when chains are lanes of a ``vmap``);
* the block U-turn checks as one vector operation over ``max_depth`` checkpoint slots (slot ``k``
  holds the momentum and running momentum sum where the current block of ``2**k`` leaves began);
* random numbers from a counter hash (Murmur3's 32-bit finaliser over the chain's key, the
  transition's index and a counter) rather than threefry: a few integer operations per number,
  which XLA:CPU compiles in a fraction of threefry's time (threefry made up a second of each
  sampler's compile) and runs in nanoseconds. Uniforms carry 53 bits in float64 (24 in float32);
  normals come from Box-Muller.

A chain's state is the tuple (position, log density, gradient), as BlackJAX's `HMCState`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

DIVERGENCE_THRESHOLD = 1000.0  # energy error that makes a trajectory divergent (Stan, BlackJAX)


class LaneKernel(NamedTuple):
    begin: Any
    step: Any
    finish: Any


# --------------------------------------------------------------------------- metric


def velocity(imm, p):
    """M^-1 p for a diagonal (vector) or dense (matrix) inverse mass matrix; p may have leading axes."""
    return imm * p if imm.ndim == 1 else jnp.einsum("ij,...j->...i", imm, p)


def kinetic(imm, p):
    return 0.5 * jnp.sum(p * velocity(imm, p), axis=-1)


def sample_momentum(seed, imm, dtype, offset=0):
    """p ~ N(0, M) with M = imm^-1, from a uint32[2] seed (hash bits 2 offset .. 2 offset + 4 dim)."""
    z = hash_normal(seed, imm.shape[0], dtype, offset)
    if imm.ndim == 1:
        return z * jax.lax.rsqrt(imm)
    chol = jnp.linalg.cholesky(imm)  # imm = L L'  =>  p = L'^-1 z has covariance M
    return jax.scipy.linalg.solve_triangular(chol, z, trans="T", lower=True)


def leapfrog(value_and_grad, q, p, g, eps, imm):
    p = p + 0.5 * eps * g
    q = q + eps * velocity(imm, p)
    logp, g = value_and_grad(q)
    p = p + 0.5 * eps * g
    return q, p, logp, g


# --------------------------------------------------------------------------- randomness


def _mix32(x):
    """Murmur3's 32-bit finaliser: a bijective avalanche mixer on uint32."""
    x = x ^ (x >> 16)
    x = x * np.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * np.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


_GOLDEN = np.uint32(0x9E3779B9)


def hash_bits(seed, counter):
    """32 random bits from a uint32[2] seed and an integer counter (any shape)."""
    counter = jnp.asarray(counter).astype(jnp.uint32)
    return _mix32(seed[0] ^ _mix32(seed[1] + counter * _GOLDEN))


def transition_seed(key, k, stream=0):
    """uint32[2] seed of transition `k` of the chain with key `key` (uint32[2]); `stream` separates
    the uses of one transition (the trajectory, the step-size search)."""
    k = jnp.asarray(k).astype(jnp.uint32)
    a = _mix32(key[0] ^ _mix32(key[1] + k * _GOLDEN + np.uint32(stream) * np.uint32(0x85EBCA6B)))
    return jnp.stack([a, _mix32(a ^ key[1] ^ np.uint32(0xC2B2AE35 + stream))])


def hash_uniform(seed, counter, dtype):
    """U(0, 1), never 0 or 1: 53 random bits in float64, 24 in float32."""
    counter = jnp.asarray(counter).astype(jnp.uint32)
    if jnp.dtype(dtype) == jnp.float64:
        hi = (hash_bits(seed, 2 * counter) >> 5).astype(dtype)  # 27 bits
        lo = (hash_bits(seed, 2 * counter + 1) >> 6).astype(dtype)  # 26 bits
        return (hi * 2.0**26 + lo + 0.5) * 2.0**-53
    return ((hash_bits(seed, counter) >> 8).astype(dtype) + 0.5) * 2.0**-24


def hash_normal(seed, n, dtype, offset=0):
    """n standard normals (Box-Muller on counters offset .. offset + 2n)."""
    i = offset + 2 * jnp.arange(n, dtype=jnp.uint32)
    u1, u2 = hash_uniform(seed, i, dtype), hash_uniform(seed, i + 1, dtype)
    return jnp.sqrt(-2.0 * jnp.log(u1)) * jnp.cos((2 * np.pi) * u2)


def _energy_weight(h0, energy):
    """log weight exp(H0 - H) of a new state (NaN energies weigh nothing) and whether it diverged."""
    log_w = h0 - energy
    log_w = jnp.where(jnp.isnan(log_w), -jnp.inf, log_w)
    return log_w, -log_w > DIVERGENCE_THRESHOLD


def _where(pred, new, old):
    return jax.tree.map(lambda n, o: jnp.where(pred, n, o), new, old)


# --------------------------------------------------------------------------- NUTS


def _turning(imm, p_left, p_right, rho):
    """Generalised U-turn criterion on spans (leading axes allowed) with end momenta and momentum sum."""
    r = rho - 0.5 * (p_left + p_right)
    return (jnp.sum(velocity(imm, p_left) * r, -1) <= 0) | (jnp.sum(velocity(imm, p_right) * r, -1) <= 0)


class NUTSTree(NamedTuple):
    h0: jax.Array
    seed: jax.Array  # uint32[2]: counters from 4 dim + 4 on are the trajectory's (the momentum used those below)
    left: tuple  # (position, momentum, logdensity, gradient) at the trajectory's ends
    right: tuple
    proposal: tuple  # (position, logdensity, gradient, energy)
    log_weight: jax.Array
    rho: jax.Array
    sub_proposal: tuple
    sub_log_weight: jax.Array
    sub_rho: jax.Array
    ck_momentum: jax.Array  # (max_depth, dim)
    ck_rho: jax.Array  # (max_depth, dim)
    ck_prev: jax.Array  # (max_depth, dim): momentum of the leaf before each block's first
    edge_p: jax.Array  # momentum at the end of the trajectory the subtree grows from
    sub_first_p: jax.Array  # momentum of the subtree's first leaf
    leaf: jax.Array  # leaf index within the subtree being built
    depth: jax.Array  # doublings done
    steps: jax.Array  # leapfrog steps taken
    sum_accept: jax.Array
    diverging: jax.Array
    done: jax.Array


def nuts(logdensity_fn, max_depth: int = 10, extra_checks: bool = True) -> LaneKernel:
    """``extra_checks``: Stan's U-turn checks between the two halves of every merge, besides the
    merged span (see the module docstring); False is BlackJAX's and NumPyro's criterion."""
    value_and_grad = jax.value_and_grad(logdensity_fn)
    levels = np.arange(max_depth)
    block = 2**levels

    def begin(seed, state, step_size, imm):
        q0, logp0, g0 = state
        dtype = q0.dtype
        p0 = sample_momentum(seed, imm, dtype)  # counters 0 .. 4 dim: the trajectory's start after
        h0 = -logp0 + kinetic(imm, p0)
        edge = (q0, p0, logp0, g0)
        proposal = (q0, logp0, g0, h0)
        zero = jnp.zeros_like(q0)
        checkpoints = jnp.zeros((max_depth,) + q0.shape, dtype)
        i32 = jnp.zeros((), jnp.int32)
        false = jnp.zeros((), bool)
        return NUTSTree(
            h0, seed, edge, edge, proposal, jnp.zeros((), dtype), p0,
            proposal, jnp.full((), -jnp.inf, dtype), zero, checkpoints, checkpoints, checkpoints, p0, p0,
            i32, i32, i32, jnp.zeros((), dtype), false, false,
        )

    def step(t: NUTSTree, step_size, imm) -> NUTSTree:
        dtype = t.h0.dtype
        base = 4 * t.ck_momentum.shape[-1] + 4  # past the momentum's counters
        forward = ((hash_bits(t.seed, base) >> t.depth.astype(jnp.uint32)) & 1) == 1
        q, p_from, _, g = _where(forward, t.right, t.left)
        q, p, logp, g = leapfrog(value_and_grad, q, p_from, g, jnp.where(forward, step_size, -step_size), imm)
        energy = -logp + kinetic(imm, p)
        log_w, diverging = _energy_weight(t.h0, energy)
        new = (q, p, logp, g)
        left, right = _where(forward, t.left, new), _where(forward, new, t.right)

        # multinomial sampling inside the subtree
        sub_log_weight = jnp.logaddexp(t.sub_log_weight, log_w)
        take = jnp.log(hash_uniform(t.seed, base + 1 + 2 * t.steps, dtype)) < log_w - sub_log_weight
        sub_proposal = _where(take, (q, logp, g, energy), t.sub_proposal)

        # U-turns of the balanced blocks of this subtree that end at this leaf (sizes 2 .. 2**depth)
        starts = (t.leaf % block == 0)[:, None]
        ck_momentum = jnp.where(starts, p, t.ck_momentum)
        ck_rho = jnp.where(starts, t.sub_rho, t.ck_rho)
        ck_prev = jnp.where(starts, p_from, t.ck_prev)
        sub_rho = t.sub_rho + p
        ends = ((t.leaf + 1) % block == 0) & (levels >= 1) & (levels <= t.depth)
        block_turning = _turning(imm, ck_momentum, p, sub_rho - ck_rho)
        if extra_checks:  # level j's halves are the level j - 1 blocks (slot j - 1 holds the right one)
            left_sum = ck_rho[:-1] - ck_rho[1:]
            right_first, left_last = ck_momentum[:-1], ck_prev[:-1]
            halves = (_turning(imm, ck_momentum[1:], right_first, left_sum + right_first)
                      | _turning(imm, left_last, p, sub_rho - ck_rho[:-1] + left_last))
            block_turning = block_turning | jnp.concatenate([jnp.zeros((1,), bool), halves])
        sub_turning = jnp.any(ends & block_turning)

        # a finished subtree: merge it if valid, then check the whole trajectory (a `cond`: the work
        # runs at the subtree ends only when a chain is not a lane of a vmap, where it is a select)
        sub_done = (t.leaf + 1 == 2**t.depth) | diverging | sub_turning
        first = t.leaf == 0
        edge_p = jnp.where(first, p_from, t.edge_p)
        sub_first_p = jnp.where(first, p, t.sub_first_p)

        def merge(_):
            valid = ~diverging & ~sub_turning
            u = hash_uniform(t.seed, base + 2 + 2 * t.steps, dtype)
            accept_sub = valid & (jnp.log(u) < sub_log_weight - t.log_weight)
            rho = jnp.where(valid, t.rho + sub_rho, t.rho)
            turning = _turning(imm, left[1], right[1], rho)
            if extra_checks:  # old trajectory + the subtree's first leaf, and the old end + the subtree
                left_rho, right_rho = jnp.where(forward, t.rho, sub_rho), jnp.where(forward, sub_rho, t.rho)
                left_end = jnp.where(forward, edge_p, sub_first_p)
                right_first = jnp.where(forward, sub_first_p, edge_p)
                turning = (turning | _turning(imm, left[1], right_first, left_rho + right_first)
                           | _turning(imm, left_end, right[1], right_rho + left_end))
            depth = t.depth + 1
            proposal = _where(accept_sub, sub_proposal, t.proposal)
            log_weight = jnp.where(valid, jnp.logaddexp(t.log_weight, sub_log_weight), t.log_weight)
            return proposal, log_weight, rho, depth, ~valid | (valid & turning) | (depth >= max_depth)

        def grow(_):
            return t.proposal, t.log_weight, t.rho, t.depth, jnp.zeros((), bool)

        proposal, log_weight, rho, depth, done = jax.lax.cond(sub_done, merge, grow, None)
        return NUTSTree(
            t.h0, t.seed, left, right, proposal, log_weight, rho,
            sub_proposal,
            jnp.where(sub_done, -jnp.inf, sub_log_weight),
            jnp.where(sub_done, 0.0, sub_rho),
            ck_momentum, ck_rho, ck_prev, edge_p, sub_first_p,
            jnp.where(sub_done, 0, t.leaf + 1), depth, t.steps + 1,
            t.sum_accept + jnp.exp(jnp.minimum(log_w, 0.0)),
            diverging,
            done,
        )

    def finish(t: NUTSTree):
        q, logp, g, energy = t.proposal
        stats = {
            "diverging": t.diverging,
            "energy": energy,
            "acceptance_rate": t.sum_accept / t.steps,
            "n_steps": t.steps,
            "tree_depth": t.depth,
        }
        return (q, logp, g), stats

    return LaneKernel(begin, step, finish)


# --------------------------------------------------------------------------- HMC


class HMCTrajectory(NamedTuple):
    h0: jax.Array
    start: tuple  # (position, logdensity, gradient)
    tip: tuple  # (position, momentum, logdensity, gradient)
    energy: jax.Array  # Hamiltonian at the tip
    u: jax.Array  # the Metropolis uniform
    length: jax.Array  # leapfrog steps of this transition
    steps: jax.Array
    diverging: jax.Array
    done: jax.Array


def hmc(logdensity_fn, num_steps: int, jitter: bool) -> LaneKernel:
    """Fixed-length HMC with a Metropolis correction; with ``jitter`` the length is uniform on
    ``[ceil(n/2), floor(3n/2)]`` each transition (independent of the state, so the chain stays exact).
    A divergent trajectory stops early and is rejected."""
    value_and_grad = jax.value_and_grad(logdensity_fn)
    low, high = (num_steps + 1) // 2, (3 * num_steps) // 2

    def begin(seed, state, step_size, imm):
        q0, logp0, g0 = state
        p0 = sample_momentum(seed, imm, q0.dtype)
        base = 4 * q0.shape[0] + 4  # past the momentum's counters
        length = low + (hash_bits(seed, base) % np.uint32(high - low + 1)).astype(jnp.int32) if jitter else num_steps
        h0 = -logp0 + kinetic(imm, p0)
        false = jnp.zeros((), bool)
        return HMCTrajectory(
            h0, (q0, logp0, g0), (q0, p0, logp0, g0), h0, hash_uniform(seed, base + 1, q0.dtype),
            jnp.asarray(length, jnp.int32), jnp.zeros((), jnp.int32), false, false,
        )

    def step(t: HMCTrajectory, step_size, imm) -> HMCTrajectory:
        q, p, _, g = t.tip
        tip = leapfrog(value_and_grad, q, p, g, step_size, imm)
        steps = t.steps + 1
        energy = -tip[2] + kinetic(imm, tip[1])
        _, diverging = _energy_weight(t.h0, energy)
        return t._replace(tip=tip, energy=energy, steps=steps, diverging=diverging,
                          done=(steps >= t.length) | diverging)

    def finish(t: HMCTrajectory):
        log_w, _ = _energy_weight(t.h0, t.energy)
        accept = ~t.diverging & (jnp.log(t.u) < log_w)
        q, _, logp, g = t.tip
        new = _where(accept, (q, logp, g), t.start)
        stats = {
            "diverging": t.diverging,
            "energy": jnp.where(accept, t.energy, t.h0),
            "acceptance_rate": jnp.where(t.diverging, 0.0, jnp.exp(jnp.minimum(log_w, 0.0))),
            "n_steps": t.steps,
        }
        return new, stats

    return LaneKernel(begin, step, finish)
