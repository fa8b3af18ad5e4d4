"""Processes over functions: Gaussian, Student-t and other scale mixtures of a kernel."""

from .predictive import ProcessPredictive
from .process import ScaleMixtureProcess, hyperparameter_names, numpyro_model
from .scale_priors import BurrXII, Custom, Fixed, Gamma, HalfCauchy, InverseGamma, LogNormal, ScalePrior

__all__ = [
    "BurrXII", "Custom", "Fixed", "Gamma", "HalfCauchy", "InverseGamma", "LogNormal", "ProcessPredictive",
    "ScaleMixtureProcess", "ScalePrior", "hyperparameter_names", "numpyro_model",
]
