"""Exact inference for scale-mixture processes (`bk.Exact`), dense or matrix-free (`bk.MatrixFree`)."""

from ...core.model import MarginalLikelihood
from ...core.registry import register_default
from .exact import Exact
from .posterior import ProcessPosterior
from .settings import MatrixFree

register_default(MarginalLikelihood, Exact)

__all__ = ["Exact", "MatrixFree", "ProcessPosterior"]
