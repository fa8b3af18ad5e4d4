"""Sparse variational inference for process classifiers (`bk.SparseVariational`)."""

from ...core.model import SparseClassifier
from ...core.registry import register_default
from .engine import SparseVariational
from .posterior import ClassifierPosterior

register_default(SparseClassifier, SparseVariational)

__all__ = ["ClassifierPosterior", "SparseVariational"]
