"""Is a sample uniform on (0, 1)? The ECDF test with simultaneous bands of Säilynoja, Bürkner and
Vehtari (2022, "Graphical test for discrete uniformity and its applications in goodness-of-fit
evaluation and multiple sample comparison"), as calibration checks (SBC ranks, PIT values) need it.

For N values u with empirical CDF F̂, at K evaluation points z_j = j/K (j = 1 … K−1) the counts
N F̂(z_j) are Binomial(N, z_j) under uniformity. The statistic is the smallest two-sided tail
probability over the points,

    γ = min_j 2 min{ B(N F̂(z_j); N, z_j), 1 − B(N F̂(z_j) − 1; N, z_j) },

small when F̂ strays anywhere. Its null law depends on (N, K) only and is simulated once (seeded):
the p-value is P₀(γ ≤ γ_obs), and the band of simultaneous level 1 − α at z_j is the binomial
interval [B⁻¹(γ_α/2), B⁻¹(1 − γ_α/2)] / N with γ_α the α-quantile of the null γ. Unlike a
histogram's χ² test, no bins are chosen, and the band says *where* the ECDF strays.

SBC ranks r ∈ {0, …, L} are made continuous first, u = (r + V)/(L + 1) with V ~ U(0, 1): exactly
uniform when the ranks are (`randomised_pit`).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

NULL_SIMULATIONS = 4000  # draws of the null γ: the p-value's Monte Carlo sd is below 0.004 at p = 0.05
NULL_SEED = 20220317  # the null law is a property of (N, K), not of a user's seed

@dataclasses.dataclass(frozen=True)
class UniformityTest:
    """The test of one sample: ``p_value``, the statistic ``gamma``, the evaluation points ``z``
    with the sample's ECDF there (``ecdf``) and the simultaneous band (``lower``, ``upper``) of
    level ``1 − alpha``."""

    p_value: float
    gamma: float
    z: np.ndarray
    ecdf: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    alpha: float

    @property
    def outside(self) -> bool:
        """Whether the ECDF leaves the band somewhere (equivalently p < alpha, up to simulation error)."""
        return bool(np.any(self.ecdf < self.lower) or np.any(self.ecdf > self.upper))

def evaluation_points(n: int) -> int:
    """K: as many points as values, at most 100 (Säilynoja et al.: K = N is the most powerful for
    small N; beyond 100 points the band hardly changes and the null simulation costs more)."""
    return int(min(max(n, 2), 100))

def randomised_pit(ranks, draws: int, key: np.random.Generator) -> np.ndarray:
    """Ranks r ∈ {0 … draws} made continuous: (r + V)/(draws + 1), V ~ U(0, 1), uniform exactly
    when the ranks are."""
    ranks = np.asarray(ranks, dtype=float)
    return (ranks + key.uniform(size=ranks.shape)) / (draws + 1)

def _tail_probability(counts, n: int, z) -> np.ndarray:
    """2 min{P(X ≤ c), P(X ≥ c)} for X ~ Binomial(n, z), elementwise (capped at 1)."""
    from scipy.stats import binom

    lower = binom.cdf(counts, n, z)
    upper = binom.sf(counts - 1, n, z)
    return np.minimum(1.0, 2.0 * np.minimum(lower, upper))

def _counts(u: np.ndarray, z: np.ndarray) -> np.ndarray:
    """N F̂(z) for each row of u (..., N): how many values are ≤ each z."""
    return np.stack([np.searchsorted(row, z, side="right") for row in np.sort(u.reshape(-1, u.shape[-1]), axis=-1)])

@functools.lru_cache(maxsize=32)
def null_gamma(n: int, k: int) -> np.ndarray:
    """Sorted draws of γ for n uniform values and k evaluation points (cached per (n, k))."""
    z = np.arange(1, k) / k
    u = np.random.default_rng(NULL_SEED).uniform(size=(NULL_SIMULATIONS, n))
    return np.sort(_tail_probability(_counts(u, z), n, z).min(axis=1))

def uniformity_test(u, *, alpha: float = 0.05, points: int | None = None) -> UniformityTest:
    """The ECDF test of a 1-D sample `u` of values in [0, 1] (see the module docstring)."""
    from scipy.stats import binom

    u = np.asarray(u, dtype=float).ravel()
    if u.size < 2 or not np.all((u >= 0) & (u <= 1)):
        raise ValueError(f"`u` must hold at least 2 values in [0, 1], got {u.size} values "
                         f"in [{np.min(u, initial=np.nan)}, {np.max(u, initial=np.nan)}]")
    n = u.size
    k = points or evaluation_points(n)
    z = np.arange(1, k) / k
    counts = _counts(u, z)[0]
    gamma = float(_tail_probability(counts, n, z).min())
    null = null_gamma(n, k)
    # P0(γ ≤ γ_obs), with the observed sample counted among the simulations (never exactly 0)
    p = (np.searchsorted(null, gamma, side="right") + 1) / (null.size + 1)
    g_alpha = float(np.quantile(null, alpha))
    lower = binom.ppf(g_alpha / 2, n, z) / n
    upper = binom.ppf(1 - g_alpha / 2, n, z) / n
    return UniformityTest(float(p), gamma, z, counts / n, lower, upper, alpha)
