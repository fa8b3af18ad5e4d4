"""Sequential Monte Carlo for state-space models (`bk.ParticleFilter`, `bk.PaRIS`)."""

from .engine import PaRIS, ParticleFilter, ParticleGibbs
from .filter import Proposal
from .posterior import SMCPosterior

__all__ = ["PaRIS", "ParticleFilter", "ParticleGibbs", "Proposal", "SMCPosterior"]
