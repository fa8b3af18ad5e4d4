"""Covariance functions: NNGP/NTK of deep fully connected networks, RBF and Matérn."""

from .base import Kernel
from .neural import NNGP, NTK, fully_connected
from .stationary import RBF, Matern

__all__ = ["NNGP", "NTK", "RBF", "Kernel", "Matern", "fully_connected"]
