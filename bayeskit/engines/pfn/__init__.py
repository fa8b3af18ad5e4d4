"""Prior-data fitted networks (PFNs): a transformer trained once on datasets drawn from a prior
gives the posterior predictive of a new dataset in one forward pass (Müller et al. 2022).
PyTorch is imported here, on first use of the engine, never by ``import bayeskit``."""

from .bar import BarDistribution, borders_from_samples

__all__ = ["BarDistribution", "borders_from_samples"]
