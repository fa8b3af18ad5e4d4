"""Predictive rules: models given by their one-step-ahead predictive, which martingale posteriors
(`bk.MartingalePosterior`) impute the unseen future from (Fong, Holmes & Walker 2023)."""

from .base import PredictiveRule
from .conjugate import BetaBernoulli, Conjugate, GammaPoisson, NormalInverseGamma, NormalNormal
from .copula import CopulaDensity, CopulaRegression
from .distributions import Empirical, GridDistribution
from .polya import PolyaUrn

__all__ = ["BetaBernoulli", "Conjugate", "CopulaDensity", "CopulaRegression", "Empirical", "GammaPoisson",
           "GridDistribution", "NormalInverseGamma", "NormalNormal", "PolyaUrn", "PredictiveRule"]
