"""Normalised dual activations ř of Radhakrishnan, Belkin & Uhler (PNAS 2023).

For inputs on the unit sphere and an activation φ with E[φ(u)²] = 1 (u ~ N(0, 1)), the NNGP of one
layer is a function of ρ = ⟨x, z⟩ alone: ř(ρ) = E[φ(u)φ(v)] with Corr(u, v) = ρ. Written in the
Hermite basis φ = Σ a_k h_k it is ř(ρ) = Σ a_k² ρ^k: a power series with non-negative coefficients
and ř(1) = 1. Deep kernels iterate it (`wide_deep`), so besides ř and ř′ every dual here gives the
two forms the iteration needs to stay accurate at depth 10⁴–10⁵:

* ``one_minus(δ)`` = 1 − ř(1 − δ), exact to relative precision as δ → 0 (points that nearly coincide);
* ``ratio(ρ)`` = ř(ρ)/ρ, finite at ρ = 0 (only when ř(0) = 0: then Σ_ℓ → 0 geometrically and is
  carried as a logarithm).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from ...core.checks import check_positive
from ...core.errors import ConfigError
from ...core.module import Module, field

SERIES_BELOW = 1e-4  # |ρ| below which ratios use their Taylor series (error ~ρ⁴ < 1e-16)


def signed_logaddexp(m1, s1, m2, s2):
    """log|s1 e^m1 + s2 e^m2| and its sign (−inf, 0 for an exact zero)."""
    top = jnp.maximum(m1, m2)
    safe = jnp.where(jnp.isfinite(top), top, 0.0)
    total = s1 * jnp.exp(m1 - safe) + s2 * jnp.exp(m2 - safe)
    return jnp.where(total != 0, safe + jnp.log(jnp.abs(total)), -jnp.inf), jnp.sign(total)


class DualActivation(Module, pytree=False):
    """A normalised dual activation ř: [−1, 1] → [−1, 1], ř(1) = 1, with non-negative Taylor coefficients.

    Subclasses give ``value``, ``derivative``, ``one_minus`` and ``derivative_near_one`` (ř′(1 − δ)),
    and ``ratio`` when ř(0) = 0. ``at_zero``, ``slope_at_zero`` and ``slope_at_one`` (ř(0), ř′(0),
    ř′(1)) decide the infinite-depth limit (`deep_limits`).
    """

    def value(self, rho):  # pragma: no cover - abstract
        raise NotImplementedError

    def derivative(self, rho):  # pragma: no cover - abstract
        raise NotImplementedError

    def one_minus(self, delta):
        return 1.0 - self.value(1.0 - delta)

    def derivative_near_one(self, delta):
        return self.derivative(1.0 - delta)

    def log_ratio(self, log_abs, sign):
        """(log|ř(Σ)/Σ|, its sign) for Σ = sign·e^log_abs, which may lie far below float64's range."""
        r = self.ratio(sign * jnp.exp(log_abs))
        return jnp.log(jnp.abs(r)), jnp.sign(r)

    def ratio(self, rho):
        raise ConfigError(f"{type(self).__name__} has ř(0) = {self.at_zero:g} ≠ 0: ř(ρ)/ρ is not defined at 0")

    @property
    def at_zero(self) -> float:
        return _constant(self.value, 0.0)

    @property
    def slope_at_zero(self) -> float:
        return _constant(self.derivative, 0.0)

    @property
    def slope_at_one(self) -> float:
        return _constant(self.derivative_near_one, 0.0)


def _constant(fn, at) -> float:
    """fn(at) as a Python float, evaluated now even inside a traced function."""
    import jax

    with jax.ensure_compile_time_eval():
        return float(fn(jnp.asarray(at)))


class ReLU(DualActivation):
    """ReLU (normalised, φ(x) = √2·max(x, 0)): ř(ρ) = (ρ(π − arccos ρ) + √(1 − ρ²))/π, ř′(ρ) = (π − arccos ρ)/π.

    ř(0) = 1/π > 0: deep ReLU networks tend to the majority vote.
    """

    def value(self, rho):
        rho = jnp.clip(rho, -1.0, 1.0)
        return (rho * (math.pi - jnp.arccos(rho)) + jnp.sqrt(jnp.maximum(1.0 - rho * rho, 0.0))) / math.pi

    def derivative(self, rho):
        return (math.pi - jnp.arccos(jnp.clip(rho, -1.0, 1.0))) / math.pi

    def one_minus(self, delta):
        # arccos(1 − δ) = 2 asin(√(δ/2)) and √(1 − ρ²) = √(δ(2 − δ)): no cancellation as δ → 0
        # with s = √(δ/2), (1 − δ)θ − √(δ(2 − δ)) = −(8/3)s³ − (4/15)s⁵ − (3/35)s⁷ − …: the series
        # below δ = 1e-4 (where the two terms cancel to ~√δ relative precision)
        delta = jnp.clip(delta, 0.0, 2.0)
        s = jnp.sqrt(delta / 2.0)
        theta = 2.0 * jnp.arcsin(s)
        direct = (1.0 - delta) * theta - jnp.sqrt(delta * (2.0 - delta))
        series = -s**3 * (8.0 / 3.0 + s * s * (4.0 / 15.0 + s * s * 3.0 / 35.0))
        return (delta * math.pi + jnp.where(delta < 1e-4, series, direct)) / math.pi

    def derivative_near_one(self, delta):
        return (math.pi - 2.0 * jnp.arcsin(jnp.sqrt(jnp.clip(delta, 0.0, 2.0) / 2.0))) / math.pi


class Erf(DualActivation):
    """erf (Williams 1997, unit-variance inputs, normalised): ř(ρ) = asin(2ρ/3)/asin(2/3)."""

    def value(self, rho):
        return jnp.arcsin(2.0 * rho / 3.0) / _ASIN_TWO_THIRDS

    def derivative(self, rho):
        return (2.0 / 3.0) / jnp.sqrt(1.0 - 4.0 * rho * rho / 9.0) / _ASIN_TWO_THIRDS

    def one_minus(self, delta):
        # asin a − asin b = asin((a² − b²)/(a√(1 − b²) + b√(1 − a²))), a = 2/3, b = 2(1 − δ)/3
        near = jnp.minimum(delta, 0.5)
        a, b = 2.0 / 3.0, 2.0 * (1.0 - near) / 3.0
        numerator = (2.0 * near / 3.0) * (a + b)
        stable = jnp.arcsin(numerator / (a * jnp.sqrt(1.0 - b * b) + b * math.sqrt(1.0 - a * a))) / _ASIN_TWO_THIRDS
        return jnp.where(delta < 0.5, stable, 1.0 - self.value(1.0 - delta))

    def ratio(self, rho):
        small = jnp.abs(rho) < SERIES_BELOW
        safe = jnp.where(small, 1.0, rho)
        t = 2.0 * rho / 3.0
        series = (2.0 / 3.0) * (1.0 + t * t / 6.0) / _ASIN_TWO_THIRDS
        return jnp.where(small, series, jnp.arcsin(2.0 * safe / 3.0) / safe / _ASIN_TWO_THIRDS)


_ASIN_TWO_THIRDS = math.asin(2.0 / 3.0)


class Sine(DualActivation):
    """sin(ωx), normalised: ř(ρ) = sinh(aρ)/sinh(a) with ``scale`` a = ω².

    ř(0) = 0, ř′(0) = a/sinh a, ř′(1) = a coth a: the deep limit is the singular kernel
    ‖x − z‖^(−α) with α growing from 1 (a → 0) without bound; `design_activation` picks a for an α.
    """

    scale: float = 1.0

    def __check_init__(self):
        check_positive("scale", self.scale)
        if self.scale > 700:
            raise ConfigError(f"`scale` must be at most 700 (sinh overflows in float64), got {self.scale}")

    def value(self, rho):
        return jnp.sinh(self.scale * rho) / math.sinh(self.scale)

    def derivative(self, rho):
        return self.scale * jnp.cosh(self.scale * rho) / math.sinh(self.scale)

    def one_minus(self, delta):
        # sinh a − sinh(a − aδ) = 2 cosh(a(1 − δ/2)) sinh(aδ/2)
        a = self.scale
        return 2.0 * jnp.cosh(a * (1.0 - delta / 2.0)) * jnp.sinh(a * delta / 2.0) / math.sinh(a)

    def ratio(self, rho):
        a = self.scale
        small = jnp.abs(rho) < SERIES_BELOW
        safe = jnp.where(small, 1.0, rho)
        series = a * (1.0 + (a * rho) ** 2 / 6.0) / math.sinh(a)
        return jnp.where(small, series, jnp.sinh(a * safe) / safe / math.sinh(a))


def _as_coefficients(value):
    c = np.asarray(value, dtype=float).reshape(-1)
    return tuple(float(v) for v in c)


class Polynomial(DualActivation):
    """ř(ρ) = Σ_k c_k ρ^k from ``coefficients`` (c_0, c_1, ...): non-negative, rescaled to sum to 1 so
    that ř(1) = 1 (e.g. (0, 0.5, 0, 0, 0, 0, 0, 0.5) is the paper's ρ⁷/2 + ρ/2, consistent in 2-D).

    The activation is φ = Σ √c_k h_k in the normalised Hermite basis.
    """

    coefficients: tuple = field(converter=_as_coefficients, default=(0.0, 1.0))

    def __check_init__(self):
        c = np.asarray(self.coefficients)
        if c.size == 0 or not np.all(np.isfinite(c)) or np.any(c < 0) or c.sum() <= 0:
            raise ConfigError(f"`coefficients` must be finite, non-negative and not all zero (a dual activation is a "
                              f"power series with non-negative coefficients), got {self.coefficients}")
        object.__setattr__(self, "coefficients", tuple(float(v) for v in c / c.sum()))

    def value(self, rho):
        return sum(c * rho**k for k, c in enumerate(self.coefficients) if c)

    def derivative(self, rho):
        return sum(k * c * rho ** (k - 1) for k, c in enumerate(self.coefficients) if c and k) + 0.0 * rho

    def one_minus(self, delta):
        # 1 − (1 − δ)^k = −expm1(k log1p(−δ)) for δ < 1 (relative precision as δ → 0)
        safe = jnp.minimum(delta, 0.5)
        near = sum(c * -jnp.expm1(k * jnp.log1p(-safe)) for k, c in enumerate(self.coefficients) if c and k)
        near = near + 0.0 * delta
        return jnp.where(delta < 0.5, near, 1.0 - self.value(1.0 - delta))

    def ratio(self, rho):
        if self.coefficients[0]:
            return super().ratio(rho)
        return sum(c * rho ** (k - 1) for k, c in enumerate(self.coefficients) if c) + 0.0 * rho

    def log_ratio(self, log_abs, sign):
        # Σ_k c_k Σ^(k−1) summed in logs: with c_1 = 0 (ř′(0) = 0) the ratio itself underflows once Σ does
        terms = [(math.log(c) + (k - 1) * log_abs, sign ** (k - 1)) for k, c in enumerate(self.coefficients)
                 if c and k]
        log_r, sign_r = terms[0]
        for log_t, sign_t in terms[1:]:
            log_r, sign_r = signed_logaddexp(log_r, sign_r, log_t, sign_t)
        return log_r + 0.0 * log_abs, sign_r + 0.0 * log_abs


ACTIVATIONS = {"relu": ReLU, "erf": Erf, "sine": Sine}


def as_dual(activation) -> DualActivation:
    """A `DualActivation` from an instance or a name ("relu", "erf", "sine")."""
    if isinstance(activation, DualActivation):
        return activation
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]()
    raise ConfigError(f"`activation` must be a dual activation (ReLU(), Erf(), Sine(scale), Polynomial(coefficients)) "
                      f"or one of {sorted(ACTIVATIONS)}, got {activation!r}")
