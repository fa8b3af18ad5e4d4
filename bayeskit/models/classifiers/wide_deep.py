"""Kernels of infinitely wide, arbitrarily deep networks on the sphere (Radhakrishnan, Belkin & Uhler 2023).

Inputs are mapped onto the unit sphere, where one layer's NNGP is the normalised dual ř of ρ = ⟨x, z⟩:

    Σ_0 = ρ,   Σ_ℓ = ř(Σ_{ℓ−1}),          K_0 = ρ,   K_ℓ = Σ_ℓ + K_{ℓ−1} ř′(Σ_{ℓ−1})     (ℓ = 1 … L)

Σ_L is the NNGP and K_L the NTK of an L-hidden-layer network. At depth 10⁴–10⁵ the values span far
more than float64's range (K_L(1) grows like ř′(1)^L; off-diagonal entries fall like ř′(0)^L), so
the recursion is carried in logarithms with signs, δ = 1 − Σ is carried separately where Σ is near 1
(`dual_activations.one_minus`), and log|Σ| through ř(ρ)/ρ where Σ decays to 0. The kernel returned is
normalised, K̃ = K_L / K_L(1) (so K̃(x, x) = 1): a positive rescaling that changes no kernel
interpolation and is absorbed by a process's scale σ².

Two evaluation methods (``method``): "exact" runs the recursion on every pair (cost depth × n1 × n2);
"table" runs it once on grids (`_table`: even in ln(1 ∓ ρ) near ρ = ±1, even in ρ between) and
interpolates linearly (error ≤ h²/8 · max|f″| for grid step h; measured in the tests). "auto" picks the table
when depth × n1 × n2 exceeds ``TABLE_ABOVE``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ...core.checks import check_choice, check_int
from ...core.errors import ConfigError
from ...core.module import field
from ..kernels.base import Kernel
from .deep_limits import depth_limit
from .dual_activations import DualActivation, as_dual, signed_logaddexp

TABLE_ABOVE = 2e7  # depth × pairs above which method="auto" interpolates a table (~2 s of exact recursion)
TABLE_MIN_DELTA = 1e-17  # 1 − ⟨x, z⟩ in float64 is 0 or above ~1.1e-16


def deep_recursion(delta, activation: DualActivation, depth: int, kind: str = "ntk"):
    """(sign, log|K̃|) of the depth-`depth` NNGP or NTK at δ = 1 − ρ (any shape, float64 advised).

    K̃ is normalised by its value at ρ = 1. Carried state per entry: δ (accurate near Σ = 1),
    log|Σ| and its sign (accurate near Σ = 0), log|K| and its sign; and the scalar log K(1).
    """
    act = as_dual(activation)
    delta = jnp.clip(jnp.asarray(delta), 0.0, 2.0)
    rho = 1.0 - delta
    through_ratio = act.at_zero == 0.0  # Σ_ℓ → 0 geometrically: carry log|Σ| through ř(Σ)/Σ
    log_d1 = math.log(act.slope_at_one)
    with np.errstate(divide="ignore"):
        log_rho = jnp.log(jnp.abs(rho))
    state = (delta, log_rho, jnp.sign(rho), log_rho, jnp.sign(rho), jnp.zeros((), delta.dtype))

    def layer(_, state):
        d, log_s, sign_s, log_k, sign_k, log_c = state
        near_one = d < 0.5
        sigma = jnp.where(near_one, 1.0 - d, sign_s * jnp.exp(log_s))
        if through_ratio:
            log_r, sign_r = act.log_ratio(jnp.where(near_one, jnp.log(jnp.abs(sigma)), log_s),
                                          jnp.where(near_one, 1.0, sign_s))
            log_s_new, sign_s_new = log_s + log_r, sign_s * sign_r
        else:
            v = act.value(sigma)
            log_s_new, sign_s_new = jnp.log(jnp.abs(v)), jnp.sign(v)
        d_new = jnp.where(near_one, act.one_minus(jnp.minimum(d, 0.5)), 1.0 - sign_s_new * jnp.exp(log_s_new))
        slope = jnp.where(near_one, act.derivative_near_one(jnp.minimum(d, 0.5)),
                          act.derivative(jnp.where(near_one, 0.0, sigma)))
        # ř′ ≥ 0 on [0, 1] but may be negative for ρ < 0 (e.g. 0.3 + 1.2ρ): carry its sign
        log_k_new, sign_k_new = signed_logaddexp(log_s_new, sign_s_new, log_k + jnp.log(jnp.abs(slope)),
                                                  sign_k * jnp.sign(slope))
        log_c_new = jnp.logaddexp(0.0, log_c + log_d1)
        return d_new, log_s_new, sign_s_new, log_k_new, sign_k_new, log_c_new

    d, log_s, sign_s, log_k, sign_k, log_c = jax.lax.fori_loop(0, depth, layer, state)
    if kind == "nngp":
        exact_one = d == 0.0
        return jnp.where(exact_one, 1.0, sign_s), jnp.where(exact_one, 0.0, log_s)
    return sign_k, log_k - log_c


def _float64():
    """A context computing in float64 (jax.enable_x64 on current JAX, the experimental one before)."""
    if callable(getattr(jax, "enable_x64", None)):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


_recursion = jax.jit(deep_recursion, static_argnums=(1, 2, 3))  # compiled once per (activation, depth, kind)


@functools.lru_cache(maxsize=32)
def _table(activation: DualActivation, depth: int, kind: str, size: int):
    """The recursion on three grids, computed once per (activation, depth, kind, size), in float64.

    Near ρ = 1 and near ρ = −1 (where odd duals mirror the diagonal: K̃(−1) = −1) the kernel varies
    like a power of the distance, so ``size`` nodes each are spaced evenly in ln(1 ∓ ρ) over
    [ln 1e-17, ln ½]; in between, ``size // 2`` nodes are spaced evenly in ρ. Each segment stores
    log|K̃| where K̃ keeps one sign on it, else the signed K̃ / e^M (M its largest log), which is
    smooth where K̃ crosses 0 (odd duals at ρ = 0).
    """
    with jax.ensure_compile_time_eval(), _float64():
        run = _recursion
        t = np.exp(np.linspace(math.log(TABLE_MIN_DELTA), math.log(0.5), size))
        middle = np.linspace(-0.5, 0.5, max(size // 2, 16))
        deltas = np.concatenate([t, 2.0 - t, 1.0 - middle])
        sign, log_k = (np.asarray(a) for a in run(jnp.asarray(deltas), activation, depth, kind))
    pieces = np.split(np.arange(deltas.size), [size, 2 * size])
    return tuple(_segment(x, sign[i], log_k[i]) for x, i in zip((np.log(t), np.log(t), middle), pieces, strict=True))


def _segment(x, sign, log_k):
    """(x grid, values, sign or None, scale): log|K̃| of one sign, or K̃ / e^scale where the sign changes."""
    if np.all(sign == sign[0]) and sign[0] != 0:
        return x, log_k, float(sign[0]), 0.0
    finite = log_k[np.isfinite(log_k)]
    top = float(finite.max()) if finite.size else 0.0
    return x, sign * np.exp(log_k - top), None, top


def _interpolate(x, segment, dtype):
    """(sign, log|K̃|) at points x of one `_segment`."""
    grid, values, sign, top = segment
    grid, values = jnp.asarray(grid, dtype=dtype), jnp.asarray(values, dtype=dtype)
    value = jnp.interp(x, grid, values)
    if sign is not None:
        return jnp.full_like(x, sign), value
    return jnp.sign(value), jnp.where(value != 0, top + jnp.log(jnp.abs(value)), -jnp.inf)


def interpolate_table(delta, table):
    """(sign, log|K̃|) at δ from `_table`, each δ from the segment that holds it; δ = 0 gives K̃ = 1
    exactly, and δ below the grid (only from inputs closer than float64 resolves) the grid's end."""
    near_one, near_minus_one, middle = table
    dtype = delta.dtype
    sign_1, log_1 = _interpolate(jnp.log(jnp.maximum(delta, 1e-300)), near_one, dtype)
    sign_m, log_m = _interpolate(jnp.log(jnp.maximum(2.0 - delta, 1e-300)), near_minus_one, dtype)
    sign_c, log_c = _interpolate(1.0 - delta, middle, dtype)
    sign = jnp.where(delta <= 0.5, sign_1, jnp.where(delta >= 1.5, sign_m, sign_c))
    log_k = jnp.where(delta <= 0.5, log_1, jnp.where(delta >= 1.5, log_m, log_c))
    return jnp.where(delta == 0.0, 1.0, sign), jnp.where(delta == 0.0, 0.0, log_k)


def sphere_delta(x1, x2):
    """δ = 1 − ⟨x̂, ẑ⟩ = ‖x̂ − ẑ‖²/2 for rows mapped onto the unit sphere, in [0, 2].

    The dot product of two equal unit rows is 1 only to about d roundings, and a deep kernel tells
    δ = 1e-16 from δ = 0 (at depth 3000 the first is already far off the diagonal): δ below 4·d·eps,
    what float64 cannot resolve, is taken as 0, so a point's kernel with itself is exactly 1.
    """
    x1 = x1 / jnp.linalg.norm(x1, axis=-1, keepdims=True)
    x2 = x2 / jnp.linalg.norm(x2, axis=-1, keepdims=True)
    delta = jnp.clip(1.0 - x1 @ x2.T, 0.0, 2.0)
    return jnp.where(delta < 4 * x1.shape[-1] * jnp.finfo(delta.dtype).eps, 0.0, delta)


def _depth(value):
    if isinstance(value, float) and math.isinf(value):
        return math.inf
    return value


class WideDeep(Kernel):
    """NTK (``kind="ntk"``) or NNGP (``"nngp"``) of an infinitely wide network with ``depth`` hidden
    layers and a normalised dual ``activation`` (`ReLU`, `Erf`, `Sine`, `Polynomial`, or a name), on
    inputs mapped onto the unit sphere; normalised so k(x, x) = 1.

    ``depth=math.inf`` is the infinite-depth limit (`depth_limit`): a rule (`KernelClassifier` applies
    it); where the rule is a singular kernel vote, ``matrix`` gives that kernel off the diagonal (the
    Koenigs function σ of ř, `deep_limits`) and +inf on it. ``method``: "auto", "exact" or "table" (module docstring).
    No hyperparameter is a pytree leaf: the depth and the activation are the architecture.
    """

    activation: DualActivation = field(static=True, default="relu", converter=as_dual)
    depth: int | float = field(static=True, default=10, converter=_depth)
    kind: str = field(static=True, default="ntk")
    method: str = field(static=True, default="auto")
    table_size: int = field(static=True, default=8192)

    def __check_init__(self):
        check_choice("kind", self.kind, ("ntk", "nngp"))
        check_choice("method", self.method, ("auto", "exact", "table"))
        check_int("table_size", self.table_size, 16)
        if self.depth != math.inf:
            check_int("depth", self.depth, 0, why="the number of hidden layers (math.inf for the limit)")

    @property
    def limit(self):
        """The infinite-depth limit of this kernel (`DepthLimit`)."""
        return depth_limit(self.activation, self.kind)

    def log_matrix(self, x1, x2):
        """(sign, log|K̃|) of the (n1, n2) kernel matrix: what deep kernels need to be used at all."""
        delta = sphere_delta(x1, x2)
        if self.depth == math.inf:
            return self._limit_log(delta)
        use_table = self.method == "table" or (
            self.method == "auto" and self.depth * delta.shape[0] * delta.shape[1] > TABLE_ABOVE)
        if use_table:
            return interpolate_table(delta, _table(self.activation, int(self.depth), self.kind, self.table_size))
        return _recursion(delta, self.activation, int(self.depth), self.kind)

    def _limit_log(self, delta):
        from .deep_limits import koenigs_log

        limit = self.limit
        if limit.rule != "singular":
            raise ConfigError(f"the infinite-depth limit of this kernel is the {limit} rule, not a kernel: fit it "
                              f"with KernelClassifier, or give a finite `depth`")
        # the Koenigs function σ off the diagonal; the normalised diagonal outgrows it without bound
        sign, log_k = koenigs_log(delta, self.activation)
        return jnp.where(delta == 0.0, 1.0, sign), jnp.where(delta == 0.0, jnp.inf, log_k)

    def matrix(self, x1, x2):
        sign, log_k = self.log_matrix(x1, x2)
        return sign * jnp.exp(log_k)

    def diagonal(self, x):
        if self.depth == math.inf:
            return jnp.full((x.shape[0],), jnp.inf, dtype=x.dtype)
        return jnp.ones((x.shape[0],), dtype=x.dtype)
