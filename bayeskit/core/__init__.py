"""The contract every part of bayeskit builds on: models, engines, posteriors, `fit`, files, errors."""

from .engine import Engine
from .errors import (
    BayeskitError,
    ConfigError,
    ConvergenceWarning,
    DataError,
    IncompatibleEngineError,
    InitializationError,
    ModelError,
    SamplingError,
)
from .fit import fit
from .io import load, save
from .model import ModelSpec, NumPyroModel, Site, StructuredModel, as_model
from .posterior import DrawsPosterior, Posterior
from .seeds import as_key

__all__ = [
    "BayeskitError", "ConfigError", "ConvergenceWarning", "DataError", "DrawsPosterior", "Engine",
    "IncompatibleEngineError", "InitializationError", "ModelError", "ModelSpec", "NumPyroModel",
    "Posterior", "SamplingError", "Site", "StructuredModel", "as_key", "as_model", "fit", "load", "save",
]
