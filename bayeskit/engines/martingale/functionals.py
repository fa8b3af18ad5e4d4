"""Functionals: what a martingale posterior is a posterior *of*. A functional maps the limiting
predictive P_N (a distribution: `Empirical`, `GridDistribution` or a NumPyro distribution) to an
array, or a dict of named arrays; any JAX function of the distribution will do::

    def spread(P):                      # a user functional
        return P.icdf(0.9) - P.icdf(0.1)

The shipped ones carry a name (the variable's name in the posterior).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ...core.errors import ModelError
from ...core.module import Module, field


def _tuple(values):
    return tuple(float(v) for v in np.atleast_1d(np.asarray(values, dtype=float)))


class Functional(Module, pytree=False):
    """Base of the shipped functionals: ``name`` is the posterior variable they produce."""

    name = "theta"

    def __call__(self, P):
        raise NotImplementedError


class Mean(Functional):
    """E_P[Y] (the conditional mean at each evaluation input for a regression rule)."""

    name = "mean"

    def __call__(self, P):
        return P.mean


class Variance(Functional):
    """Var_P[Y]."""

    name = "variance"

    def __call__(self, P):
        return P.variance


class Quantile(Functional):
    """The ``q``-quantiles of P (a number or a sequence of levels)."""

    q: tuple = field(default=(0.5,), converter=_tuple)
    name = "quantile"

    def __call__(self, P):
        return P.icdf(jnp.asarray(self.q))


def _points(functional, P):
    if functional.at is not None:
        return jnp.asarray(functional.at)
    if not hasattr(P, "grid"):
        raise ModelError(f"`{type(functional).__name__}()` without `at` evaluates on the rule's grid, and "
                         f"{type(P).__name__} has none: pass the points, e.g. {type(functional).__name__}(at=[...])")
    return P.grid


class Density(Functional):
    """p(y) at the points ``at`` (None: the rule's own grid)."""

    at: tuple | None = field(default=None, converter=lambda a: None if a is None else _tuple(a))
    name = "density"

    def __call__(self, P):
        return jnp.exp(P.log_prob(_points(self, P)))


class CDF(Functional):
    """P(Y ≤ y) at the points ``at`` (None: the rule's own grid)."""

    at: tuple | None = field(default=None, converter=lambda a: None if a is None else _tuple(a))
    name = "cdf"

    def __call__(self, P):
        return P.cdf(_points(self, P))


class Coefficients(Functional):
    """Least-squares coefficients (intercept first) of y on X under P (a Pólya urn over (x, y) pairs:
    the Bayesian bootstrap of a linear regression)."""

    name = "coefficients"

    def __call__(self, P):
        return P.coefficients()


mean = Mean()
variance = Variance()
coefficients = Coefficients()


def name_of(functional) -> str:
    """The posterior variable's name for a functional returning one array."""
    name = getattr(functional, "name", None) or getattr(functional, "__name__", "")
    return name if name.isidentifier() and name != "<lambda>" else "theta"
