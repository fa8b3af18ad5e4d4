"""Sparse variational inference for process classifiers (`bk.SparseVariational`)."""

from .engine import SparseVariational
from .posterior import ClassifierPosterior

__all__ = ["ClassifierPosterior", "SparseVariational"]
