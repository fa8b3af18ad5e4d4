"""State-space models for sequential Monte Carlo (`bk.ParticleFilter`, `bk.PaRIS`, `bk.ParticleGibbs`)."""

from .base import StateSpaceModel
from .library import LinearGaussian, NonlinearGrowth, StochasticVolatility

__all__ = ["LinearGaussian", "NonlinearGrowth", "StateSpaceModel", "StochasticVolatility"]
