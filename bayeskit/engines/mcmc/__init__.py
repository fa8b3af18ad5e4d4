"""MCMC engines: NUTS and HMC through BlackJAX."""

from .hmc import HMC, NUTS

__all__ = ["HMC", "NUTS"]
