"""Processes over functions: Gaussian, Student-t and other scale mixtures of a kernel."""

from .classification import ProcessClassifier
from .predictive import ClassPredictive, ProcessPredictive
from .process import ScaleMixtureProcess, hyperparameter_names, numpyro_model
from .scale_priors import BurrXII, Custom, Fixed, Gamma, HalfCauchy, InverseGamma, LogNormal, ScalePrior

__all__ = [
    "BurrXII", "ClassPredictive", "Custom", "Fixed", "Gamma", "HalfCauchy", "InverseGamma", "LogNormal",
    "ProcessClassifier", "ProcessPredictive",
    "ScaleMixtureProcess", "ScalePrior", "hyperparameter_names", "numpyro_model",
]
