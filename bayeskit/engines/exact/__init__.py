"""Exact inference for scale-mixture processes (`bk.Exact`), dense or matrix-free (`bk.MatrixFree`)."""

from .exact import Exact
from .posterior import ProcessPosterior
from .settings import MatrixFree

__all__ = ["Exact", "MatrixFree", "ProcessPosterior"]
