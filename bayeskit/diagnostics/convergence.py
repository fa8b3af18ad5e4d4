"""Convergence checks run after every sampling fit, with warnings that carry the numbers."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..core.errors import ConvergenceWarning
from . import chain_stats

RHAT_THRESHOLD = 1.01  # Vehtari et al. (2021)
BFMI_THRESHOLD = 0.3  # Betancourt (2016): below this the energy distribution is poorly explored
ESS_PER_CHAIN = 100  # Vehtari et al. (2021): bulk ESS under 100 per chain makes R-hat and MCSE unreliable


@dataclass(frozen=True)
class ConvergenceReport:
    max_rhat: float
    worst_rhat: str
    min_ess_bulk: float
    divergences: int
    draws: int
    chains: int
    bfmi: tuple[float, ...]

    @property
    def problems(self) -> list[str]:
        out = []
        if self.max_rhat > RHAT_THRESHOLD:
            out.append(f"max R-hat {self.max_rhat:.3f} > {RHAT_THRESHOLD} (for {self.worst_rhat})")
        if self.divergences:
            pct = 100 * self.divergences / self.draws
            out.append(f"{self.divergences} divergent transitions ({pct:.1f}% of {self.draws} draws)")
        need = ESS_PER_CHAIN * self.chains
        if self.min_ess_bulk < need:
            out.append(f"min ESS_bulk {self.min_ess_bulk:.0f} < {need} ({ESS_PER_CHAIN} per chain)")
        low = [f"{b:.2f}" for b in self.bfmi if b < BFMI_THRESHOLD]
        if low:
            out.append(f"E-BFMI below {BFMI_THRESHOLD} in {len(low)} chain(s): {', '.join(low)}")
        return out


def check(posterior) -> ConvergenceReport:
    """R-hat, bulk ESS, divergences and E-BFMI of a draws posterior."""
    chains, draws = posterior.shape
    # NumPy, equal to ArviZ's estimators (tests/test_chain_stats.py): ArviZ's import and xarray
    # round trip would cost more than sampling a small model
    both = {k: chain_stats.rhat_and_ess_bulk(v) for k, v in posterior.draws.items()}
    rh, es = {k: v[0] for k, v in both.items()}, {k: v[1] for k, v in both.items()}
    max_rhat, worst = 1.0, ""
    for name, v in rh.items():
        v = np.asarray(v, dtype=float)
        if np.isfinite(v).any() and np.nanmax(v) > max_rhat:
            max_rhat, worst = float(np.nanmax(v)), name
    finite_ess = [float(np.min(v[np.isfinite(v)])) for v in map(np.asarray, es.values()) if np.isfinite(v).any()]
    min_ess = min(finite_ess, default=float("nan"))
    stats = posterior.sample_stats
    divergences = int(np.sum(stats["diverging"])) if "diverging" in stats else 0
    bfmi = tuple(float(b) for b in chain_stats.bfmi(stats["energy"])) if "energy" in stats and draws > 1 else ()
    return ConvergenceReport(max_rhat, worst, min_ess, divergences, chains * draws, chains, bfmi)


def warn_if_problems(posterior, stacklevel: int = 3) -> ConvergenceReport | None:
    """Warn, with the numbers, when the Markov chains of a posterior show convergence problems."""
    report = check(posterior)
    if report.problems:
        warnings.warn(
            "the draws may not represent the posterior: " + "; ".join(report.problems),
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
    return report


def after_fit(posterior, stacklevel: int = 3) -> None:
    """Run after every `bk.fit` (a hook in `core.registry`): warn about the problems the posterior
    reports itself (`Posterior.problems`), and check the Markov chains of a sampler."""
    own = posterior.problems() if hasattr(posterior, "problems") else []
    if own:
        warnings.warn("the draws may not represent the posterior: " + "; ".join(own), ConvergenceWarning,
                      stacklevel=stacklevel + 1)
    if getattr(posterior, "markov", False) and getattr(posterior, "sample_stats", None):
        warn_if_problems(posterior, stacklevel=stacklevel + 1)
