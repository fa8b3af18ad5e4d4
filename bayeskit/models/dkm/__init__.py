"""Deep kernel machines (Yang et al., ICML 2023): deep Gaussian processes in the Bayesian
representation-learning limit, fitted by maximising an objective over Gram matrices (`bk.Optimize`)."""

from .full import DeepKernelMachine
from .sparse import SparseDeepKernelMachine

__all__ = ["DeepKernelMachine", "SparseDeepKernelMachine"]
