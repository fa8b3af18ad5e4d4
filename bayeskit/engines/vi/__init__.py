"""Programmable variational inference (`bk.VI`): objectives are programs, estimators are per choice."""

from .engine import VI, VIPosterior
from .estimators import Enumerate, MeasureValued, Reinforce, Reparam
from .families import Flow, FullRank, LowRank, MeanField
from .objectives import average, elbo, forward_kl, iwelbo, rws
from .runtime import Draw, gradient_samples

__all__ = ["VI", "Draw", "Enumerate", "Flow", "FullRank", "LowRank", "MeanField", "MeasureValued", "Reinforce",
           "Reparam", "VIPosterior", "average", "elbo", "forward_kl", "gradient_samples", "iwelbo", "rws"]
