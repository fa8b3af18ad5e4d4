"""Exact inference for scale-mixture processes (`bk.Exact`)."""

from .exact import Exact
from .posterior import ProcessPosterior

__all__ = ["Exact", "ProcessPosterior"]
