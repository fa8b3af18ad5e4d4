"""What infinitely deep networks classify like, in closed form, and activations designed for a limit.

Iterating a normalised dual ř (convex on [0, 1], ř(1) = 1) sends every ρ < 1 towards a fixed point,
and the kernel's shape near ρ = 1 decides the classifier (Radhakrishnan, Belkin & Uhler 2023):

* ř(0) > 0: the kernel flattens to a constant off the diagonal: **majority vote**;
* ř(0) = 0, ř′(0) = 0: it decays super-exponentially in the distance: **1-nearest neighbour**;
* ř(0) = 0, 0 < ř′(0) < 1 < ř′(1): off the diagonal Σ_L ≈ ř′(0)^L σ(ρ), with σ the Koenigs function of
  ř at its attracting fixed point 0 (σ(ř(ρ)) = ř′(0) σ(ρ), σ′(0) = 1), while the diagonal stays 1: the
  normalised training Gram tends to I and the classifier to **sign Σ_i y_i σ(⟨x, x_i⟩)**, a singular
  kernel vote. `koenigs_log` computes σ exactly (to float64 precision), where the paper keeps only
  its singularity, σ(ρ) ~ C·‖x − z‖^(−α).

Derivation of α. Let δ_ℓ = 1 − Σ_ℓ for two points with δ_0 = ‖x − z‖²/2 small. Near 1,
δ_{ℓ+1} ≈ ř′(1) δ_ℓ, so the iterate stays near 1 for ℓ* = ln(1/δ_0)/ln ř′(1) layers, then decays
like ř′(0)^(L − ℓ*). Hence Σ_L ∝ ř′(0)^L · δ_0^(−β), β = ln(1/ř′(0))/ln ř′(1): σ(ρ) ~ δ^(−β) and
α = 2β = 2 ln(1/ř′(0))/ln ř′(1) (the paper's formula).

The NTK has the same limit, but reaches it later. K_L = Σ_ℓ Σ_ℓ · ∂Σ_L/∂Σ_ℓ ≈ ř′(0)^L (L σ(ρ) + G(ρ)),
where G, dominated by the chain-rule product ∂Σ_L/∂ρ, is one power of δ more singular (~δ^(−β−1)).
So at depth L the NTK looks like ‖x − z‖^(−α−2) for pairs with δ ≪ 1/L and like σ for δ ≫ 1/L: the
limit needs depth ≫ 1/(1 − ⟨x, z⟩) (the paper's condition), and the NTK approaches it like 1/L.
All of this is checked against deep recursions in the tests.
On the sphere S^(d−1) the Hilbert kernel α = d − 1 makes the vote consistent (Devroye et al. 1998).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...core.checks import check_choice, check_int, check_positive
from ...core.errors import ConfigError
from .dual_activations import DualActivation, Polynomial, Sine, as_dual


@dataclass(frozen=True)
class DepthLimit:
    """The classifier an infinitely deep network implements: ``rule`` is "majority", "nearest_neighbour"
    or "singular" (then ``alpha`` is the exponent of ‖x − z‖^(−α))."""

    rule: str
    alpha: float | None = None

    def __str__(self):
        if self.rule == "singular":
            return f"singular kernel ‖x − z‖^(−{self.alpha:.6g})"
        return self.rule.replace("_", " ")


def depth_limit(activation, kind: str = "ntk") -> DepthLimit:
    """The infinite-depth limit of the NNGP (``kind="nngp"``) or NTK (``"ntk"``) of `activation` (the same
    rule for both; `kind` is checked and kept for symmetry with `WideDeep`)."""
    act = as_dual(activation)
    check_choice("kind", kind, ("ntk", "nngp"))
    if act.at_zero > 0:
        return DepthLimit("majority")
    d0, d1 = act.slope_at_zero, act.slope_at_one
    if d0 == 0:
        return DepthLimit("nearest_neighbour")
    if d1 <= 1.0:
        raise ConfigError(f"{act!r} is the identity dual (a linear network): its kernel is ⟨x, z⟩ at every depth "
                          f"and has no deep limit")
    beta = math.log(1.0 / d0) / math.log(d1)
    return DepthLimit("singular", 2.0 * beta)


def koenigs_steps(activation) -> int:
    """Iterations after which ř^n(ρ)/ř′(0)^n equals the Koenigs function to float64 precision for every
    δ = 1 − ρ ≥ 1e-17: ln(1e17)/ln ř′(1) steps to leave ρ ≈ 1, then enough for |Σ_n| < 1e-17."""
    act = as_dual(activation)
    leave = math.log(1e17) / math.log(act.slope_at_one)
    settle = math.log(1e17) / math.log(1.0 / act.slope_at_zero)
    return int(math.ceil(leave + settle)) + 10


def koenigs_log(delta, activation):
    """(sign, log|σ(1 − δ)|) of the Koenigs function σ = lim ř^n/ř′(0)^n: the infinitely deep kernel of a
    singular-regime dual, normalised so σ′(0) = 1."""
    from .wide_deep import TABLE_ABOVE, _recursion, _table, interpolate_table

    act = as_dual(activation)
    n = koenigs_steps(act)
    if n * math.prod(delta.shape) > TABLE_ABOVE:  # large problems: the same tables as `WideDeep`
        sign, log_s = interpolate_table(delta, _table(act, n, "nngp", 8192))
    else:
        sign, log_s = _recursion(delta, act, n, "nngp")
    return sign, log_s - n * math.log(act.slope_at_zero)


def hilbert_alpha(dim: int) -> float:
    """α = d − 1 of the Hilbert kernel for inputs in R^d mapped onto the sphere S^(d−1)."""
    check_int("dim", dim, 2)
    return float(dim - 1)


def _solve(f, lo, hi, target):
    from scipy.optimize import brentq

    return brentq(lambda t: f(t) - target, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=500)


def _sine_beta(a):
    # ln(sinh a / a) / ln(a coth a), in a form that stays accurate for small a
    log_ratio = math.log(math.expm1(2 * a) / (2 * a)) - a  # ln(sinh a / a)
    return log_ratio / math.log(a / math.tanh(a))


def design_activation(alpha: float, *, family: str = "auto", degree: int | None = None) -> DualActivation:
    """A dual activation whose infinitely deep NNGP and NTK are singular like ‖x − z‖^(−alpha).

    ``family="sine"`` solves for the scale a of sinh(aρ)/sinh(a) (reaches α > 1 for the NNGP);
    ``"polynomial"`` solves for c in (1 − c)ρ + c ρ^k (k = ``degree``; reaches α > 2/(k − 1));
    ``"auto"`` takes the sine where it reaches, else a polynomial of a degree that does. For the NTK
    α must exceed 2 (its limit is one power of ‖x − z‖² more singular than the NNGP's).
    ``design_activation(hilbert_alpha(d))`` gives the consistent classifier on d-dimensional inputs.
    """
    check_positive("alpha", alpha)
    check_choice("family", family, ("auto", "sine", "polynomial"))
    beta = alpha / 2.0
    if family == "auto":
        family = "sine" if beta > _sine_beta(1e-2) else "polynomial"
    if family == "sine":
        if beta <= 0.5:
            raise ConfigError(f"a sine dual reaches only β = α/2 > 1/2 (NNGP α > 1), got β = {beta:g}; "
                              f"use family='polynomial'")
        hi = 1.0
        while _sine_beta(hi) < beta:
            hi *= 2.0
            if hi > 700:
                raise ConfigError(f"`alpha` = {alpha} needs a sine scale beyond 700 (float64 overflow)")
        lo = 1e-2  # β(a) = 1/2 + a²/90 + …: below this the float64 form loses digits; a polynomial reaches there
        if _sine_beta(lo) >= beta:
            raise ConfigError(f"a sine dual reaches β = α/2 ≥ {_sine_beta(lo):.6f} accurately, got β = {beta:g}; "
                              f"use family='polynomial'")
        return Sine(scale=_solve(_sine_beta, lo, hi, beta))
    k = degree if degree is not None else max(2, math.ceil(1.0 / beta) + 2)
    check_int("degree", k, 2)
    if beta <= 1.0 / (k - 1):
        raise ConfigError(f"(1 − c)ρ + cρ^{k} reaches only β > 1/(k − 1) = {1 / (k - 1):g}; raise `degree`")

    def poly_beta(c):
        return math.log(1.0 / (1.0 - c)) / math.log1p((k - 1) * c)

    c = _solve(poly_beta, 1e-12, 1.0 - 1e-15, beta)
    coefficients = [0.0] * (k + 1)
    coefficients[1], coefficients[k] = 1.0 - c, c
    return Polynomial(coefficients)
