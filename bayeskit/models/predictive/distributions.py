"""The distributions a predictive rule hands to functionals: the empirical law of a completed
sequence, and a law tabulated on a grid (optionally one per covariate point).

Both follow NumPyro's `Distribution` interface where it has meaning (``mean``, ``variance``,
``cdf``, ``icdf``, ``log_prob``, ``sample``), so a functional written for one works for the
other, and for the NumPyro distributions the conjugate rules return.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ...core.errors import ModelError
from ...core.module import Module


class Empirical(Module):
    """P = Σ_j w_j δ_{y_j}: the law of a (completed) sequence.

    ``values`` (m,) or (m, d) the points y_j, ``weights`` (m,) summing to 1 (zero for slots not yet
    filled), ``X`` (m, p) covariates of each point for regression functionals, or None.
    """

    values: object
    weights: object
    X: object = None

    @property
    def mean(self):
        return jnp.tensordot(self.weights, self.values, axes=1)

    @property
    def variance(self):
        centred = self.values - self.mean
        return jnp.tensordot(self.weights, centred**2, axes=1)

    def _univariate(self, what: str):
        if self.values.ndim != 1:
            raise ModelError(f"`{what}` of an empirical law needs scalar points, got points of shape "
                             f"{self.values.shape[1:]}")

    def cdf(self, value):
        """P(Y ≤ value), elementwise over ``value``."""
        self._univariate("cdf")
        value = jnp.asarray(value)
        return jnp.sum(self.weights * (self.values <= value[..., None]), axis=-1)

    def icdf(self, q):
        """The q-quantile: the smallest point whose cumulative weight reaches q (elementwise over q)."""
        self._univariate("icdf")
        order = jnp.argsort(self.values)
        cumulative = jnp.cumsum(self.weights[order])
        q = jnp.asarray(q, dtype=cumulative.dtype)
        index = jnp.clip(jnp.searchsorted(cumulative, q * cumulative[-1]), 0, self.values.shape[0] - 1)
        return self.values[order][index]

    def log_prob(self, value):
        raise ModelError("an empirical law (a Pólya urn's) has no density; use a copula rule for densities")

    def coefficients(self):
        """Weighted least squares of y on (1, X): argmin_β Σ_j w_j (y_j − β₀ − X_j β)², shape (p + 1,)."""
        if self.X is None:
            raise ModelError("`coefficients` needs covariates: fit the rule to data {'X': ..., 'y': ...}")
        design = jnp.concatenate([jnp.ones((self.X.shape[0], 1), self.X.dtype), self.X], axis=1)
        root = jnp.sqrt(self.weights)[:, None]
        beta, *_ = jnp.linalg.lstsq(root * design, root[:, 0] * self.values)
        return beta

    def sample(self, key, sample_shape=()):
        index = jax.random.choice(key, self.values.shape[0], tuple(sample_shape), p=self.weights)
        return self.values[index]


def _trapezoid(y, x):
    return jnp.sum(0.5 * (y[..., 1:] + y[..., :-1]) * jnp.diff(x), axis=-1)


class GridDistribution(Module):
    """A law tabulated on an increasing grid: ``cdf_values`` and ``pdf_values`` of shape (..., G) on
    ``grid`` (G,).

    Leading axes are a batch of laws, e.g. one conditional law p(y | x) per row of ``x`` (m, p).
    Mass outside the grid is put at its ends (for ``mean``, ``variance``, ``icdf``); the grid should
    cover the data with room to spare.
    """

    grid: object
    cdf_values: object
    pdf_values: object
    x: object = None

    @property
    def mean(self):
        # E[Y] = a + ∫_a^b (1 − F(y)) dy for the law with its tails moved to the grid ends a, b
        return self.grid[0] + _trapezoid(1.0 - self.cdf_values, self.grid)

    @property
    def variance(self):
        a = self.grid[0]
        second = a**2 + _trapezoid(2.0 * self.grid * (1.0 - self.cdf_values), self.grid)
        return second - self.mean**2

    def _interp(self, value, table):
        """``table`` (..., G) on the grid, interpolated at ``value``: batch + value.shape."""
        value = jnp.asarray(value, dtype=table.dtype)
        flat = table.reshape(-1, table.shape[-1])
        out = jax.vmap(lambda f: jnp.interp(value, self.grid, f))(flat)
        return out.reshape(table.shape[:-1] + value.shape)

    def cdf(self, value):
        """F(value): shape batch + value.shape."""
        return self._interp(value, self.cdf_values)

    def icdf(self, q):
        """The q-quantile by interpolating the cdf: shape batch + q.shape."""
        q = jnp.asarray(q, dtype=self.cdf_values.dtype)
        flat = self.cdf_values.reshape(-1, self.cdf_values.shape[-1])
        out = jax.vmap(lambda f: jnp.interp(q, f, self.grid))(flat)
        return out.reshape(self.cdf_values.shape[:-1] + q.shape)

    def density(self, value):
        return self._interp(value, self.pdf_values)

    def log_prob(self, value):
        return jnp.log(self.density(value))

    def sample(self, key, sample_shape=()):
        """Draws by inverting the cdf: shape sample_shape + batch."""
        batch = self.cdf_values.shape[:-1]
        u = jax.random.uniform(key, tuple(sample_shape) + batch, dtype=self.cdf_values.dtype)
        flat = self.cdf_values.reshape(-1, self.cdf_values.shape[-1])
        u_flat = u.reshape(tuple(sample_shape) + (flat.shape[0],))
        out = jax.vmap(lambda f, uu: jnp.interp(uu, f, self.grid), in_axes=(0, -1), out_axes=-1)(flat, u_flat)
        return out.reshape(u.shape)
