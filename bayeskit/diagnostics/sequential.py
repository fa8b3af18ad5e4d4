"""Model comparison for state-space models by one-step-ahead (prequential) log predictive densities.

PSIS-LOO does not apply to a time series: leaving y_t out breaks the dependence that defines the
model. Its sequential analogue is the log predictive density of the data built one step at a time,

    elpd = log p(y_{0:T−1}) = Σ_t log p(y_t | y_{0:t−1}),

which a particle filter estimates with its log-likelihood increments log p̂_r(y_t | y_{0:t−1}) (one
row per independent filter run r = 1..R; `SMCPosterior.one_step_log_densities`, (R, T)).

**Which estimate.** Each run's p̂_r(y) = Π_t p̂_r(y_t | y_{0:t−1}) is unbiased for p(y); its log is
not. Under the particle-filter CLT log p̂_r ≈ N(log p(y) − σ²/2, σ²) (Bérard, Del Moral & Doucet
2014), so the mean over runs of log p̂_r is low by σ²/2 however many runs there are. Reported is
the log of the mean over runs of the unbiased estimates,

    elpd = log (1/R) Σ_r p̂_r(y),

the log of one unbiased estimate from R·N particles (R filters that never interact), low by only
about σ²/(2R). Its pointwise terms, which sum to it exactly, are the pooled one-step densities

    e_t = log Σ_r W_{r,t−1} p̂_r(y_t | y_{0:t−1}),   W_{r,t−1} ∝ p̂_r(y_{0:t−1})

(each run's one-step density weighted by how well it predicted the past). ``mean_log``
(Σ_t of the mean over runs of log p̂_r(y_t | ·)) is kept too, for the comparison.

**In-sample or not.** The filter conditions on the model's parameters as given, so elpd is
log p(y | θ). Parameters fitted to the same y (`Learn`, or by hand) make it optimistic, as any
in-sample score is; fit them on y_{0:s−1} and pass ``start=s`` to score only the steps after:
Σ_{t≥s} log p(y_t | y_{0:t−1}) = log p(y_{s:T−1} | y_{0:s−1}), predictions of data the
parameters did not see (leave-future-out, Bürkner, Gabry & Vehtari 2020, with one-step-ahead
predictions from the filter instead of refits).

**Errors.** ``se`` is ArviZ's sqrt(T · var_t(e_t)) over the observed steps: the centred terms
log p(y_t | y_{0:t−1}) − E[· | y_{0:t−1}] are martingale differences, so they are uncorrelated and
the variance of the sum is the sum of their variances (the spread of the conditional means over
time only makes it conservative). ``dse`` is the same from the paired per-time differences. Both
are statistical uncertainty, about the data. ``mcse`` is Monte Carlo uncertainty, about the filter:
the delta-method standard error of log of the mean over runs, sd_r(R W_r − 1)/√R with W_r ∝ p̂_r(y);
``mcse_diff`` is that of elpd_diff from the paired runs (run r of one model with run r of the other,
valid whether their random numbers were shared or not; independent runs when the numbers of runs
differ). The delta method needs the runs' weights not to be dominated by a few runs, which holds
while ``sd_runs`` (the sd of log p̂_r(y) over runs, σ above) is about 1 or less.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ..core.checks import check_bool, check_int
from ..core.errors import ConfigError, DataError

SD_RUNS_LIMIT = 1.0  # above this sd of log p̂(y) over runs, a few runs carry the average: warn
MCSE_FRACTION = 0.25  # warn when mcse_diff exceeds this fraction of max(|elpd_diff|, dse)


@dataclass(frozen=True)
class SequentialELPD:
    """The one-step-ahead log predictive density of one model's filter runs (see the module docstring).

    ``elpd`` log of the mean over runs of p̂_r(y) (with ``start``, of the ratio estimating
    p(y_{start:} | y_{0:start−1})); ``se`` its standard error over time steps; ``mcse`` its Monte
    Carlo standard error over runs (nan with one run); ``pointwise`` (T,) the pooled one-step log
    densities e_t (those from ``start`` on sum to ``elpd``); ``observed`` (T,) the observed steps;
    ``start`` the first step that counts; ``runs``; ``sd_runs`` the sd over runs of log p̂_r of what
    is scored; ``mean_log`` its mean over runs, low by about sd_runs²/2; ``influence`` (R,) each
    run's term in the delta-method ``mcse`` (R W_r − 1 without ``start``).
    """

    elpd: float
    se: float
    mcse: float
    pointwise: np.ndarray
    observed: np.ndarray
    start: int
    runs: int
    sd_runs: float
    mean_log: float
    influence: np.ndarray

    @property
    def n_obs(self) -> int:
        """The number of observed steps that count (from ``start`` on)."""
        return int(self.observed[self.start:].sum())

    def __repr__(self):
        return (f"SequentialELPD(elpd {self.elpd:.2f}, se {self.se:.2f}, mcse {self.mcse:.3f}; "
                f"{self.n_obs} observed steps, {self.runs} runs, sd of log p̂(y) over runs {self.sd_runs:.3f})")


def _densities(obj, label: str):
    """(one-step log densities (R, T), observed (T,) bool, observations or None) of a posterior with
    ``one_step_log_densities`` (and optionally ``observed`` and ``ys``), or of an array (R, T) / (T,)."""
    if hasattr(obj, "one_step_log_densities"):
        values = obj.one_step_log_densities
        if values is None:
            raise ConfigError(f"{label} holds no one-step log predictive densities (a posterior read back from a "
                              f"file, or made by an engine that does not keep them): refit it with a particle "
                              f"filter (e.g. bk.ParticleFilter(runs=10))")
        observed, ys = getattr(obj, "observed", None), getattr(obj, "ys", None)
    elif isinstance(obj, (np.ndarray, list, tuple)) or hasattr(obj, "__array__"):
        values, observed, ys = obj, None, None
    else:
        raise ConfigError(f"{label} must be a posterior with `one_step_log_densities` (an SMCPosterior; one read "
                          f"back from a file does not keep them: refit it) or an array (runs, T) of "
                          f"log p̂(y_t | y_0:t−1), got {type(obj).__name__}")
    try:
        L = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{label}: the one-step log densities must be numbers, got {type(values).__name__}") from None
    if L.ndim == 1:
        L = L[None]
    if L.ndim != 2 or L.shape[1] < 1 or L.shape[0] < 1:
        raise DataError(f"{label}: the one-step log densities must have shape (runs, T) or (T,), got {L.shape}")
    if not np.isfinite(L).all():
        raise DataError(f"{label}: the one-step log densities have non-finite values (a failed filter run)")
    T = L.shape[1]
    observed = np.ones(T, bool) if observed is None else np.asarray(observed, dtype=bool).reshape(-1)
    if observed.shape != (T,):
        raise DataError(f"{label}: `observed` has shape {observed.shape}, expected ({T},)")
    return L, observed, None if ys is None else np.asarray(ys)


def _check_start(start, T: int) -> int:
    check_int("start", start, 0, "the first time step that counts", maximum=T - 1)
    return int(start)


def _elpd(L: np.ndarray, observed: np.ndarray, start: int) -> SequentialELPD:
    R = L.shape[0]
    cumulative = np.cumsum(L, axis=1)  # log p̂_r(y_{0:t})
    pooled = logsumexp(cumulative, axis=0) - np.log(R)  # log (1/R) Σ_r p̂_r(y_{0:t}), (T,)
    pointwise = np.diff(pooled, prepend=0.0)
    before = pooled[start - 1] if start else 0.0
    elpd = float(pooled[-1] - before)  # log of the ratio of pooled estimates, p(y_{start:} | y_{0:start−1})
    e = pointwise[start:][observed[start:]]
    se = float(np.sqrt(e.size * np.var(e))) if e.size else 0.0
    total = cumulative[:, -1] - (cumulative[:, start - 1] if start else 0.0)  # log p̂_r(y_{start:} | ·)

    def shares(logz):  # R W_r with W_r ∝ exp(logz_r)
        return R * np.exp(logz - logsumexp(logz))

    # delta method for log(mean_r a_r) − log(mean_r b_r), a_r = p̂_r(y), b_r = p̂_r(y_{0:start−1})
    influence = shares(cumulative[:, -1]) - (shares(cumulative[:, start - 1]) if start else 1.0)
    mcse = float(np.sqrt(np.sum((influence - influence.mean()) ** 2) / (R * (R - 1)))) if R > 1 else float("nan")
    return SequentialELPD(elpd=elpd, se=se, mcse=mcse, pointwise=pointwise, observed=observed, start=start, runs=R,
                          sd_runs=float(np.std(total, ddof=1)) if R > 1 else float("nan"),
                          mean_log=float(np.mean(total)), influence=influence)


def sequential_elpd(posterior, *, start: int = 0) -> SequentialELPD:
    """The one-step-ahead (prequential) log predictive density of a state-space fit: the sequential
    analogue of ``az.loo`` (see the module docstring for the estimate and its errors).

    `posterior` is anything with ``one_step_log_densities`` (runs, T) (an `SMCPosterior` of
    `bk.ParticleFilter`, `bk.PaRIS` or `bk.ParticleGibbs`), and optionally ``observed`` (T,) marking
    the steps that count, or the array itself. ``start`` scores only y_start … y_{T−1} (given the
    steps before: for parameters fitted on y_{0:start−1}).
    """
    L, observed, _ = _densities(posterior, "`posterior`")
    return _elpd(L, observed, _check_start(start, L.shape[1]))


def compare_sequential(posteriors: Mapping, *, start: int = 0, warn: bool = True):
    """Compare state-space models fitted to the same series by their one-step-ahead log predictive
    densities, in the layout of ``az.compare``.

    Args:
        posteriors: dict name -> posterior with ``one_step_log_densities`` (runs, T) (`SMCPosterior`;
            or the arrays themselves), all on the same T observations.
        start: score only y_start … y_{T−1}, each given the steps before it (for parameters fitted
            on y_{0:start−1}: then the comparison is out of sample).
        warn: warn when a model has one run (no Monte Carlo error), when log p̂(y) varies by more
            than 1 over runs (the estimates are carried by a few runs), or when the Monte Carlo error
            of a difference is over a quarter of max(|elpd_diff|, dse) (the ranking may be noise).

    Returns a pandas DataFrame indexed by name, best first: ``rank``, ``elpd``, ``se``,
    ``elpd_diff`` (best − this, ≥ 0), ``dse`` (from the paired per-time differences), ``mcse`` and
    ``mcse_diff`` (Monte Carlo standard errors over filter runs), ``runs``, ``sd_runs`` (sd of
    log p̂(y) over runs) and ``warning``. ``df.attrs["pointwise"]`` holds each model's (T,) terms.
    """
    import pandas as pd

    check_bool("warn", warn)
    if not isinstance(posteriors, Mapping):
        raise ConfigError(f"`posteriors` must be a dict name -> posterior, got {type(posteriors).__name__}")
    if len(posteriors) < 2:
        raise ConfigError(f"`posteriors` must hold at least two models to compare, got {len(posteriors)}")
    parts = {name: _densities(post, f"`posteriors[{name!r}]`") for name, post in posteriors.items()}
    names = list(parts)
    first = names[0]
    L0, obs0, ys0 = parts[first]
    for name in names[1:]:
        L, obs, ys = parts[name]
        if L.shape[1] != L0.shape[1]:
            raise DataError(f"`posteriors`: {name!r} has {L.shape[1]} time steps but {first!r} has {L0.shape[1]}; "
                            f"models are compared on the same observations")
        if not np.array_equal(obs, obs0):
            raise DataError(f"`posteriors`: {name!r} and {first!r} observe different time steps (missing values "
                            f"differ); models are compared on the same observations")
        if ys is not None and ys0 is not None and not np.array_equal(ys, ys0):
            raise DataError(f"`posteriors`: {name!r} and {first!r} were fitted to different observations `y`; "
                            f"models are compared on the same data")
    start = _check_start(start, L0.shape[1])
    results = {name: _elpd(L, obs, start) for name, (L, obs, _) in parts.items()}
    order = sorted(names, key=lambda n: -results[n].elpd)
    best = results[order[0]]
    problems = {name: [] for name in names}
    rows = []
    for rank, name in enumerate(order):
        r = results[name]
        diff = best.elpd - r.elpd
        d = (best.pointwise - r.pointwise)[start:][best.observed[start:]]
        dse = float(np.sqrt(d.size * np.var(d))) if rank else 0.0
        if rank == 0:
            mcse_diff = 0.0
        elif r.runs == best.runs:  # run r of one model paired with run r of the other
            u = best.influence - r.influence
            mcse_diff = float(np.sqrt(np.sum((u - u.mean()) ** 2) / (r.runs * (r.runs - 1)))) if r.runs > 1 \
                else float("nan")
        else:
            mcse_diff = float(np.hypot(best.mcse, r.mcse))
        if r.runs < 2:
            problems[name].append("one filter run, so no Monte Carlo error: fit with runs >= 2 (e.g. runs=10)")
        elif r.sd_runs > SD_RUNS_LIMIT:
            problems[name].append(f"log p̂(y) varies by sd {r.sd_runs:.2f} over runs (> {SD_RUNS_LIMIT:g}): a few "
                                  f"runs carry the average, so elpd and its Monte Carlo error are unreliable; use "
                                  f"more particles or a better proposal")
        if rank and np.isfinite(mcse_diff) and mcse_diff > MCSE_FRACTION * max(diff, dse):
            problems[name].append(f"the Monte Carlo error of elpd_diff against {order[0]!r} ({mcse_diff:.3g}) is over "
                                  f"{MCSE_FRACTION:g} of max(elpd_diff {diff:.3g}, dse {dse:.3g}): the ranking may be "
                                  f"particle noise; use more particles or runs")
        rows.append({"rank": rank, "elpd": r.elpd, "se": r.se, "elpd_diff": diff, "dse": dse, "mcse": r.mcse,
                     "mcse_diff": mcse_diff, "runs": r.runs, "sd_runs": r.sd_runs, "warning": bool(problems[name])})
    table = pd.DataFrame(rows, index=pd.Index(order, name="model"))
    table.attrs["pointwise"] = {name: results[name].pointwise for name in order}
    table.attrs["scale"] = "log"
    if warn:
        for name in order:
            for problem in problems[name]:
                warnings.warn(f"compare_sequential, {name!r}: {problem}", UserWarning, stacklevel=2)
    return table
