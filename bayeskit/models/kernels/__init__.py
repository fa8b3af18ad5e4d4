"""Covariance functions: NNGP/NTK of deep fully connected networks, RBF, Matérn and periodic."""

from .base import Kernel
from .neural import NNGP, NTK, fully_connected
from .stationary import RBF, Matern, Periodic

__all__ = ["NNGP", "NTK", "RBF", "Kernel", "Matern", "Periodic", "fully_connected"]
