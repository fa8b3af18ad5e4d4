"""The one module that imports ArviZ (0.2x on Python 3.11, 1.x later).

Everything ArviZ computes for bayeskit goes through here, so an ArviZ upgrade
touches one file.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the 0.2x "undergoing a refactor" notice
        import arviz

    return arviz


def to_inference_data(posterior, log_likelihood="auto", posterior_predictive="auto"):
    """An ``arviz.InferenceData`` holding every group of `posterior` (its pointwise log-likelihood and
    posterior predictive draws unless either is False)."""
    az = _arviz()
    return az.InferenceData(**posterior.to_xarray(log_likelihood=log_likelihood,
                                                  posterior_predictive=posterior_predictive))


def _draws_only(posterior):
    """The InferenceData summaries and plots of draws need: no log-likelihood or replicates to compute."""
    return to_inference_data(posterior, log_likelihood=False, posterior_predictive=False)


def from_groups(groups: dict):
    """An ``arviz.InferenceData`` of xarray Datasets by group name (prior draws, for one)."""
    return _arviz().InferenceData(**groups)


def summary(posterior, *, kind: str = "all", ci_prob: float = 0.94, interval: str = "hdi", idata=None, **kwargs):
    """Per-scalar table: mean, sd, a `ci_prob` interval, MCSE, ESS bulk/tail, R-hat.

    ``interval="hdi"`` gives the highest-density interval (ArviZ's default), ``"eti"`` the
    equal-tailed one (quantiles (1 - ci_prob)/2 and (1 + ci_prob)/2). ``kind`` is ArviZ's:
    "all", "stats" or "diagnostics". ``idata``: the posterior's InferenceData where the caller has
    it already (a report), so that draws are not made again.
    """
    from ..core.errors import ConfigError

    if interval not in ("hdi", "eti"):
        raise ConfigError(f"`interval` must be 'hdi' or 'eti', got {interval!r}")
    if not 0 < ci_prob < 1:
        raise ConfigError(f"`ci_prob` must be in (0, 1), got {ci_prob!r}")
    if kind not in ("all", "stats", "diagnostics"):
        raise ConfigError(f"`kind` must be 'all', 'stats' or 'diagnostics', got {kind!r}")
    az = _arviz()
    idata = _draws_only(posterior) if idata is None else idata
    names = kwargs.get("var_names")
    if names is not None:
        names = [names] if isinstance(names, str) else list(names)
        known = list(idata.posterior.data_vars)
        missing = [n for n in names if n.lstrip("~") not in known] if not kwargs.get("filter_vars") else []
        if missing:
            from ..core.errors import DataError

            raise DataError(f"`var_names` names {', '.join(map(repr, missing))}, not in the posterior; its "
                            f"variables are {', '.join(map(repr, known))}")
    markov = getattr(posterior, "markov", True)
    with warnings.catch_warnings(), _quiet(not markov):
        warnings.simplefilter("ignore", UserWarning)  # "shape validation failed" for 1-chain posteriors
        table = az.summary(idata, kind=kind, hdi_prob=ci_prob, **kwargs)
        if not markov:  # independent draws: R-hat compares Markov chains and means nothing here
            table = table.drop(columns=[c for c in table.columns if c == "r_hat"])
        if interval == "eti" and kind != "diagnostics":
            # ArviZ's median-focused summary carries the equal-tailed interval; keep mean and sd.
            eti = az.summary(idata, kind="stats", hdi_prob=ci_prob, stat_focus="median", **kwargs)
            hdi_cols = [c for c in table.columns if c.startswith("hdi_")]
            eti_cols = [c for c in eti.columns if c.startswith("eti_")]
            at = table.columns.get_loc(hdi_cols[0])
            table = table.drop(columns=hdi_cols)
            for offset, col in enumerate(eti_cols):
                table.insert(at + offset, col, eti[col])
    return table


@contextlib.contextmanager
def _quiet(enabled: bool):
    """Silence ArviZ's logger (its R-hat "shape validation failed" notice for one chain of independent draws)."""
    # ArviZ 0.x logs through its own `Logger("arviz")` instance, not the registry's logging.getLogger("arviz")
    logger = getattr(_arviz(), "_log", None) or logging.getLogger("arviz")
    level = logger.level
    if enabled:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def rhat(posterior) -> dict[str, np.ndarray]:
    """Rank-normalised split R-hat per variable (Vehtari et al. 2021)."""
    return _per_variable(posterior, "rhat")


def ess(posterior, method: str = "bulk", idata=None) -> dict[str, np.ndarray]:
    """Effective sample size per variable: ``method`` "bulk" or "tail" (of ``idata`` where given)."""
    return _per_variable(posterior, "ess", idata=idata, method=method)


def mcse(posterior, method: str = "mean") -> dict[str, np.ndarray]:
    """Monte Carlo standard error per variable."""
    return _per_variable(posterior, "mcse", method=method)


def _per_variable(posterior, fn: str, idata=None, **kwargs):
    az = _arviz()
    idata = _draws_only(posterior) if idata is None else idata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ds = getattr(az, fn)(idata, **kwargs)
    return {k: np.asarray(v) for k, v in ds.data_vars.items()}


def bfmi(posterior) -> np.ndarray:
    """E-BFMI per chain from the ``energy`` sample statistic."""
    az = _arviz()
    return np.asarray(az.bfmi(np.asarray(posterior.sample_stats["energy"])))


def plot_trace(posterior, path, var_names=None) -> None:
    _plot(posterior, path, "plot_trace", var_names=var_names)


def plot_rank(posterior, path, var_names=None) -> None:
    _plot(posterior, path, "plot_rank", var_names=var_names)


def loo(idata, var_name=None):
    """PSIS-LOO of an InferenceData with a ``log_likelihood`` group (pointwise, with Pareto k)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Estimated shape parameter of Pareto ... greater than 0.7"
        return _arviz().loo(idata, var_name=var_name, pointwise=True)


def plot_png(idata, fn: str, dpi: int = 80, **kwargs) -> bytes:
    """The figure ArviZ's ``az.<fn>(idata, **kwargs)`` draws, as PNG bytes (the figure is closed)."""
    import io

    plt = _pyplot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # ArviZ 0.x's calls that matplotlib 3.11 deprecates
        axes = getattr(_arviz(), fn)(idata, **kwargs)
    fig = np.asarray(axes).ravel()[0].figure
    try:
        if fig.get_layout_engine() is None:  # titles clear of tick labels (cheaper than tight_layout)
            fig.set_layout_engine("constrained")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def _pyplot():
    """pyplot, on a non-interactive backend when the current one would open windows."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "png"):
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _plot(posterior, path, fn, **kwargs):
    plt = _pyplot()
    az = _arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        axes = getattr(az, fn)(_draws_only(posterior), compact=False, **kwargs) if fn == "plot_trace" else (
            getattr(az, fn)(_draws_only(posterior), **kwargs)
        )
    fig = np.asarray(axes).ravel()[0].figure
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
