"""Sequential Monte Carlo for state-space models (`bk.ParticleFilter`, `bk.PaRIS`)."""

from .engine import PaRIS, ParticleFilter, ParticleGibbs
from .filter import Proposal
from .learning import Learn
from .posterior import SMCPosterior

__all__ = ["Learn", "PaRIS", "ParticleFilter", "ParticleGibbs", "Proposal", "SMCPosterior"]
