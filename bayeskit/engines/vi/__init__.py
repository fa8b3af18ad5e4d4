"""Programmable variational inference (`bk.VI`): objectives are programs, estimators are per choice."""

from .engine import VI, VIPosterior
from .estimators import Enumerate, MeasureValued, Reinforce, Reparam
from .families import Flow, FullRank, Hierarchical, LowRank, MeanField
from .objectives import average, diwhvi, elbo, forward_kl, hvi, iwelbo, iwhvi, rws
from .runtime import Draw, gradient_samples

__all__ = ["VI", "Draw", "Enumerate", "Flow", "FullRank", "Hierarchical", "LowRank", "MeanField", "MeasureValued",
           "Reinforce", "Reparam", "VIPosterior", "average", "diwhvi", "elbo", "forward_kl", "gradient_samples", "hvi",
           "iwelbo", "iwhvi", "rws"]
