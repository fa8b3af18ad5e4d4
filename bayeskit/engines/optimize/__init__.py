"""Point estimates by maximising a model's objective (`bk.Optimize`): deep kernel machines and any
other model with the `Objective` capability."""

from ...core.model import Objective
from ...core.registry import register_default
from .engine import Optimize
from .posterior import OptimizedPosterior

register_default(Objective, Optimize)

__all__ = ["OptimizedPosterior", "Optimize"]
