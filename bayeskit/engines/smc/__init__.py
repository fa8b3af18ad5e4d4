"""Sequential Monte Carlo for state-space models (`bk.ParticleFilter`, `bk.PaRIS`, `bk.ParticleGibbs`)."""

from ...core.model import FeynmanKac
from ...core.registry import register_default
from .engine import PaRIS, ParticleFilter, ParticleGibbs
from .learning import Learn
from .posterior import SMCPosterior
from .proposals import GaussianProposal, ParametricProposal, Proposal

register_default(FeynmanKac, ParticleFilter)

__all__ = ["GaussianProposal", "Learn", "PaRIS", "ParametricProposal", "ParticleFilter", "ParticleGibbs", "Proposal",
           "SMCPosterior"]
