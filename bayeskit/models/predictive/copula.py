"""Bivariate Gaussian-copula predictives of Fong, Holmes & Walker (JRSS-B 2023), for densities and
conditional densities (regression).

With u = P_{i−1}(y) and v = P_{i−1}(y_i) the i-th observation updates the predictive as

    p_i(y) = [1 − α_i + α_i c_ρ(u, v)] p_{i−1}(y),    P_i(y) = (1 − α_i) u + α_i H_ρ(u | v),
    c_ρ(u, v) = (1 − ρ²)^{−1/2} exp{−[ρ²(a² + b²) − 2ρab] / (2(1 − ρ²))},  a = Φ⁻¹(u), b = Φ⁻¹(v),
    H_ρ(u | v) = Φ((a − ρb) / √(1 − ρ²)),    α_i = (2 − 1/i) / (i + 1),

starting from p_0 = N(0, 1) on standardised data. It is a martingale, E[P_i(y) | F_{i−1}] = P_{i−1}(y),
because ∫₀¹ H_ρ(u | v) dv = u and ∫₀¹ c_ρ(u, v) dv = 1, so predictive resampling needs no inverse
cdf: V_i = P_{i−1}(Y_i) is uniform, hence b = Φ⁻¹(V_i) ~ N(0, 1) is all a forward step draws.

For regression the weight depends on the covariates through a product of Gaussian copula
densities of the standardised inputs (their scores), k(x, x_i) = Π_j c_{ρ_j}(x_j, x_ij):
α_i(x) = α_i k / (1 − α_i + α_i k), with v = P_{i−1}(y_i | x_i); in predictive resampling X_{i}
is drawn from a Bayesian bootstrap of the observed inputs (Dirichlet(1, …, 1) weights per draw).

The bandwidths maximise the prequential log-likelihood Σ_i log p_{i−1}(y_i), averaged over random
orderings of the data; p_n is the average over those orderings (as in the authors' code,
edfong/MP: ρ starts at 0.9 for densities and 0.8 for regression, 10 orderings).

Numerics: the cdf is carried as both tails, P and 1 − P, each updated by the same linear rule,
and scores are taken from the smaller one, so tails keep their relative precision in float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from ...core.checks import check_int, check_probability
from ...core.errors import ConfigError, DataError
from ...core.module import Module, field
from .base import PredictiveRule, float_dtype
from .distributions import GridDistribution

TINY = 1e-30  # tails are kept above this (their scores stay finite in float32)


# -- the recursion ---------------------------------------------------------------------------------
def log_copula_density(a, b, rho):
    """log c_ρ of the bivariate Gaussian copula at normal scores a, b."""
    r2 = rho**2
    return -0.5 * jnp.log1p(-r2) - (r2 * (a**2 + b**2) - 2 * rho * a * b) / (2 * (1 - r2))


def log_weights(k):
    """(log α_k, log(1 − α_k)) for the k-th observation (1-based), α_k = (2 − 1/k)/(k + 1)."""
    k = jnp.asarray(k, float_dtype())
    log_k1 = jnp.log(k + 1)
    return jnp.log(2 - 1 / k) - log_k1, jnp.log(k - 1 + 1 / k) - log_k1


def scores(lower, upper):
    """Φ⁻¹(P) from whichever tail is smaller (P = lower, 1 − P = upper): one ndtri per point."""
    return jnp.where(lower < upper, 1.0, -1.0) * ndtri(jnp.minimum(lower, upper))


def update(lower, upper, logp, b, log_alpha, log_rest, rho):
    """One copula step at points with tails (lower, upper) and log density logp, for a new observation
    with score b and weights log α, log(1 − α) (scalars, or one per point)."""
    a = scores(lower, upper)
    w = (a - rho * b) / jnp.sqrt(1 - rho**2)
    small = ndtr(-jnp.abs(w))  # the smaller of H_ρ(u | v) = Φ(w) and 1 − H_ρ = Φ(−w), to full precision
    h_lower = jnp.where(w < 0, small, 1.0 - small)
    h_upper = jnp.where(w < 0, 1.0 - small, small)
    alpha, rest = jnp.exp(log_alpha), jnp.exp(log_rest)
    lower = jnp.clip(rest * lower + alpha * h_lower, TINY, 1.0)
    upper = jnp.clip(rest * upper + alpha * h_upper, TINY, 1.0)
    logp = logp + jnp.logaddexp(log_rest, log_alpha + log_copula_density(a, b, rho))
    return lower, upper, logp


def covariate_weights(k, x, x_new, rho_x):
    """Per-point (log α_k(x), log(1 − α_k(x))) for points x (..., p) and a new input x_new (p,)."""
    log_alpha, log_rest = log_weights(k)
    if x is None:
        return log_alpha, log_rest
    log_kernel = jnp.sum(log_copula_density(x, x_new, rho_x), axis=-1)
    norm = jnp.logaddexp(log_rest, log_alpha + log_kernel)
    return log_alpha + log_kernel - norm, log_rest - norm


def _initial(z):
    return ndtr(z), ndtr(-z), -0.5 * z**2 - 0.5 * math.log(2 * math.pi)


def observe_sequence(rho, rho_x, z, x, order):
    """Run the recursion over the data in ``order`` at the data points themselves: for each i the
    prequential term log p_{i−1}(y_i | x_i) and the score b_i = Φ⁻¹(P_{i−1}(y_i | x_i)) (with x_i, what
    updates any other point). z (n,) standardised targets, x (n, p) or None."""
    def step(data, inputs):
        t, j = inputs
        lower, upper, logp = data
        b = scores(lower[j], upper[j])
        la, lr = covariate_weights(t + 1.0, x, None if x is None else x[j], rho_x)
        return update(lower, upper, logp, b, la, lr, rho), (logp[j], b)

    _, (terms, b) = jax.lax.scan(step, _initial(z), (jnp.arange(z.shape[0], dtype=float_dtype()), order))
    return terms, b


def condition_sequence(rho, rho_x, z, x, order, z_grid, x_eval):
    """Run the recursion over the data in ``order``: returns the prequential log-likelihood
    Σ_i log p_{i−1}(y_i | x_i) and the tails and log density on the grid (m, G) after all n points.

    z (n,) standardised targets, x (n, p) standardised inputs or None, z_grid (G,), x_eval (m, p) or None.
    """
    terms, scores_seen = observe_sequence(rho, rho_x, z, x, order)
    m = 1 if x_eval is None else x_eval.shape[0]
    grid = tuple(jnp.broadcast_to(t, (m, z_grid.shape[0])) for t in _initial(z_grid))
    points = None if x_eval is None else x_eval[:, None, :]

    def step(grid, inputs):
        t, j, b = inputs
        la, lr = covariate_weights(t + 1.0, points, None if x is None else x[j], rho_x)
        return update(*grid, b, la, lr, rho), None

    grid, _ = jax.lax.scan(step, grid, (jnp.arange(z.shape[0], dtype=float_dtype()), order, scores_seen))
    return jnp.sum(terms), grid


def prequential(rho, rho_x, z, x, orders):
    """Mean over orderings of the prequential log-likelihood per observation (standardised units)."""
    return jnp.mean(jax.vmap(lambda order: jnp.mean(observe_sequence(rho, rho_x, z, x, order)[0]))(orders))


@jax.jit
def _objective(theta, held, free, z, x, orders):
    """−(mean prequential log-likelihood) at bandwidths sigmoid(θ) where ``free``, ``held`` elsewhere."""
    values = jnp.where(free, jax.nn.sigmoid(theta), held)
    return -prequential(values[0], None if x is None else values[1:], z, x, orders)


@jax.jit
def condition_orderings(rho, rho_x, z, x, orders, z_grid, x_eval):
    """`condition_sequence` for every ordering: P_n and log p_n on the grid averaged over them (m, G)."""
    _, (lower, upper, logp) = jax.vmap(lambda order: condition_sequence(rho, rho_x, z, x, order, z_grid, x_eval))(
        orders)
    log_mean = jax.scipy.special.logsumexp(logp, axis=0) - jnp.log(orders.shape[0])
    return jnp.mean(lower, axis=0), jnp.mean(upper, axis=0), log_mean


def _logit(p):
    return np.log(p / (1 - p))


def fit_bandwidths(z, x, orders, rho: float | None, rho_x, start: float) -> tuple[float, np.ndarray | None, float]:
    """The bandwidths given as None, chosen to maximise the mean prequential log-likelihood; the others
    are held. One free bandwidth: Brent's bounded search on logit ρ; several: Nelder–Mead from
    ``start``. (Derivative-free: the objective's reverse pass through the recursion costs 20 times
    its forward pass to run and 6 times to compile.) Returns (ρ, ρ_x or None, the maximum per
    observation, standardised units)."""
    from scipy.optimize import minimize, minimize_scalar

    p = 0 if x is None else x.shape[1]
    full = np.concatenate([[start if rho is None else rho],
                           np.full(p, start) if rho_x is None else np.broadcast_to(rho_x, (p,))])
    free = np.array([rho is None] + [rho_x is None] * p)
    held = jnp.asarray(full, float_dtype())
    mask = jnp.asarray(free)
    theta = _logit(full)

    def fun(theta_free):
        theta[free] = theta_free
        value = float(_objective(jnp.asarray(theta, float_dtype()), held, mask, z, x, orders))
        return value if np.isfinite(value) else np.inf

    start_free = _logit(full[free])
    if free.sum() == 1:
        result = minimize_scalar(lambda t: fun(np.atleast_1d(t)), bounds=(-5.0, 7.0), method="bounded",
                                 options={"xatol": 1e-3})
        theta_free = np.atleast_1d(result.x)
    else:
        result = minimize(fun, start_free, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6,
                                                                          "maxiter": 200 * int(free.sum())})
        theta_free = np.clip(result.x, -5.0, 7.0)
    if not np.isfinite(result.fun):
        theta_free = start_free
    values = full.copy()
    values[free] = 1 / (1 + np.exp(-theta_free))
    return float(values[0]), None if x is None else values[1:], -fun(theta_free)


# -- the rules -------------------------------------------------------------------------------------
class CopulaState(Module):
    """P_i on the grid, as tails (m, G) and log density (m, G) in standardised units, plus what the
    forward steps need. ``grid``/``x_eval`` are in the data's units for the distribution."""

    lower: object
    upper: object
    logp: object
    count: object
    rho: object
    rho_x: object
    x: object  # (n, p) standardised observed inputs, or None
    x_eval_z: object  # (m, p) standardised evaluation inputs, or None
    log_w: object  # (n,) Bayesian-bootstrap weights of the inputs (set per draw), or None
    grid: object  # (G,) in the data's units
    x_eval: object  # (m, p) in the data's units, or None
    y_scale: object
    prequential: object  # mean prequential log-likelihood per point at the fitted bandwidths (data units)


def _as_grid(grid):
    """An int number of points, or the points as a tuple (hashable: the grid is part of the program)."""
    if isinstance(grid, (int, np.integer)) and not isinstance(grid, bool):
        return int(grid)
    try:
        return tuple(float(g) for g in np.asarray(grid, dtype=float).ravel()) if np.ndim(grid) == 1 else grid
    except (TypeError, ValueError):
        return grid


def _as_points(points):
    if points is None:
        return None
    a = np.asarray(points, dtype=float)
    return tuple(map(tuple, a[:, None] if a.ndim == 1 else a)) if a.ndim in (1, 2) else points


def _as_bandwidths(value):
    if value is None:
        return None
    try:
        return tuple(float(v) for v in np.atleast_1d(np.asarray(value, dtype=float)))
    except (TypeError, ValueError):
        return value


class _Copula(PredictiveRule):
    rho: float | None = field(static=True, default=None)
    grid: object = field(static=True, default=200, converter=_as_grid)
    orderings: int = field(static=True, default=10)

    initial_rho = 0.9  # where the bandwidth search starts (the authors' choice)
    rho_x_values = None

    def __check_init__(self):
        if self.rho is not None:
            check_probability("rho", self.rho)
        check_int("orderings", self.orderings)
        if isinstance(self.grid, int):
            check_int("grid", self.grid, 2, why="points of the grid")
        elif not (isinstance(self.grid, tuple) and len(self.grid) >= 2 and np.all(np.isfinite(self.grid))
                  and np.all(np.diff(self.grid) > 0)):
            raise ConfigError("`grid` must be an int (number of points) or an increasing 1-D array of at least "
                              "2 finite values")

    def _grid(self, z: np.ndarray, loc: float, scale: float) -> np.ndarray:
        if isinstance(self.grid, int):
            return np.linspace(z.min() - 3.0, z.max() + 3.0, int(self.grid))  # p_0 = N(0, 1) tails: ±3 sd
        return (np.asarray(self.grid, dtype=float) - loc) / scale

    def _orders(self, n: int, key) -> jnp.ndarray:
        keys = jax.random.split(key, self.orderings)
        return jax.vmap(lambda k: jax.random.permutation(k, n))(keys)

    def _condition(self, z, x, x_eval_z, key, y_loc, y_scale, grid_z, x_eval):
        orders = self._orders(z.shape[0], key)
        zj, xj = jnp.asarray(z, float_dtype()), None if x is None else jnp.asarray(x, float_dtype())
        rho_x = None if x is None or self.rho_x_values is None else np.broadcast_to(self.rho_x_values, (x.shape[1],))
        if self.rho is None or (x is not None and rho_x is None):
            rho, rho_x, value = fit_bandwidths(zj, xj, orders, self.rho, rho_x, self.initial_rho)
        else:
            rho, value = self.rho, None
        rho_j = jnp.asarray(rho, float_dtype())
        rho_xj = None if x is None else jnp.asarray(rho_x, float_dtype())
        if value is None:  # the prequential log-likelihood at the given bandwidths (every one held)
            held = jnp.concatenate([rho_j[None], jnp.zeros(0, rho_j.dtype) if x is None else rho_xj])
            value = -float(_objective(jnp.zeros_like(held), held, jnp.zeros(held.shape, bool), zj, xj, orders))
        xe = None if x_eval_z is None else jnp.asarray(x_eval_z, float_dtype())
        lower, upper, logp = condition_orderings(rho_j, rho_xj, zj, xj, orders, jnp.asarray(grid_z, float_dtype()), xe)
        return CopulaState(
            lower=lower, upper=upper, logp=logp,
            count=jnp.asarray(z.shape[0], jnp.int32), rho=rho_j, rho_x=rho_xj, x=xj, x_eval_z=xe,
            log_w=None if x is None else jnp.full((z.shape[0],), -math.log(z.shape[0]), float_dtype()),
            grid=jnp.asarray(grid_z * y_scale + y_loc, float_dtype()),
            x_eval=None if x_eval is None else jnp.asarray(x_eval, float_dtype()),
            y_scale=jnp.asarray(y_scale, float_dtype()),
            prequential=jnp.asarray(value - math.log(y_scale), float_dtype()),
        )

    def forward(self, state: CopulaState, key) -> CopulaState:
        key_v, key_x = jax.random.split(key)
        b = jax.random.normal(key_v)  # Φ⁻¹(V), V = P_{i−1}(Y_i) ~ U(0, 1)
        if state.x is None:
            x_eval, x_new = None, None
        else:
            x_new = state.x[jax.random.categorical(key_x, state.log_w)]
            x_eval = state.x_eval_z[:, None, :]
        la, lr = covariate_weights(state.count + 1.0, x_eval, x_new, state.rho_x)
        lower, upper, logp = update(state.lower, state.upper, state.logp, b, la, lr, state.rho)
        return CopulaState(lower, upper, logp, state.count + 1, state.rho, state.rho_x, state.x, state.x_eval_z,
                           state.log_w, state.grid, state.x_eval, state.y_scale, state.prequential)


class CopulaDensity(_Copula):
    """The copula predictive for a density of scalar observations ``{"y": y}``.

    ``rho``: the bandwidth in (0, 1) (None: fitted by prequential likelihood over ``orderings``
    random orderings). ``grid``: number of points (spanning the data ± 3 sd) or the points
    themselves (in the data's units) on which P and p are tracked.
    """

    def condition(self, data, horizon: int) -> CopulaState:
        X, y = self.check_data(data)
        if y.ndim != 1:
            raise DataError(f"`y` for CopulaDensity must be 1-D (scalar observations), got shape {y.shape}")
        loc, scale = _standardise(y)
        z = (y - loc) / scale
        key = jax.random.PRNGKey(0)  # the orderings are part of the estimator, not of the posterior's randomness
        return self._condition(z, None, None, key, loc, scale, self._grid(z, loc, scale), None)

    def distribution(self, state: CopulaState) -> GridDistribution:
        return GridDistribution(state.grid, state.lower[0], jnp.exp(state.logp[0]) / state.y_scale)


class CopulaRegression(_Copula):
    """The conditional copula predictive p(y | x) for data ``{"X": X, "y": y}``, tracked at the
    inputs ``x_eval`` ((m, p) array; None: up to 25 points spread over the observed inputs).

    ``rho``, ``rho_x``: bandwidths of y and of each input dimension (None: fitted; ``rho_x`` may
    be one value for every dimension).
    """

    rho_x: object = field(static=True, default=None, converter=_as_bandwidths)
    x_eval: object = field(static=True, default=None, converter=_as_points)

    accepts_covariates = True
    initial_rho = 0.8

    def __check_init__(self):
        if self.rho_x is not None and not (isinstance(self.rho_x, tuple) and all(0 < v < 1 for v in self.rho_x)):
            raise ConfigError(f"`rho_x` must be None or numbers in (0, 1) (one, or one per input), got "
                              f"{self.rho_x!r}")
        if self.x_eval is not None and not (isinstance(self.x_eval, tuple) and len({len(r) for r in self.x_eval}) == 1
                                            and np.all(np.isfinite(self.x_eval))):
            raise ConfigError("`x_eval` must be None or an (m, p) array of finite inputs")

    @property
    def rho_x_values(self):
        return None if self.rho_x is None else np.asarray(self.rho_x, dtype=float)

    def condition(self, data, horizon: int) -> CopulaState:
        X, y = self.check_data(data)
        if X is None:
            raise DataError("`data` for CopulaRegression needs inputs 'X' beside 'y'")
        if y.ndim != 1:
            raise DataError(f"`y` for CopulaRegression must be 1-D (scalar targets), got shape {y.shape}")
        loc, scale = _standardise(y)
        x_loc, x_scale = X.mean(axis=0), X.std(axis=0)
        x_scale = np.where(x_scale > 0, x_scale, 1.0)
        x_eval = _default_inputs(X) if self.x_eval is None else np.asarray(self.x_eval, dtype=float)
        if x_eval.ndim == 1 and X.shape[1] == 1:
            x_eval = x_eval[:, None]
        if x_eval.ndim != 2 or x_eval.shape[1] != X.shape[1]:
            raise ConfigError(f"`x_eval` must be an (m, {X.shape[1]}) array of inputs, got shape {x_eval.shape}")
        if self.rho_x is not None and np.size(self.rho_x) not in (1, X.shape[1]):
            raise ConfigError(f"`rho_x` must hold one bandwidth or one per input ({X.shape[1]}), got "
                              f"{np.size(self.rho_x)}")
        z = (y - loc) / scale
        key = jax.random.PRNGKey(0)
        return self._condition(z, (X - x_loc) / x_scale, (x_eval - x_loc) / x_scale, key, loc, scale,
                               self._grid(z, loc, scale), x_eval)

    def start(self, state: CopulaState, key) -> CopulaState:
        """Each posterior draw resamples inputs from its own Bayesian bootstrap of the observed ones."""
        log_w = jax.nn.log_softmax(jnp.log(jax.random.exponential(key, state.log_w.shape)))
        return CopulaState(state.lower, state.upper, state.logp, state.count, state.rho, state.rho_x, state.x,
                           state.x_eval_z, log_w, state.grid, state.x_eval, state.y_scale, state.prequential)

    def distribution(self, state: CopulaState) -> GridDistribution:
        return GridDistribution(state.grid, state.lower, jnp.exp(state.logp) / state.y_scale, state.x_eval)


def _standardise(y: np.ndarray) -> tuple[float, float]:
    scale = float(y.std())
    if not scale > 0:
        raise DataError("`y` is constant: a copula predictive needs observations that vary")
    return float(y.mean()), scale


def _default_inputs(X: np.ndarray, most: int = 25) -> np.ndarray:
    """Up to ``most`` evaluation inputs: an even grid over the range in 1-D, else observed rows spread
    along the first input."""
    if X.shape[1] == 1:
        return np.linspace(X.min(), X.max(), most)[:, None]
    order = np.argsort(X[:, 0], kind="stable")
    pick = np.unique(np.linspace(0, X.shape[0] - 1, min(most, X.shape[0])).round().astype(int))
    return X[order[pick]]
