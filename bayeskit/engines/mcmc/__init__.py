"""MCMC engines: NUTS and HMC through BlackJAX."""

from ...core.model import NumPyroProgram
from ...core.registry import register_default
from .hmc import HMC, NUTS

register_default(NumPyroProgram, NUTS)

__all__ = ["HMC", "NUTS"]
