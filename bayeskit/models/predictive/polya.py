"""The Pólya urn: the predictive of a Dirichlet process, P_i = (α G₀ + Σ_{j≤i} δ_{Y_j}) / (α + i).

Predictive resampling draws Y_{i+1} from G₀ with probability α / (α + i) and otherwise copies
one of Y_1 … Y_i picked uniformly; the completed sequence's empirical law converges to a
DP(α + n, (α G₀ + Σ δ_{y_j}) / (α + n)) draw. With α = 0 this is Rubin's Bayesian bootstrap:
weights Dirichlet(1, …, 1) on the observed points. Rows may be vectors, and with covariates
the urn resamples (x, y) pairs, so least-squares coefficients of the completed data are the
Bayesian bootstrap of a regression.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ...core.checks import check_real
from ...core.errors import ConfigError
from ...core.module import Module, field
from .base import PredictiveRule, float_dtype
from .distributions import Empirical


class UrnState(Module):
    """The sequence so far: ``rows`` (n + horizon, d) with the first ``count`` filled."""

    rows: object
    count: object
    y_width: int = field(static=True, default=0)  # 0: y is a scalar per row, else its width
    x_width: int = field(static=True, default=0)  # covariate columns after y (0: none)


class PolyaUrn(PredictiveRule):
    """Dirichlet-process predictive with concentration ``alpha`` ≥ 0 and base law ``base`` (a NumPyro
    distribution of one row, needed when alpha > 0). ``alpha = 0``: the Bayesian bootstrap."""

    alpha: float = field(static=True, default=0.0)  # static: it decides whether the program draws from `base`
    base: object = field(static=True, default=None)

    accepts_covariates = True

    def __check_init__(self):
        check_real("alpha", self.alpha, 0.0)
        if self.alpha > 0 and self.base is None:
            raise ConfigError("`base` (a NumPyro distribution of one observation) is needed when `alpha` > 0")

    def condition(self, data, horizon: int) -> UrnState:
        X, y = self.check_data(data)
        y_width = 0 if y.ndim == 1 else int(np.prod(y.shape[1:]))
        parts = [y.reshape(y.shape[0], -1)] + ([X] if X is not None else [])
        rows = np.concatenate(parts, axis=1)
        buffer = np.zeros((rows.shape[0] + horizon, rows.shape[1]), dtype=float_dtype())
        buffer[: rows.shape[0]] = rows
        return UrnState(jnp.asarray(buffer), jnp.asarray(rows.shape[0], jnp.int32), y_width,
                        0 if X is None else X.shape[1])

    def forward(self, state: UrnState, key) -> UrnState:
        key_new, key_pick, key_base = jax.random.split(key, 3)
        count = state.count
        picked = state.rows[jax.random.randint(key_pick, (), 0, count)]
        if self.alpha > 0:
            fresh = jnp.asarray(self.base.sample(key_base), picked.dtype).reshape(-1)
            if fresh.shape[0] != picked.shape[0]:
                raise ConfigError(f"`base` draws rows of {fresh.shape[0]} value(s), but the data rows have "
                                  f"{picked.shape[0]}")
            is_new = jax.random.uniform(key_new) < self.alpha / (self.alpha + count)
            picked = jnp.where(is_new, fresh, picked)
        rows = jax.lax.dynamic_update_slice(state.rows, picked[None], (count, jnp.zeros_like(count)))
        return UrnState(rows, count + 1, state.y_width, state.x_width)

    def distribution(self, state: UrnState) -> Empirical:
        filled = jnp.arange(state.rows.shape[0]) < state.count
        weights = filled / state.count
        width = max(state.y_width, 1)
        y = state.rows[:, :width] if state.y_width else state.rows[:, 0]
        X = state.rows[:, width:] if state.x_width else None
        return Empirical(y, weights, X)
