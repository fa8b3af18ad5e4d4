"""The contract every part of bayeskit builds on: models and their capabilities, engines, posteriors,
`fit`, files, errors, and the machinery every engine shares (module base, loop driver, program cache,
seeds, checks). Names load on first use, so importing a core module stays cheap."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Engine": "engine",
    "BayeskitError": "errors", "ConfigError": "errors", "ConvergenceWarning": "errors", "DataError": "errors",
    "IncompatibleEngineError": "errors", "InitializationError": "errors", "ModelError": "errors",
    "SamplingError": "errors",
    "fit": "fit",
    "load": "io", "save": "io",
    "ModelSpec": "model", "NumPyroModel": "model", "Site": "model", "as_model": "model",
    "NumPyroProgram": "model", "MarginalLikelihood": "model", "FeynmanKac": "model", "SparseClassifier": "model",
    "DatasetPriorSource": "model",
    "Module": "module", "field": "module",
    "DrawsPosterior": "posterior", "Posterior": "posterior",
    "as_key": "seeds",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
