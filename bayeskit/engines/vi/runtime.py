"""The runtime of variational programs: objectives are plain functions over two handles,

    def elbo(model, guide):
        q = guide.sample()                      # a draw z ~ q and log q(z)
        return model.log_density(q) - q.log_prob

and `surrogate` turns one run of such a program into a scalar whose gradient is an unbiased
estimate of ∇ E[objective], each random choice contributing through its own estimator
(`estimators`). Randomness is keyed by call: the i-th ``guide.sample`` uses fold_in(key, i),
so running the program again with one choice substituted (what enumeration and measure-valued
derivatives need: the continuation of the program at another value) reproduces everything else.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from numpyro import handlers
from numpyro.infer.util import log_density

from ...core.errors import ConfigError
from . import estimators as est


@dataclasses.dataclass
class Draw:
    """One draw (or ``n`` draws, leading axis) of the guide: latent ``values`` for the model,
    every sampled site's value in ``sites`` (auxiliary ones included), and ``log_prob`` = log q."""

    values: dict
    log_prob: Any
    sites: dict
    n: int | None = None


@dataclasses.dataclass
class _Run:
    """What one evaluation of an objective program leaves behind for the surrogate."""

    score: list = dataclasses.field(default_factory=list)  # REINFORCE log q terms (differentiable)
    special: dict = dataclasses.field(default_factory=dict)  # (call, site) -> (estimator, value, extra)


class Context:
    def __init__(self, model_fn, guide_fn, data, params, key, estimators, subst=None):
        self.model_fn, self.guide_fn, self.data = model_fn, guide_fn, data
        self.params, self.key, self.estimators = params, key, estimators
        self.subst = subst or {}
        self.calls = 0
        self.run = _Run()

    def next_key(self):
        self.calls += 1
        return self.calls - 1, jax.random.fold_in(self.key, self.calls - 1)


class GuideHandle:
    """The variational program inside an objective."""

    def __init__(self, ctx: Context):
        self._ctx = ctx

    @property
    def params(self) -> dict:
        """The current (constrained) parameter values."""
        return self._ctx.params

    def sample(self, n: int | None = None, detach: bool = False) -> Draw:
        """z ~ q (``n`` independent draws along a leading axis), with log q(z). ``detach=True``
        draws without any gradient through the sampling (for wake-sleep updates)."""
        ctx = self._ctx
        call, key = ctx.next_key()
        subst = {site: v for (c, site), v in ctx.subst.items() if c == call}

        def one(k, sub):
            return _guide_run(ctx, k, sub, detach)

        if n is None:
            out = one(key, subst)
        else:
            out = jax.vmap(one)(jax.random.split(key, n), subst)
        values, log_q, sites, score, special = out
        if not detach:
            ctx.run.score.append(score)
            for site, item in special.items():
                ctx.run.special[(call, site)] = item
        return Draw(values, log_q, sites, n)

    def log_prob(self, values: dict, n: int | None = None):
        """log q(z) at given latent values (all of the guide's sites), differentiable in its parameters."""
        ctx = self._ctx

        def one(v):
            lp, _ = log_density(ctx.guide_fn, (), ctx.data, {**ctx.params, **v})
            return lp

        return one(values) if n is None else jax.vmap(one)(values)


class ModelHandle:
    """The model (a NumPyro program with the data bound) inside an objective."""

    def __init__(self, ctx: Context):
        self._ctx = ctx

    @property
    def params(self) -> dict:
        return self._ctx.params

    def log_density(self, draw: Draw | dict, n: int | None = None):
        """log p(x, z) at the draw's latent values (per draw for ``n`` draws)."""
        ctx = self._ctx
        values, n = (draw.values, draw.n) if isinstance(draw, Draw) else (draw, n)

        def one(v):
            lp, _ = log_density(ctx.model_fn, (), ctx.data, {**ctx.params, **v})
            return lp

        return one(values) if n is None else jax.vmap(one)(values)


def _guide_run(ctx: Context, key, subst: dict, detach: bool):
    """One run of the guide: (model latent values, log q, all site values, Σ REINFORCE log q,
    {site: (estimator, value, extra)} for enumerated and measure-valued sites)."""
    special_values = {}

    def choose(site):
        if site["type"] != "sample" or site.get("is_observed", False):
            return None
        name = site["name"]
        fn = site["fn"]
        estimator = ctx.estimators(name, fn)
        value = fn(rng_key=site["kwargs"]["rng_key"], sample_shape=site["kwargs"].get("sample_shape", ()))
        if name in subst:
            sub_value, mask = subst[name]
            value = jnp.where(mask, sub_value, value)
        if detach or not isinstance(estimator, est.Reparam):
            value = lax.stop_gradient(value)
        special_values[name] = value
        return value

    with handlers.trace() as tr, handlers.substitute(substitute_fn=choose), handlers.seed(rng_seed=key), \
            handlers.substitute(data=ctx.params):
        ctx.guide_fn(**ctx.data)
    values, sites, log_q, score, special = {}, {}, 0.0, 0.0, {}
    for name, site in tr.items():
        if site["type"] != "sample" or site.get("is_observed", False):
            continue
        fn, value = site["fn"], site["value"]
        lp = jnp.sum(fn.log_prob(value)) * (site["scale"] if site.get("scale") is not None else 1.0)
        log_q = log_q + lp
        sites[name] = value
        if not site["infer"].get("is_auxiliary", False):
            values[name] = value
        if detach:
            continue
        estimator = ctx.estimators(name, fn)
        if isinstance(estimator, est.Reinforce):
            score = score + lp
        elif isinstance(estimator, est.Enumerate):
            support = fn.enumerate_support(expand=True)  # (V, *shape)
            # V last, so that a vectorised call stacks to (n, *shape, V), in the order of its values
            log_q_support = jnp.moveaxis(fn.log_prob(support), 0, -1)
            special[name] = (estimator, value, (jnp.moveaxis(support, 0, -1), log_q_support))
        elif isinstance(estimator, est.MeasureValued):
            site_key = jax.random.fold_in(key, zlib.crc32(name.encode()) % (2**31))  # stable across processes
            special[name] = (estimator, value, est.mvd_parts(fn, site_key))
    return values, log_q, sites, score, special


def evaluate(objective, model_fn, guide_fn, data, params, key, estimators, subst=None):
    """(objective value, the run's records)."""
    ctx = Context(model_fn, guide_fn, data, params, key, estimators, subst)
    value = objective(ModelHandle(ctx), GuideHandle(ctx))
    value = jnp.asarray(value)
    if value.shape != () or not jnp.issubdtype(value.dtype, jnp.floating):
        raise ConfigError(f"an objective program must return a scalar float (the value to maximise), got an array "
                          f"of shape {value.shape} and dtype {value.dtype}")
    return value, ctx.run, ctx.calls


def surrogate(objective, model_fn, guide_fn, data, params, key, estimators, baseline):
    """(surrogate, objective value): ∇ surrogate is an unbiased estimate of ∇ E[objective].

    surrogate = F                                   (pathwise parts: reparameterised choices, explicit θ)
              + sg(F − b) (L − sg(L))               (REINFORCE: L = Σ log q at score-function choices)
              + Σ_enum Σ_v e^{log q(v)} sg(F̂(v))     (the others' values, minus their own sg: zero-valued)
              + Σ_mvd Σ_i sg(ĝ_i) θ_i               (ĝ_i = c_i (F̂(z⁺_i) − F̂(z⁻_i)))
    """
    value, run, _ = evaluate(objective, model_fn, guide_fn, data, params, key, estimators)
    total = value
    L = sum((jnp.sum(s) for s in run.score), jnp.zeros(()))
    total = total + lax.stop_gradient(value - baseline) * (L - lax.stop_gradient(L))
    frozen = lax.stop_gradient(params)

    def rerun(call, site, sub_value, mask):
        v, _, _ = evaluate(objective, model_fn, guide_fn, data, frozen, key, estimators,
                           {(call, site): (sub_value, mask)})
        return v

    for (call, site), (estimator, sampled, extra) in run.special.items():
        flat = sampled.reshape(-1)
        size = flat.shape[0]
        eye = jnp.eye(size, dtype=bool)
        if isinstance(estimator, est.Enumerate):
            support, log_q = (a.reshape(size, -1) for a in extra)  # (size, V) each

            def at(i, v, flat=flat, eye=eye, call=call, site=site, sampled=sampled):
                sub = jnp.where(eye[i], v, flat).reshape(sampled.shape)
                return rerun(call, site, sub, eye[i].reshape(sampled.shape))

            F = jax.vmap(lambda i, vs: jax.vmap(lambda v: at(i, v))(vs))(jnp.arange(size), support)  # (size, V)
            F = lax.stop_gradient(F)
            weights = jnp.exp(log_q)
            total = total + jnp.sum(weights * F) - lax.stop_gradient(jnp.sum(weights * F))
        else:  # measure-valued
            for theta, c, plus, minus in extra:
                def diff(i, plus=plus, minus=minus, flat=flat, eye=eye, call=call, site=site, sampled=sampled):
                    up = rerun(call, site, jnp.where(eye[i], plus.reshape(-1), flat).reshape(sampled.shape),
                               eye[i].reshape(sampled.shape))
                    down = rerun(call, site, jnp.where(eye[i], minus.reshape(-1), flat).reshape(sampled.shape),
                                 eye[i].reshape(sampled.shape))
                    return up - down

                g = lax.stop_gradient(c.reshape(-1) * jax.vmap(diff)(jnp.arange(size)))
                total = total + jnp.sum(g * theta.reshape(-1)) - lax.stop_gradient(jnp.sum(g * theta.reshape(-1)))
    return total, value


def gradient_samples(objective, guide, params: dict, *, model=None, data=None, estimator=None, n: int = 1000,
                     seed=0, baseline: float = 0.0) -> dict:
    """``n`` independent estimates of ∇ E[objective] with respect to ``params`` (constrained values of
    the programs' param sites): {name: (n, *shape)}. Their mean and spread show an estimator's bias
    and variance (``estimator`` as for `bk.VI`)."""
    from ...core.seeds import as_key

    model = model if model is not None else (lambda **kw: None)
    data = dict(data or {})
    params = {k: jnp.asarray(v, dtype=float) for k, v in params.items()}
    choose = est.chooser(estimator)

    def one(key):
        return jax.grad(lambda p: surrogate(objective, model, guide, data, p, key, choose, baseline)[0])(params)

    return {k: np.asarray(v) for k, v in jax.jit(jax.vmap(one))(jax.random.split(as_key(seed), n)).items()}
