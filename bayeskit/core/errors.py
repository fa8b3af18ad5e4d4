"""The error hierarchy: every error bayeskit raises on purpose is a `BayeskitError`.

Each subclass also derives from the builtin a caller would naturally catch
(`ValueError` for bad input, `TypeError` for unsupported pairs, `RuntimeError`
for failures during a run), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class BayeskitError(Exception):
    """Base class of all bayeskit errors."""


class DataError(BayeskitError, ValueError):
    """Observed or input data is unusable: non-finite values, unknown keys, wrong shapes."""


class ModelError(BayeskitError, ValueError):
    """The model cannot be fitted as written (e.g. it has no latent variables)."""


class ConfigError(BayeskitError, ValueError):
    """An engine or function argument is out of its valid range."""


class IncompatibleEngineError(BayeskitError, TypeError):
    """The engine cannot fit this kind of model."""


class InitializationError(BayeskitError, RuntimeError):
    """No starting point with a finite log density and gradient could be found."""


class SamplingError(BayeskitError, RuntimeError):
    """A run failed part-way; what was computed before the failure is attached as `partial`."""

    def __init__(self, message: str, partial=None):
        super().__init__(message)
        self.partial = partial


class ConvergenceWarning(UserWarning):
    """Diagnostics suggest the draws do not represent the posterior (R-hat, divergences, E-BFMI)."""
