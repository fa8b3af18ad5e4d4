"""Gradient estimators, one per random choice of the variational program (after ADEV, Becker et
al. 2024). Each says how ∇θ E_{z ~ q_θ}[F(z, …)] is estimated at its site; the objective program is
differentiated once and the pieces combine (see `runtime.surrogate`):

* ``Reparam``: pathwise, z = T_θ(ε); gradients flow through the sampled value.
* ``Reinforce(baseline)``: the score function, sg(F − b) ∇θ log q_θ(z), with b a constant, None,
  or ``"running"`` (an exponential moving average of past objective values: independent of the
  current draw, so unbiased).
* ``Enumerate``: for a finite support, Σ_v ∇θ q_θ(v) F̂(v), with F̂(v) the rest of the program run
  again with z = v (same randomness elsewhere): exact in z.
* ``MeasureValued``: ∇θ_i E[F] = c_i (E[F(z⁺)] − E[F(z⁻)]) for each parameter coordinate (Pflug
  1989; Mohamed et al. 2020 §6): Normal(μ, σ): for μ, z± = μ ± σ·Rayleigh(1)·… with c = 1/(σ√(2π)),
  for σ, z⁺ = μ + σ·DoubleSidedMaxwell, z⁻ = μ + σ·N(0, 1), c = 1/σ; Bernoulli(p): z⁺ = 1, z⁻ = 0, c = 1;
  Poisson(λ): z⁺ = X + 1, z⁻ = X with X ~ Poisson(λ), c = 1 (∂λ p(k) = p(k − 1) − p(k));
  Exponential(λ): z⁺ ~ Exp(λ), z⁻ ~ Gamma(2, λ), c = 1/λ (∂λ λe^{−λx} = (1/λ)(λe^{−λx} − λ²xe^{−λx})).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from ...core.checks import check_real
from ...core.errors import ConfigError
from ...core.module import Module


class Reparam(Module, pytree=False):
    """Pathwise gradients through the sampled value (needs a reparameterisable distribution)."""

    name = "reparam"


class Reinforce(Module, pytree=False):
    """The score function with a ``baseline``: a number, None (0), or ``"running"`` (an exponential
    moving average of past objective values with weight ``decay`` on the past)."""

    baseline: float | str | None = "running"
    decay: float = 0.9  # of the running baseline

    name = "reinforce"

    def __check_init__(self):
        b = self.baseline
        number = isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b)
        if not (b is None or number or (isinstance(b, str) and b == "running")):
            raise ConfigError(f"`baseline` must be None, 'running' or a finite number, got {b!r}")
        check_real("decay", self.decay, 0.0, 1.0, high_open=True)


class Enumerate(Module, pytree=False):
    """Exact in the choice: the rest of the program run again at every value of a finite support."""

    name = "enum"


class MeasureValued(Module, pytree=False):
    """Measure-valued derivatives (Normal, Bernoulli, Poisson, Exponential choices)."""

    name = "mvd"


NAMES = {"reparam": Reparam, "reinforce": Reinforce, "enum": Enumerate, "mvd": MeasureValued}


def as_estimator(value, site: str):
    if isinstance(value, (Reparam, Reinforce, Enumerate, MeasureValued)):
        return value
    if isinstance(value, str) and value in NAMES:
        return NAMES[value]()
    where = "" if site == "*" else f" for site {site!r}"
    raise ConfigError(f"`estimator`{where} must be one of {', '.join(map(repr, sorted(NAMES)))} or an estimator "
                      f"object (bk.vi.Reinforce(baseline=...)), got {value!r}")


def _base(fn):
    while isinstance(fn, (dist.Independent, dist.ExpandedDistribution, dist.MaskedDistribution)):
        fn = fn.base_dist
    return fn


def check(estimator, fn, site: str):
    """Raise ConfigError when `estimator` cannot serve a site with distribution `fn`."""
    base = _base(fn)
    if isinstance(estimator, Reparam) and not fn.has_rsample:
        discrete = fn.support.is_discrete
        hint = " (use 'enum' or 'reinforce' for a discrete choice)" if discrete else " (use 'reinforce' or 'mvd')"
        raise ConfigError(f"site {site!r}: reparameterisation needs a reparameterisable distribution, got "
                          f"{type(base).__name__}{hint}")
    if isinstance(estimator, Enumerate) and not fn.has_enumerate_support:
        raise ConfigError(f"site {site!r}: enumeration needs a finite support, {type(base).__name__} has none "
                          f"(use 'reinforce')")
    if isinstance(estimator, MeasureValued) and not isinstance(base, MVD_FAMILIES):
        raise ConfigError(f"site {site!r}: measure-valued derivatives are implemented for "
                          f"{', '.join(f.__name__ for f in MVD_FAMILIES)}, got {type(base).__name__} "
                          f"(use 'reinforce', or 'reparam' where it applies)")


def default(fn):
    """Reparameterisation where the distribution allows it, else REINFORCE with a running baseline."""
    return Reparam() if fn.has_rsample else Reinforce()


MVD_FAMILIES = (dist.Normal, dist.BernoulliProbs, dist.Poisson, dist.Exponential)


def mvd_parts(fn, key):
    """[(parameter θ broadcast to the site's shape, c, z⁺, z⁻)] for the measure-valued derivative
    of each parameter of `fn`: ∂E[F]/∂θ_i = c_i (E[F | z_i = z⁺_i] − E[F | z_i = z⁻_i])."""
    base = _base(fn)
    shape = fn.shape()
    if isinstance(base, dist.Normal):
        loc, scale = (jnp.broadcast_to(v, shape) for v in (base.loc, base.scale))
        k1, k2, k3 = jax.random.split(key, 3)
        w = jnp.sqrt(-2.0 * jnp.log1p(-jax.random.uniform(k1, shape, loc.dtype)))  # Rayleigh(1) = Weibull(2, √2)
        # double-sided Maxwell: ± |chi with 3 dof|
        m = jnp.linalg.norm(jax.random.normal(k2, (*shape, 3), loc.dtype), axis=-1)
        sign = jnp.where(jax.random.bernoulli(k3, 0.5, shape), 1.0, -1.0)
        z = jax.random.normal(jax.random.fold_in(k3, 1), shape, loc.dtype)
        return [(loc, 1.0 / (scale * jnp.sqrt(2 * jnp.pi)), loc + scale * w, loc - scale * w),
                (scale, 1.0 / scale, loc + scale * sign * m, loc + scale * z)]
    if isinstance(base, dist.BernoulliProbs):
        p = jnp.broadcast_to(base.probs, shape)
        return [(p, jnp.ones_like(p), jnp.ones_like(p), jnp.zeros_like(p))]
    if isinstance(base, dist.Poisson):
        rate = jnp.broadcast_to(base.rate, shape)
        x = jax.random.poisson(key, rate, shape).astype(rate.dtype)  # one X for both: a coupled pair
        return [(rate, jnp.ones_like(rate), x + 1, x)]
    if isinstance(base, dist.Exponential):
        rate = jnp.broadcast_to(base.rate, shape)
        k1, k2 = jax.random.split(key)
        e1, e2 = (jax.random.exponential(k, shape, rate.dtype) for k in (k1, k2))
        return [(rate, 1.0 / rate, e1 / rate, (e1 + e2) / rate)]  # Exp(λ) and Gamma(2, λ) sharing e1
    raise ConfigError(f"measure-valued derivatives are not implemented for {type(base).__name__}")


def chooser(spec):
    """(site name, distribution) -> estimator, from a setting: None (the default per site), one
    name or estimator for every site, or a dict site -> estimator (the default for the others).
    Deterministic (Delta) sites are always pathwise; invalid pairings raise ConfigError."""
    per_site = {k: as_estimator(v, k) for k, v in spec.items()} if isinstance(spec, dict) else {}
    everywhere = None if spec is None or isinstance(spec, dict) else as_estimator(spec, "*")

    def choose(name, fn):
        if isinstance(fn, dist.Delta):
            return Reparam()
        chosen = per_site.get(name) or everywhere or default(fn)
        check(chosen, fn, name)
        return chosen

    return choose
