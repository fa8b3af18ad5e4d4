"""Learning in state-space models by stochastic gradient ascent on PaRIS-estimated scores.

Each step estimates, at the current parameters, ∇θ log p(y) by Fisher's identity and/or the
Markov-score-climbing gradient E_p[∇φ log r_φ(x | y)] of a proposal (`ScoreExtension`), both
additive functionals, in one PaRIS pass: unconditional (`bk.PaRIS`) or inside conditional SMC
with the reference path carried from step to step (`bk.ParticleGibbs`; the Markov chain of score
climbing, Naesseth et al. 2020, with PaRIS particle Gibbs' bias reduction, Cardoso et al. 2023).
Adam steps on unconstrained coordinates: log for positive parameters, atanh for parameters in
(−1, 1) (``constraints`` of the model class), identity otherwise and for proposals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from ...core.cache import cached, program_key
from ...core.checks import check_bool, check_checkpoint, check_int, check_positive
from ...core.errors import ConfigError
from ...core.module import Module
from ...core.optimise import run_steps

TRANSFORMS = {  # name: (to unconstrained, from unconstrained)
    "real": (lambda v: v, lambda u: u),
    "positive": (jnp.log, jnp.exp),
    "symmetric_unit": (jnp.arctanh, jnp.tanh),
}


class Learn(Module, pytree=False):
    """Learn the model parameters named in ``params`` (field names, e.g. ("rho", "sigma")) by
    stochastic gradient ascent on the score of log p(y), and with ``proposal=True`` the engine's
    `ParametricProposal` by Markov score climbing, both from the same PaRIS pass: ``steps`` Adam
    steps of size ``learning_rate`` (a constant or a schedule, e.g.
    ``optax.cosine_decay_schedule(0.05, steps)``: a decaying rate settles on the optimum rather than
    fluctuating around it). Progress shows log p̂(y), or E[log r_φ]/T for the proposal alone.

    ``checkpoint``: a file the learning state (parameters, Adam's state, the step, the history and
    trace, particle Gibbs' reference path) is written to after every chunk of steps, atomically;
    ``resume=True`` continues from it and learns exactly what the uninterrupted run learns. Resuming
    a file written with other settings, seed, model or data is a `ConfigError`.
    """

    params: tuple[str, ...] = ()
    proposal: bool = False
    steps: int = 200
    learning_rate: float | Callable = 0.02  # or an optax schedule: step -> rate
    checkpoint: str | None = None
    resume: bool = False

    def __check_init__(self):
        if isinstance(self.params, str) or not all(isinstance(p, str) for p in self.params):
            raise ConfigError(f"`params` must be a tuple of parameter names, got {self.params!r}")
        check_bool("proposal", self.proposal)
        if not self.params and not self.proposal:
            raise ConfigError("Learn needs something to learn: name model parameters in `params`, "
                              "or pass proposal=True to fit the engine's proposal")
        check_int("steps", self.steps)
        if not callable(self.learning_rate):
            check_positive("learning_rate", self.learning_rate)
        check_checkpoint(self.checkpoint, self.resume)


def field_slots(model) -> dict:
    """{field: (start, stop, shape)}: where each parameter of the model sits in a vector raveled over
    its leaves (a score, or a row of the observed information)."""
    slots, start = {}, 0
    for f in dataclasses.fields(model):
        shape = np.shape(getattr(model, f.name))
        size = int(np.prod(shape, dtype=int))
        slots[f.name] = (start, start + size, shape)
        start += size
    return slots


def standard_errors(model, information, params) -> dict:
    """Standard errors of the named parameters, inverting the observed information's block of their
    entries (the other parameters held at their values): {name: array of the parameter's shape}."""
    slots = field_slots(model)
    index = np.concatenate([np.arange(slots[p][0], slots[p][1]) for p in params])
    block = np.asarray(information)[np.ix_(index, index)]
    try:
        cov = np.linalg.inv(block)
    except np.linalg.LinAlgError:
        cov = np.full_like(block, np.nan)
    diag = np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan))  # NaN: not at a maximum
    out, start = {}, 0
    for p in params:
        lo, hi, shape = slots[p]
        out[p] = diag[start:start + hi - lo].reshape(shape)
        start += hi - lo
    return out


def _check_params(model, params):
    names = [f.name for f in dataclasses.fields(model)]
    unknown = [p for p in params if p not in names]
    if unknown:
        raise ConfigError(f"`params` names {unknown[0]!r}, not a parameter of {type(model).__name__}; "
                          f"they are {', '.join(names)}")
    constraints = getattr(type(model), "constraints", {})
    for p in params:
        kind = constraints.get(p, "real")
        value = np.asarray(getattr(model, p))
        if kind == "positive" and not np.all(value > 0):
            raise ConfigError(f"{type(model).__name__} learns `{p}` on the log scale, which needs every entry "
                              f"positive (a full covariance would need a Cholesky parameterisation)")
        if kind == "symmetric_unit" and not np.all(np.abs(value) < 1):
            raise ConfigError(f"`{p}` must start inside (-1, 1) to be learned")
    return constraints


class LearnState(NamedTuple):
    """Learning between steps (besides the parameters): Adam's state, what the estimator carries from
    step to step (particle Gibbs' reference path; None for PaRIS) and the steps done."""

    opt_state: Any
    carry: Any
    step: int


def learn(model, proposal, learn_settings: Learn, estimate, key, progress: bool, T: int, checkpoint=None):
    """(fitted model, fitted proposal, history of the progress value, trace: per step the learned model
    parameters, and under "proposal" the raveled proposal parameters).

    ``estimate(model, proposal, key, carry) -> (score, log p̂(y), carry)``, the score laid out as
    `ScoreExtension` with ``wrt_model = bool(params)`` and ``wrt_proposal = proposal``; ``carry`` is
    what it keeps from step to step (None at the first). ``checkpoint``: a `core.checkpoint.Checkpoint`
    written after each chunk of steps, and resumed from when it says so.
    """
    import optax

    constraints = _check_params(model, learn_settings.params)
    slots = field_slots(model)
    model_size = max(hi for _, hi, _ in slots.values()) if learn_settings.params else 0  # the proposal's part follows
    flat_phi, unravel_phi = jax.flatten_util.ravel_pytree(proposal if learn_settings.proposal else ())

    def to_model(theta):
        values = {p: TRANSFORMS[constraints.get(p, "real")][1](u) for p, u in theta["model"].items()}
        return dataclasses.replace(model, **values)

    def to_proposal(theta):
        return unravel_phi(theta["proposal"]) if learn_settings.proposal else proposal

    theta = {"model": {p: TRANSFORMS[constraints.get(p, "real")][0](jnp.asarray(getattr(model, p), float))
                       for p in learn_settings.params},
             "proposal": flat_phi}
    opt = optax.adam(learn_settings.learning_rate)
    keys = jax.random.split(key, learn_settings.steps)  # step t's key: keys[t], whether resumed or not
    trace = []
    transforms = tuple((p, constraints.get(p, "real"), slots[p]) for p in learn_settings.params)
    update = cached(program_key("smc-learn-update", jax.tree_util.tree_structure(model),
                                static=(transforms, model_size, learn_settings.proposal, T),
                                arrays={"phi": flat_phi}, extra=(learn_settings.learning_rate,)),
                    lambda: _build_update(opt, transforms, model_size, learn_settings.proposal, T))

    def step(theta, state: LearnState):
        current = to_model(theta)
        score, loglik, carry = estimate(current, to_proposal(theta), keys[state.step], state.carry)
        trace.append({p: np.asarray(getattr(current, p)) for p in theta["model"]}
                     | ({"proposal": np.asarray(theta["proposal"])} if learn_settings.proposal else {}))
        shown = -loglik / T if learn_settings.params else -float(score[-1]) / T
        theta, opt_state = update(theta, state.opt_state, jnp.asarray(score))
        return theta, LearnState(opt_state, carry, state.step + 1), shown

    state, start, records = LearnState(opt.init(theta), None, 0), 0, ()
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:  # the arrays as they were (on the host): the same steps follow, bit for bit
        theta, state = jax.tree_util.tree_map(jnp.asarray, saved.state["carry"])
        state = state._replace(step=int(state.step))
        trace[:] = saved.state["trace"]
        start, records = saved.done, saved.records

    def snapshot(carry):  # after a chunk: the trace holds one entry per step done
        return {"carry": carry, "trace": list(trace)}

    label = "log p̂(y)" if learn_settings.params else "E[log r_φ(x | y)]"
    theta, history = run_steps(step, theta, state, steps=learn_settings.steps, n=T, progress=progress,
                               desc="particle learning", label=label, keep="last", start=start, records=records,
                               checkpoint=checkpoint, snapshot=snapshot)
    return to_model(theta), to_proposal(theta), history, trace


def _build_update(opt, transforms, model_size: int, with_proposal: bool, T: int):
    """update(theta, state, score): Adam on -(score)/T, mapped to unconstrained coordinates by the
    transforms' vjps (compiled once per model structure, parameters, proposal size, T and rate)."""
    import optax

    @jax.jit
    def update(theta, state, score):
        grads = {"model": {}, "proposal": jnp.zeros_like(theta["proposal"])}
        for p, kind, (lo, hi, shape) in transforms:
            _, vjp = jax.vjp(TRANSFORMS[kind][1], theta["model"][p])
            grads["model"][p] = -vjp(score[lo:hi].reshape(shape))[0] / T  # descend on -log p(y) / T
        if with_proposal:  # the tail: E[∇φ log r_φ], then E[log r_φ]
            size = theta["proposal"].size
            grads["proposal"] = -score[model_size:model_size + size] / T
        updates, state = opt.update(grads, state)
        return optax.apply_updates(theta, updates), state

    return update
