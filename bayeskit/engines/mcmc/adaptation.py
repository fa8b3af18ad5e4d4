"""Warmup: the step size by dual averaging and the metric from windows of draws, per chain.

Two metrics, one machinery. The warmup is cut into windows; during a window each chain adds
its draws (and gradients) to running moments; at a window's end ("switch") the metric is
re-estimated, the step size is re-found for the new metric and dual averaging restarts from it
(Stan's procedure at each of its window ends). A last window keeps the metric fixed and adapts
only the step size, and its end settles it (see below) for sampling.

* ``metric="diag"`` (the default) — nutpie's gradient-based diagonal (Seyboldt et al.):
  ``M^-1 = sqrt(Var[x] / Var[grad log p])``, the diagonal minimising the Fisher divergence
  between the draws and a Gaussian with that covariance. It is exact for any Gaussian with
  diagonal covariance from a few dozen draws, so it switches early and often: every
  ``EARLY_SWITCH`` draws over the first ``EARLY_FRACTION`` of warmup, then every ``LATE_SWITCH``,
  each estimate from the last two windows (so at least one full window). The first metric is
  ``1 / |grad|`` at the starting point, already scale-aware.
* ``metric="low_rank"`` — nutpie's low-rank modified diagonal: the diagonal above, corrected in
  the directions where the draws say it is wrong. In the space scaled by the diagonal D
  (``x~ = D^-1/2 x``, ``g~ = D^1/2 g``) the Fisher-divergence optimum among all metrics is the
  geometric mean ``A = C_x # C_g^-1`` of the covariance of the scaled draws and the inverse
  covariance of the scaled gradients (both equal the scaled covariance for a Gaussian);
  ``M^-1 = D^1/2 (I + U (L - I) U') D^1/2`` keeps A's eigenpairs (U, L) with eigenvalues outside
  ``[1/LOW_RANK_CUTOFF, LOW_RANK_CUTOFF]``, the others left at the diagonal. Same windows as
  "diag"; the moments are kept as d x d running sums, so it suits moderate dimensions (the
  matrix is applied as a dense one).
* ``metric="dense"`` and ``metric="diag_welford"`` — Stan's: the (regularised) sample covariance
  or variance of the draws of doubling slow windows after a 75-draw initial buffer, with a
  50-draw terminal buffer.

Why the step size settles after dual averaging (issue 16: Stan's and BlackJAX's warmup realise
a mean acceptance of 0.93–0.95 for a 0.8 target): dual averaging's iterates fluctuate strongly
in a short window (its gain is about 1/(gamma sqrt t)), and the acceptance rate is concave in log
step size near the target, so their average is a step size whose acceptance is above the target
(Jensen). The last window (``FINAL_FRACTION`` of warmup) therefore ends with two windows of
``SETTLE_FRACTION``: from the dual-averaging average, ``log eps += SETTLE_GAIN (accept - target)``
each transition, whose small gain keeps the fluctuations near 0.05; the step size kept for
sampling is the mean log step size of the second window.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

EARLY_FRACTION = 0.3  # gradient-based metric: fraction of warmup with frequent switches
EARLY_SWITCH = 10  # ... every this many draws
LATE_SWITCH = 80  # then every this many
FINAL_FRACTION = 0.2  # last part of warmup: metric fixed, step size only
SETTLE_FRACTION = 0.05  # its end: two windows this long where the step size settles with a small gain
SETTLE_GAIN = 0.1  # gain of that stochastic approximation on log step size

# dual averaging (Hoffman & Gelman 2014; Stan's constants)
DA_T0, DA_GAMMA, DA_KAPPA = 10.0, 0.05, 0.75

CLIP = 1e-10  # bounds of the gradient-based diagonal's entries, relative: [CLIP, 1 / CLIP]
LOW_RANK_CUTOFF = 2.0  # low-rank metric: eigenvalues of the scaled optimum kept outside [1/c, c] (nutpie's default)
LOW_RANK_GAMMA = 1e-5  # ... its scaled covariances are regularised by this times the identity (nutpie's)

GRADIENT_METRICS = ("diag", "low_rank")  # estimated from draws and gradients, on the frequent-switch schedule
DENSE_METRICS = ("dense", "low_rank")  # inverse mass matrix stored as a d x d matrix


# --------------------------------------------------------------------------- schedules


class Schedule(NamedTuple):
    """Per transition (warmup and sampling): adapting at all; metric moments collected; metric switch
    after it; step size frozen at its dual-averaging average after it; settling window 1 or 2 (0:
    neither; see `update`); the kept step size set after it (the last warmup transition)."""

    adapting: np.ndarray
    collect: np.ndarray
    switch: np.ndarray
    freeze: np.ndarray
    settle: np.ndarray
    final: np.ndarray


def schedule(metric: str, warmup: int, draws: int) -> Schedule:
    total = warmup + draws
    adapting = np.arange(total) < warmup
    collect, switch, freeze = (np.zeros(total, bool) for _ in range(3))
    settle, final = np.zeros(total, np.int32), np.zeros(total, bool)
    if warmup == 0:
        return Schedule(adapting, collect, switch, freeze, settle, final)
    span = int(SETTLE_FRACTION * warmup)
    if warmup >= 100 and span >= 10:
        freeze[warmup - 2 * span - 1] = True
        settle[warmup - 2 * span:warmup - span] = 1
        settle[warmup - span:warmup] = 2
        final[warmup - 1] = True
    else:  # too short to settle: keep the dual-averaging average (Stan)
        freeze[warmup - 1] = True
    gradient = metric in GRADIENT_METRICS
    ends = _gradient_windows(warmup) if gradient else _stan_windows(warmup)
    if ends:
        collect[: ends[-1] + 1] = gradient
        if not gradient:  # Stan collects from the end of its initial buffer
            collect[_stan_init_buffer(warmup): ends[-1] + 1] = True
        switch[ends] = True
    return Schedule(adapting, collect, switch, freeze, settle, final)


def _gradient_windows(warmup: int) -> list[int]:
    """Last transition of each metric window of the gradient-based schedule."""
    if warmup < 20:
        return []
    slow_end = warmup - max(1, int(FINAL_FRACTION * warmup))
    early_end = max(EARLY_SWITCH, int(EARLY_FRACTION * warmup))
    ends = list(range(EARLY_SWITCH - 1, min(early_end, slow_end), EARLY_SWITCH))
    ends += list(range((ends[-1] if ends else -1) + LATE_SWITCH, slow_end, LATE_SWITCH))
    if not ends or ends[-1] != slow_end - 1:
        ends.append(slow_end - 1)
    return ends


def _stan_init_buffer(warmup: int) -> int:
    return 75 if warmup >= 150 else int(0.15 * warmup)


def _stan_windows(warmup: int) -> list[int]:
    """Stan: initial buffer 75, slow windows 25, 50, 100, ... (the last absorbs what is left), terminal 50."""
    if warmup < 20:
        return []
    init, base, term = 75, 25, 50
    if init + base + term > warmup:
        init, term = int(0.15 * warmup), int(0.1 * warmup)
        base = warmup - init - term
    slow_end, start, size, ends = warmup - term, init, base, []
    while start < slow_end:
        if start + 3 * size > slow_end:
            size = slow_end - start
        ends.append(start + size - 1)
        start, size = start + size, 2 * size
    return ends


# --------------------------------------------------------------------------- moments


class Moments(NamedTuple):
    """Welford running moments of the draws (and, for the gradient metric, of the gradients)."""

    n: jax.Array
    mean_x: jax.Array
    m2_x: jax.Array  # (dim,) or (dim, dim)
    mean_g: jax.Array
    m2_g: jax.Array


def _moments_init(dim, metric, dtype):
    z = jnp.zeros(dim, dtype)
    square = jnp.zeros((dim, dim), dtype)
    m2_x = square if metric in DENSE_METRICS else z
    m2_g = square if metric == "low_rank" else z
    return Moments(jnp.zeros((), dtype), z, m2_x, z, m2_g)


def _moments_add(m: Moments, x, g) -> Moments:
    n = m.n + 1
    dx = x - m.mean_x
    mean_x = m.mean_x + dx / n
    m2_x = m.m2_x + (jnp.outer(dx, x - mean_x) if m.m2_x.ndim == 2 else dx * (x - mean_x))
    dg = g - m.mean_g
    mean_g = m.mean_g + dg / n
    m2_g = m.m2_g + (jnp.outer(dg, g - mean_g) if m.m2_g.ndim == 2 else dg * (g - mean_g))
    return Moments(n, mean_x, m2_x, mean_g, m2_g)


def _merge(a: Moments, b: Moments) -> Moments:
    """Moments of the union of two disjoint sets of draws (Chan et al.)."""
    n = a.n + b.n
    safe = jnp.maximum(n, 1)
    dx, dg = b.mean_x - a.mean_x, b.mean_g - a.mean_g
    w = a.n * b.n / safe
    outer_x = jnp.outer(dx, dx) if a.m2_x.ndim == 2 else dx * dx
    outer_g = jnp.outer(dg, dg) if a.m2_g.ndim == 2 else dg * dg
    return Moments(
        n, a.mean_x + dx * b.n / safe, a.m2_x + b.m2_x + w * outer_x,
        a.mean_g + dg * b.n / safe, a.m2_g + b.m2_g + w * outer_g,
    )


def _estimate(metric, m: Moments, current):
    """A new inverse mass matrix from moments (the current one if there are too few draws)."""
    n = m.n
    if metric == "diag":
        var_x, var_g = m.m2_x / jnp.maximum(n - 1, 1), m.m2_g / jnp.maximum(n - 1, 1)
        new = _bounded(jnp.sqrt(var_x / var_g), current)
    elif metric == "low_rank":
        new = _low_rank(m.m2_x / jnp.maximum(n - 1, 1), m.m2_g / jnp.maximum(n - 1, 1))
        new = jnp.where(jnp.all(jnp.isfinite(new)), new, current)
    else:  # Stan's regularised sample (co)variance
        cov = m.m2_x / jnp.maximum(n - 1, 1)
        shrink = 1e-3 * (5.0 / (n + 5.0))
        scaled = (n / (n + 5.0)) * cov
        new = scaled + shrink * (jnp.eye(cov.shape[0], dtype=cov.dtype) if cov.ndim == 2 else 1.0)
    return jnp.where(n >= 3, new, current)


def _bounded(diag, fallback):
    """A diagonal's entries in [CLIP, 1 / CLIP], `fallback` where one is not finite and positive."""
    return jnp.clip(jnp.where(jnp.isfinite(diag) & (diag > 0), diag, fallback), CLIP, 1 / CLIP)


def _low_rank(cov_x, cov_g):
    """nutpie's low-rank modified diagonal from the covariances of the draws and the gradients."""
    diag = _bounded(jnp.sqrt(jnp.diagonal(cov_x) / jnp.diagonal(cov_g)), 1.0)
    half = jnp.sqrt(diag)
    eye = jnp.eye(diag.shape[0], dtype=diag.dtype)
    c_x = cov_x / jnp.outer(half, half) + LOW_RANK_GAMMA * eye  # Cov(D^-1/2 x)
    c_g = cov_g * jnp.outer(half, half) + LOW_RANK_GAMMA * eye  # Cov(D^1/2 g)
    g_half, g_inv_half = _sqrt_and_inverse_sqrt(c_g)
    # geometric mean C_x # C_g^-1 = C_g^-1/2 (C_g^1/2 C_x C_g^1/2)^1/2 C_g^-1/2
    middle, _ = _sqrt_and_inverse_sqrt(g_half @ c_x @ g_half)
    optimum = g_inv_half @ middle @ g_inv_half
    lam, u = jnp.linalg.eigh(0.5 * (optimum + optimum.T))
    keep = (lam > LOW_RANK_CUTOFF) | (lam < 1 / LOW_RANK_CUTOFF)
    scaled = eye + (u * jnp.where(keep, lam - 1.0, 0.0)) @ u.T
    return scaled * jnp.outer(half, half)


def _sqrt_and_inverse_sqrt(a):
    lam, u = jnp.linalg.eigh(0.5 * (a + a.T))
    lam = jnp.maximum(lam, jnp.finfo(a.dtype).tiny)
    return (u * jnp.sqrt(lam)) @ u.T, (u / jnp.sqrt(lam)) @ u.T


# --------------------------------------------------------------------------- the adaptation state


class DualAveraging(NamedTuple):
    log_step: jax.Array
    log_step_avg: jax.Array
    t: jax.Array
    error_avg: jax.Array
    mu: jax.Array


def _da_start(step_size) -> DualAveraging:
    log = jnp.log(step_size)
    z = jnp.zeros_like(log)
    return DualAveraging(log, z, z, z, jnp.log(10.0) + log)


def _da_update(da: DualAveraging, acceptance, target) -> DualAveraging:
    t = da.t + 1
    error_avg = (1 - 1 / (t + DA_T0)) * da.error_avg + (target - acceptance) / (t + DA_T0)
    log_step = da.mu - jnp.sqrt(t) / DA_GAMMA * error_avg
    weight = t**-DA_KAPPA
    log_step_avg = weight * log_step + (1 - weight) * da.log_step_avg
    return DualAveraging(log_step, log_step_avg, t, error_avg, da.mu)


class AdaptationState(NamedTuple):
    step_size: jax.Array  # used by the next transition
    inverse_mass_matrix: jax.Array
    da: DualAveraging
    window: Moments  # draws of the current window
    previous: Moments  # draws of the previous window (the gradient metric estimates from both)
    log_step_sum: jax.Array  # log step sizes of settling window 2, summed
    settle_n: jax.Array


def initial_inverse_mass_matrix(metric: str, grad):
    """Gradient metric: 1/|grad| at the start (scale-aware from the first draw); Stan's: identity."""
    dim = grad.shape[0]
    if metric == "dense":
        return jnp.eye(dim, dtype=grad.dtype)
    if metric == "diag_welford":
        return jnp.ones(dim, grad.dtype)
    inv = _bounded(1.0 / jnp.abs(grad), 1.0)
    return jnp.diag(inv) if metric == "low_rank" else inv


def init(metric: str, grad, step_size) -> AdaptationState:
    dim, dtype = grad.shape[0], grad.dtype
    empty = _moments_init(dim, metric, dtype)
    imm = initial_inverse_mass_matrix(metric, grad)
    zero = jnp.zeros((), dtype)
    return AdaptationState(jnp.asarray(step_size, dtype), imm, _da_start(step_size), empty, empty, zero, zero)


def update(metric: str, target: float, state: AdaptationState, acceptance, position, grad, sched):
    """After one warmup transition: step size and metric moments. Returns ``(state, switch)``;
    where `switch` is set the driver calls `switch_metric` (and then re-finds the step size)."""
    adapting, collect, switch, freeze, settle, final = sched
    settling = settle > 0
    da = jax.tree.map(lambda n, o: jnp.where(settling, o, n), _da_update(state.da, acceptance, target), state.da)
    # settling: log eps += gain (acceptance - target), a Robbins-Monro step with a small constant gain
    settled = jnp.log(state.step_size) + SETTLE_GAIN * (acceptance - target)
    log_step_sum = state.log_step_sum + jnp.where(settle == 2, settled, 0.0)
    settle_n = state.settle_n + (settle == 2)
    window = _moments_add(state.window, position, grad)
    window = jax.tree.map(lambda n, o: jnp.where(collect, n, o), window, state.window)

    step_size = jnp.where(settling, jnp.exp(settled), jnp.exp(da.log_step))
    step_size = jnp.where(freeze, jnp.exp(da.log_step_avg), step_size)
    step_size = jnp.where(final, jnp.exp(log_step_sum / jnp.maximum(settle_n, 1)), step_size)
    new = state._replace(step_size=step_size, da=da, window=window, log_step_sum=log_step_sum, settle_n=settle_n)
    new = jax.tree.map(lambda n, o: jnp.where(adapting, n, o), new, state)
    return new, adapting & switch


def switch_metric(metric: str, state: AdaptationState) -> AdaptationState:
    """End of a metric window: the new inverse mass matrix, and the windows move on (the gradient
    metric estimates from the last two windows, Stan's from the last one)."""
    source = _merge(state.previous, state.window) if metric in GRADIENT_METRICS else state.window
    imm = _estimate(metric, source, state.inverse_mass_matrix)
    empty = _moments_init(state.window.mean_x.shape[0], metric, state.window.mean_x.dtype)
    return state._replace(inverse_mass_matrix=imm, previous=state.window, window=empty)


def restart(state: AdaptationState, step_size) -> AdaptationState:
    """Dual averaging from a step size found for a new metric (Stan: mu = log(10 eps))."""
    return state._replace(step_size=step_size, da=_da_start(step_size))
