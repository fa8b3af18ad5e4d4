"""Diagnostics of Posteriors: convergence (R-hat, ESS, MCSE, divergences, E-BFMI) and plots.

All ArviZ calls live in `arviz_bridge`.
"""

from .arviz_bridge import bfmi, ess, mcse, rhat, summary, to_inference_data
from .convergence import ConvergenceReport, check, warn_if_problems
from .plots import save_rank_plot, save_trace_plot

__all__ = [
    "ConvergenceReport", "bfmi", "check", "ess", "mcse", "rhat", "save_rank_plot", "save_trace_plot",
    "summary", "to_inference_data", "warn_if_problems",
]
