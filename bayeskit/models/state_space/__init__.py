"""State-space models for sequential Monte Carlo (`bk.ParticleFilter`, `bk.PaRIS`)."""

from .base import StateSpaceModel, state_space_dataclass
from .library import LinearGaussian, NonlinearGrowth, StochasticVolatility

__all__ = ["LinearGaussian", "NonlinearGrowth", "StateSpaceModel", "StochasticVolatility", "state_space_dataclass"]
