"""Martingale posteriors (`bk.MartingalePosterior`): posteriors built from a predictive rule by
imputing the unseen future (Fong, Holmes & Walker 2023).

    rule = bk.martingale.CopulaDensity()                   # or PolyaUrn(), NormalNormal(), ...
    post = bk.fit(rule, {"y": y}, engine=bk.MartingalePosterior(functional=bk.martingale.Density()))
"""

from ...core.model import PredictiveRule
from ...core.registry import register_default
from ...models.predictive import (
                                  BetaBernoulli,
                                  Conjugate,
                                  CopulaDensity,
                                  CopulaRegression,
                                  Empirical,
                                  GammaPoisson,
                                  GridDistribution,
                                  NormalInverseGamma,
                                  NormalNormal,
                                  PolyaUrn,
)
from .engine import TRUNCATION_LIMIT, MartingalePosterior
from .functionals import CDF, Coefficients, Density, Functional, Mean, Quantile, Variance, coefficients, mean, variance
from .posterior import MartingaleDraws

register_default(PredictiveRule, MartingalePosterior)

__all__ = ["CDF", "TRUNCATION_LIMIT", "BetaBernoulli", "Coefficients", "Conjugate", "CopulaDensity", "CopulaRegression",
           "Density", "Empirical", "Functional", "GammaPoisson", "GridDistribution", "MartingaleDraws",
           "MartingalePosterior", "Mean", "NormalInverseGamma", "NormalNormal", "PolyaUrn", "Quantile", "Variance",
           "coefficients", "mean", "variance"]
