"""Diagnostics of Posteriors: convergence (R-hat, ESS, MCSE, divergences, E-BFMI), plots,
calibration of engines (simulation-based calibration, predictive PIT), and comparison of
state-space models by one-step-ahead log predictive densities.

All ArviZ calls live in `arviz_bridge`.
"""

from ..core import registry as _registry
from .arviz_bridge import bfmi, ess, from_groups, mcse, rhat, summary, to_inference_data
from .calibration import SBCResult, pit_calibration, sbc
from .convergence import ConvergenceReport, after_fit, check, warn_if_problems
from .plots import save_rank_plot, save_trace_plot
from .report import report
from .sequential import SequentialELPD, compare_sequential, sequential_elpd
from .uniformity import UniformityTest, uniformity_test

# what `core` delegates to: summaries and ArviZ objects of any Posterior, checks after every fit
_registry.provide("summary", summary)
_registry.provide("to_arviz", to_inference_data)
_registry.provide("inference_data", from_groups)
_registry.provide("report", report)
_registry.add_hook("after_fit", after_fit)

__all__ = [
    "ConvergenceReport", "SBCResult", "SequentialELPD", "UniformityTest", "bfmi", "check", "compare_sequential", "ess",
    "mcse", "pit_calibration", "report", "rhat", "save_rank_plot", "save_trace_plot", "sbc", "sequential_elpd",
    "summary", "to_inference_data", "uniformity_test", "warn_if_problems",
]
