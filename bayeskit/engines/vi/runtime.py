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
import math
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

_MODEL_STREAM = 2**31 - 1  # fold_in tag of the model's own randomness (calls count up from 0)


@dataclasses.dataclass
class Draw:
    """Draws of a variational program: latent ``values`` for the model (its auxiliary sites left out),
    every sampled site in ``sites``, ``log_prob`` (log q of all its sites), ``batch_shape``, the
    leading axes of independent draws (() for one), and ``plates``, the indices of the program's
    subsampled plates (``numpyro.plate(..., subsample_size=B)``): the model sees the same minibatch."""

    values: dict
    log_prob: Any
    sites: dict
    batch_shape: tuple = ()
    plates: dict = dataclasses.field(default_factory=dict)  # subsample indices, replayed in the model

    @property
    def auxiliary(self) -> dict:
        return {k: v for k, v in self.sites.items() if k not in self.values}


@dataclasses.dataclass
class _Run:
    """What one evaluation of an objective program leaves behind for the surrogate."""

    score: list = dataclasses.field(default_factory=list)  # REINFORCE log q terms (differentiable)
    special: dict = dataclasses.field(default_factory=dict)  # (call, site) -> (estimator, value, extra)
    # averages of K runs: (their mean as returned, the K values, each run's REINFORCE log q sum)
    averages: list = dataclasses.field(default_factory=list)
    top: Any = None  # what the objective returned


class Context:
    def __init__(self, model_fn, guide_fn, data, params, key, estimators, subst=None, reverse_fn=None):
        self.model_fn, self.guide_fn, self.reverse_fn, self.data = model_fn, guide_fn, reverse_fn, data
        self.params, self.key, self.estimators = params, key, estimators
        self.subst = subst or {}
        self.calls = 0
        self.run = _Run()

    def next_key(self):
        self.calls += 1
        return self.calls - 1, jax.random.fold_in(self.key, self.calls - 1)


def _batched(f, batch_shape, *trees):
    """Apply f to each element of the leading ``batch_shape`` axes of `trees` (nested vmaps)."""
    for _ in batch_shape:
        f = jax.vmap(f)
    return f(*trees)


class ProgramHandle:
    """A variational program inside an objective: the guide q, or (``guide.reverse``) the reverse
    model τ(ψ | z) of a hierarchical family, whose program receives the conditioning values."""

    def __init__(self, ctx: Context, fn, conditional: bool = False):
        self._ctx, self._fn, self._conditional = ctx, fn, conditional

    @property
    def params(self) -> dict:
        """The current (constrained) parameter values of all programs."""
        return self._ctx.params

    @property
    def reverse(self) -> ProgramHandle:
        """τ(ψ | z): the reverse model of a hierarchical family (`bk.vi.Hierarchical`)."""
        if self._ctx.reverse_fn is None:
            raise ConfigError("this objective needs a reverse model: use guide=bk.vi.Hierarchical(guide, reverse)")
        return ProgramHandle(self._ctx, self._ctx.reverse_fn, conditional=True)

    def _bind(self, given):
        fn = self._fn
        return (lambda **kw: fn(given, **kw)) if self._conditional else fn

    def sample(self, n: int | None = None, *, given: dict | None = None, batch_shape: tuple = (),
               detach: bool = False) -> Draw:
        """Draws from the program, ``n`` of them along a new leading axis, for each element of the
        leading ``batch_shape`` axes of ``given`` (the conditioning values of a reverse model).
        ``detach=True`` draws without gradients through the sampling (wake-sleep updates)."""
        ctx = self._ctx
        call, key = ctx.next_key()
        subst = {site: v for (c, site), v in ctx.subst.items() if c == call}
        shape = tuple(batch_shape) + (() if n is None else (n,))
        keys = jax.random.split(key, math.prod(shape)).reshape(*shape, *key.shape) if shape else key

        def one(k, sub, g):
            return _program_run(ctx, self._bind(g), k, sub, detach)

        if given is not None and n is not None:  # the same conditioning values for each of the n draws
            given = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(
                jnp.expand_dims(v, len(batch_shape)), (*shape, *v.shape[len(batch_shape):])), given)
        values, log_q, sites, score, special, plates = _batched(one, shape, keys, subst, given)
        if not detach:
            ctx.run.score.append(score)
            for site, item in special.items():
                ctx.run.special[(call, site)] = item
        return Draw(values, log_q, sites, shape, plates)

    def log_prob(self, values: dict, *, given: dict | None = None, batch_shape: tuple = (), only=None):
        """log q at given values of all the program's sites (per element of the leading
        ``batch_shape`` axes), differentiable in its parameters; ``only``: sum just these sites."""
        ctx = self._ctx

        def one(v, g):
            lp, tr = log_density(self._bind(g), (), ctx.data, {**ctx.params, **v})
            if only is None:
                return lp
            return sum(jnp.sum(tr[name]["fn"].log_prob(tr[name]["value"])) for name in only)

        return _batched(one, tuple(batch_shape), values, given)


class ModelHandle:
    """The model (a NumPyro program with the data bound) inside an objective."""

    def __init__(self, ctx: Context):
        self._ctx = ctx

    @property
    def params(self) -> dict:
        return self._ctx.params

    def log_density(self, draw: Draw | dict, batch_shape: tuple | None = None):
        """log p(x, z) at the draw's latent values (per element of its batch shape)."""
        ctx = self._ctx
        if isinstance(draw, Draw):
            values, shape, plates = draw.values, draw.batch_shape, draw.plates
        else:
            values, shape, plates = draw, batch_shape or (), {}
        # a plate the model subsamples and the guide does not draws its indices from this key
        model = handlers.seed(ctx.model_fn, jax.random.fold_in(ctx.key, _MODEL_STREAM))

        def one(v, idx):
            lp, _ = log_density(model, (), ctx.data, {**ctx.params, **idx, **v})
            return lp

        return _batched(one, tuple(shape), values, plates)


def average_runs(objective, K: int, model: ModelHandle, guide: ProgramHandle):
    """The mean of K ≥ 2 independent runs of `objective`, vectorised (one trace whatever K).

    The runs share one call of the enclosing program: copy k draws from fold_in(that call's key, k),
    and its calls are recorded under (that call, its own call), so the estimators' reruns (enumeration,
    measure-valued derivatives) substitute a value in the copy that drew it and nowhere else. Each
    copy's score-function (REINFORCE) terms are kept with its own value: when the average is what
    the objective returns, `surrogate` pairs them copy by copy, (1/K) Σ_k (F_k − b) ∇ log q_k, with K
    times less variance than one run; inside a larger objective they pair with its value, as any
    other choice's do (unbiased either way).
    """
    ctx = guide._ctx
    call, key = ctx.next_key()
    # substitutions addressed to this average's calls, routed to the inner calls (values carry the K axis)
    routed = {(c[1], site): v for (c, site), v in ctx.subst.items() if isinstance(c, tuple) and c[0] == call}
    static: dict = {}  # (inner call, site) -> estimator: Python objects, recorded while tracing

    def one(k, subst):
        inner = Context(ctx.model_fn, ctx.guide_fn, ctx.data, ctx.params, jax.random.fold_in(key, k),
                        ctx.estimators, subst, ctx.reverse_fn)
        value = objective(ModelHandle(inner), ProgramHandle(inner, ctx.guide_fn))
        special = {}
        for name, (estimator, sampled, extra) in inner.run.special.items():
            static[name] = estimator
            special[name] = (sampled, extra)
        _pair_averages(inner.run, value)
        score = sum((jnp.sum(s) for s in inner.run.score), jnp.zeros(()))
        return jnp.asarray(value), score, special

    values, score, special = jax.vmap(one)(jnp.arange(K), routed)
    for (inner_call, site), (sampled, extra) in special.items():
        ctx.run.special[((call, inner_call), site)] = (static[(inner_call, site)], sampled, extra)
    mean = jnp.mean(values)
    ctx.run.averages.append((mean, values, score))
    return mean


def _pair_averages(run: _Run, value, baseline=None):
    """Settle the averages of a run once its objective returned `value`: an average that is the value
    gets its per-copy REINFORCE terms as ``extra`` (with `baseline`; inside an average, the mean of the
    other copies), any other goes into the run's score list, paired with the value as a whole."""
    extra = jnp.zeros(())
    for mean, values, score in run.averages:
        if mean is value and baseline is not None:
            frozen = lax.stop_gradient(values)
            extra = extra + jnp.mean((frozen - baseline) * (score - lax.stop_gradient(score)))
        else:
            run.score.append(score)
    run.averages = []
    return extra


def _program_run(ctx: Context, program, key, subst: dict, detach: bool):
    """One run of a variational program: (model latent values, log q, all site values, Σ REINFORCE
    log q, {site: (estimator, value, extra)} for enumerated and measure-valued sites)."""

    def choose(site):
        if site["type"] != "sample" or site.get("is_observed", False):
            return None
        name = site["name"]
        fn = site["fn"]
        estimator = ctx.estimators(name, fn)
        value = fn(rng_key=site["kwargs"]["rng_key"], sample_shape=site["kwargs"].get("sample_shape", ()))
        if name in subst:
            sub_value, mask, _ = subst[name]
            value = jnp.where(mask, sub_value, value)
        if detach or not isinstance(estimator, est.Reparam):
            value = lax.stop_gradient(value)
        return value

    with handlers.trace() as tr, handlers.substitute(substitute_fn=choose), handlers.seed(rng_seed=key), \
            handlers.substitute(data=ctx.params):
        program(**ctx.data)
    values, sites, log_q, score, special, plates = {}, {}, 0.0, 0.0, {}, {}
    for name, site in tr.items():
        if site["type"] == "plate" and site["args"][1] not in (None, site["args"][0]):
            plates[name] = site["value"]
        if site["type"] != "sample" or site.get("is_observed", False):
            continue
        fn, value = site["fn"], site["value"]
        estimator = None if detach else ctx.estimators(name, fn)
        elements = fn.log_prob(value)
        if isinstance(estimator, est.Enumerate):
            # the explicit dependence of the objective on θ through log q at the sampled value is
            # summed over the support instead (`surrogate`): here it carries no gradient
            elements = lax.stop_gradient(elements)
        if name in subst and subst[name][2] is not None:
            elements = elements + subst[name][2]  # a zero shift: d objective / d log q of each element
        lp = jnp.sum(elements) * (site["scale"] if site.get("scale") is not None else 1.0)
        log_q = log_q + lp
        sites[name] = value
        if not site["infer"].get("is_auxiliary", False):
            values[name] = value
        if detach:
            continue
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
    return values, log_q, sites, score, special, plates


def evaluate(objective, model_fn, guide_fn, data, params, key, estimators, subst=None, reverse_fn=None):
    """(objective value, the run's records)."""
    ctx = Context(model_fn, guide_fn, data, params, key, estimators, subst, reverse_fn)
    value = objective(ModelHandle(ctx), ProgramHandle(ctx, guide_fn))
    ctx.run.top = value
    value = jnp.asarray(value)
    if value.shape != () or not jnp.issubdtype(value.dtype, jnp.floating):
        raise ConfigError(f"an objective program must return a scalar float (the value to maximise), got an array "
                          f"of shape {value.shape} and dtype {value.dtype}")
    return value, ctx.run


def surrogate(objective, model_fn, guide_fn, data, params, key, estimators, baseline, reverse_fn=None):
    """(surrogate, objective value): ∇ surrogate is an unbiased estimate of ∇ E[objective].

    surrogate = F                                   (pathwise parts: reparameterised choices, explicit θ)
              + sg(F − b) (L − sg(L))               (REINFORCE: L = Σ log q at score-function choices)
              + Σ_enum Σ_v sg(q(v) (F̂(v) + ĉ(v))) log q(v)
                                                    (minus its own sg: zero-valued)
              + Σ_mvd Σ_i sg(ĝ_i) θ_i               (ĝ_i = c_i (F̂(z⁺_i) − F̂(z⁻_i)))

    For an enumerated element, F̂(v) is the objective rerun with the element at v, and ĉ(v) = ∂F̂(v) /
    ∂ log q(v), the weight of the objective's explicit dependence on θ through that element's log q.
    In F that dependence is cut, so its gradient Σ_v q(v) ĉ(v) ∇ log q(v) is the exact sum over the
    support rather than a one-sample estimate at the drawn value (Pyro's TraceEnum_ELBO sums it too):
    for the ELBO ĉ = −1 and the sum is 0, and where the program factorises the gradient of an
    enumerated site has no variance at all.
    """
    value, run = evaluate(objective, model_fn, guide_fn, data, params, key, estimators, reverse_fn=reverse_fn)
    total = value + _pair_averages(run, run.top, baseline)
    L = sum((jnp.sum(s) for s in run.score), jnp.zeros(()))
    total = total + lax.stop_gradient(value - baseline) * (L - lax.stop_gradient(L))
    frozen = lax.stop_gradient(params)

    def rerun(call, site, sub_value, mask, shift=None):
        v, _ = evaluate(objective, model_fn, guide_fn, data, frozen, key, estimators,
                        {(call, site): (sub_value, mask, shift)}, reverse_fn)
        return v

    for (call, site), (estimator, sampled, extra) in run.special.items():
        flat = sampled.reshape(-1)
        size = flat.shape[0]
        eye = jnp.eye(size, dtype=bool)
        if isinstance(estimator, est.Enumerate):
            support, log_q = (a.reshape(size, -1) for a in extra)  # (size, V) each

            def at(i, v, flat=flat, eye=eye, call=call, site=site, sampled=sampled, dtype=log_q.dtype):
                sub = jnp.where(eye[i], v, flat).reshape(sampled.shape)
                mask = eye[i].reshape(sampled.shape)
                value, dshift = jax.value_and_grad(lambda shift: rerun(call, site, sub, mask, shift))(
                    jnp.zeros(sampled.shape, dtype))
                return value, dshift.reshape(-1)[i]

            F, C = jax.vmap(lambda i, vs: jax.vmap(lambda v: at(i, v))(vs))(jnp.arange(size), support)  # (size, V)
            coef = lax.stop_gradient(jnp.exp(log_q) * (F + C))
            total = total + jnp.sum(coef * log_q) - lax.stop_gradient(jnp.sum(coef * log_q))
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
    from ...core.checks import check_int
    from ...core.seeds import as_key

    check_int("n", n)
    model = model if model is not None else (lambda **kw: None)
    data = dict(data or {})
    params = {k: jnp.asarray(v, dtype=float) for k, v in params.items()}
    choose = est.chooser(estimator)

    def one(key):
        return jax.grad(lambda p: surrogate(objective, model, guide, data, p, key, choose, baseline)[0])(params)

    return {k: np.asarray(v) for k, v in jax.jit(jax.vmap(one))(jax.random.split(as_key(seed), n)).items()}
