"""Rank-normalised split R-hat, bulk ESS and E-BFMI in NumPy, for the checks every fit runs.

The same estimators as ArviZ (Vehtari, Gelman, Simpson, Carpenter and Bürkner 2021; ArviZ's
``rhat(method="rank")``, ``ess(method="bulk")`` and ``bfmi``), computed for all scalar components
of a variable at once. `bk.fit` checks every sampler's draws with them: importing ArviZ and
going through xarray cost 1.5-2 s on a first fit and 0.1 s on every fit, more than sampling a
small model takes. `tests/test_chain_stats.py` holds them equal to ArviZ's (1e-10).

Arrays are ``(chain, draw, *shape)``; results have ``shape``.

* split chains: each chain's first and last ``draw // 2`` draws become two chains;
* rank normalisation: average ranks over all split draws, Blom's offset
  ``z = Φ⁻¹((r - 3/8) / (N + 1/4))``;
* R-hat: the larger of the split R-hat of the z-scores and of the z-scores of the draws folded
  about their median, ``sqrt(((n-1)/n W + B/n) / W)``;
* bulk ESS: ``C n / τ`` from the z-scores, with τ from Geyer's initial monotone sequence of
  autocorrelations (FFT autocovariances, combined across chains as in Stan).
"""

from __future__ import annotations

import numpy as np

MIN_DRAWS = 4  # fewer draws per chain: R-hat and ESS are undefined (NaN), as in ArviZ


def rhat(x) -> np.ndarray:
    """Rank-normalised split R-hat per scalar component (NaN with < 2 chains, < 4 draws or NaN draws)."""
    return rhat_and_ess_bulk(x)[0]


def ess_bulk(x) -> np.ndarray:
    """Bulk effective sample size per scalar component (NaN with < 4 draws or NaN draws)."""
    return rhat_and_ess_bulk(x, rhat=False)[1]


def rhat_and_ess_bulk(x, rhat: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Both from one rank normalisation of the split chains (what the post-fit check needs)."""
    x = np.asarray(x, dtype=float)
    chains, draws = x.shape[:2]
    flat = _components(x)
    r_out, e_out = np.full(flat.shape[0], np.nan), np.full(flat.shape[0], np.nan)
    if draws >= MIN_DRAWS:
        ok = ~np.isnan(flat).any(axis=(1, 2))
        split = _split(flat[ok])
        z = _z_scale(split)
        e_out[ok] = _ess(z)
        if rhat and chains >= 2:
            folded = np.abs(split - np.median(split.reshape(split.shape[0], -1), axis=1)[:, None, None])
            with np.errstate(invalid="ignore", divide="ignore"):
                r_out[ok] = np.maximum(_split_rhat(z), _split_rhat(_z_scale(folded)))
    return r_out.reshape(x.shape[2:]), e_out.reshape(x.shape[2:])


def bfmi(energy) -> np.ndarray:
    """E-BFMI per chain: mean squared energy change over the energy's variance (Betancourt 2016)."""
    energy = np.asarray(energy, dtype=float)
    return np.square(np.diff(energy, axis=1)).mean(axis=1) / np.var(energy, axis=1, ddof=1)


# -- pieces ---------------------------------------------------------------------------------------


def _components(x):
    """(chain, draw, *shape) -> (component, chain, draw)."""
    chains, draws = x.shape[:2]
    return np.moveaxis(x.reshape(chains, draws, -1), 2, 0)


def _split(a):
    """(k, chain, draw) -> (k, 2 chain, draw // 2): each chain's first and last halves."""
    half = a.shape[2] // 2
    return np.concatenate([a[:, :, :half], a[:, :, a.shape[2] - half:]], axis=1)


def _z_scale(a):
    """Normal scores of the average ranks of each component's values (Blom's offset 3/8)."""
    from scipy.special import ndtri  # already imported by JAX

    k = a.shape[0]
    flat = a.reshape(k, -1)
    n = flat.shape[1]
    order = np.argsort(flat, axis=1)  # ties get their average rank below, whatever their order
    s = np.take_along_axis(flat, order, axis=1)
    pos = np.broadcast_to(np.arange(n), s.shape)
    new = np.ones_like(s, dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]  # first of a run of ties
    last = np.ones_like(s, dtype=bool)
    last[:, :-1] = new[:, 1:]
    first_pos = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    last_pos = np.flip(np.minimum.accumulate(np.flip(np.where(last, pos, n), axis=1), axis=1), axis=1)
    ranks = np.empty_like(s)
    np.put_along_axis(ranks, order, (first_pos + last_pos) / 2.0 + 1.0, axis=1)
    return ndtri((ranks - 3 / 8) / (n - 2 * 3 / 8 + 1)).reshape(a.shape)


def _split_rhat(z):
    """(k, chain, draw) -> (k,): sqrt((B / W + n - 1) / n)."""
    n = z.shape[2]
    between = n * np.var(z.mean(axis=2), axis=1, ddof=1)
    within = np.var(z, axis=2, ddof=1).mean(axis=1)
    return np.sqrt((between / within + n - 1) / n)


def _autocov(a):
    """Autocovariances along the last axis (FFT; biased, divided by the length)."""
    from scipy.fft import next_fast_len

    n = a.shape[-1]
    m = next_fast_len(2 * n)
    a = a - a.mean(axis=-1, keepdims=True)
    f = np.fft.rfft(a, n=m, axis=-1)
    f *= np.conjugate(f)
    return np.fft.irfft(f, n=m, axis=-1)[..., :n] / n


def _ess(z):
    """(k, chain, draw) -> (k,) effective sample sizes (Geyer's initial monotone sequence)."""
    k, chains, n = z.shape
    out = np.empty(k)
    acov = _autocov(z)
    mean_acov = acov.mean(axis=1)  # (k, lag): combined across chains
    mean_var = mean_acov[:, 0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if chains > 1:
        var_plus = var_plus + np.var(z.mean(axis=2), axis=1, ddof=1)
    constant = (z.max(axis=(1, 2)) - z.min(axis=(1, 2))) < np.finfo(float).resolution
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (mean_var[:, None] - mean_acov) / var_plus[:, None]
    for i in range(k):
        out[i] = chains * n if constant[i] else _geyer(rho[i], chains, n)
    return out


def _geyer(rho, chains, n):
    """C n / τ from one component's autocorrelations ``rho`` (ArviZ's loop, kept step for step so
    the truncation decisions match)."""
    r = rho.tolist()
    t_hat = [0.0] * n
    even, odd = 1.0, r[1]
    t_hat[0], t_hat[1] = even, odd
    t = 1
    while t < n - 3 and even + odd > 0.0:  # initial positive sequence
        even, odd = r[t + 1], r[t + 2]
        if even + odd >= 0:
            t_hat[t + 1], t_hat[t + 2] = even, odd
        t += 2
    max_t = t - 2
    if even > 0:
        t_hat[max_t + 1] = even
    t = 1
    while t <= max_t - 2:  # made monotone
        if t_hat[t + 1] + t_hat[t + 2] > t_hat[t - 1] + t_hat[t]:
            t_hat[t + 1] = t_hat[t + 2] = (t_hat[t - 1] + t_hat[t]) / 2.0
        t += 2
    total = chains * n
    tau = -1.0 + 2.0 * sum(t_hat[: max_t + 1]) + sum(t_hat[max_t + 1: max_t + 2])
    tau = max(tau, 1 / np.log10(total))
    if any(v != v for v in t_hat):  # NaN
        return float("nan")
    return total / tau
