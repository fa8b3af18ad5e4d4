"""Calibration checks of any engine: simulation-based calibration (SBC) and predictive PIT.

**SBC** (Talts, Betancourt, Simpson, Vehtari and Gelman 2018). If θ̃ ~ p(θ), ỹ ~ p(y | θ̃) and
θ₁ … θ_L are draws of p(θ | ỹ), the rank of θ̃ among them, r = #{θ_l < θ̃}, is uniform on
{0 … L} for every scalar of θ: any engine that returns the exact posterior passes, whatever the
model. Ranks piled at the ends (∪) mean the engine's posterior is too narrow, a hump (∩) too
wide, a slope a bias. `sbc` runs the loop through `bk.fit` with the engine as given, so what is
checked is exactly what a user gets; `SBCResult` tests each scalar's ranks with the ECDF test and
its simultaneous bands (`uniformity`) and draws the ECDF-difference plots.

MCMC draws are autocorrelated, and ranks of correlated draws are not uniform even for an exact
sampler (Talts §4.1): the L draws are taken evenly spaced through the chains (thinning), and each
fit's bulk ESS is kept; a result warns when the ESS fell below L.

**Predictive PIT** (`pit_calibration`), for engines that predict rather than sample parameters
(PFN, neural processes): datasets drawn from the prior, the engine conditioned on a context, and
the PIT u = F(ỹ) of a held-out point under the predictive CDF F. Calibrated predictives give
uniform u; the interval coverages are reported too.

Why not ``simuk`` (ArviZ's SBC package): it runs PyMC, Bambi or a NumPyro MCMC kernel itself, so it
cannot check VI, particle Gibbs, processes or PFNs as bayeskit fits them; it ranks unthinned
chains; and its plots need ArviZ 1.x (Python >= 3.12). `SBCResult.to_dataset` gives its layout
(a ``prior_sbc`` group of ranks, chain × draw = 1 × simulations) for ArviZ 1.x's ``plot_ecdf_pit``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..core.checks import check_int
from ..core.errors import BayeskitError, ConfigError, ConvergenceWarning, DataError, ModelError, SamplingError
from .uniformity import UniformityTest, randomised_pit, uniformity_test

ALPHA = 0.05  # family-wise level of a result's verdict (Bonferroni over its scalars)
MAX_PANELS = 24  # scalars drawn by `SBCResult.plot` unless named


@dataclasses.dataclass
class SBCResult:
    """Ranks of the true values among each fit's draws: ``ranks[name]`` is ``(simulations, *shape)``
    with entries in ``0 … draws``. ``truth`` holds the simulated values; ``ess`` each fit's smallest
    bulk ESS over the checked scalars (NaN for independent draws); ``problems`` the warnings each fit
    raised. ``kind`` is "ranks" (SBC) or "pit" (a predictive PIT: ``pit`` holds the values)."""

    ranks: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]
    draws: int
    ess: np.ndarray
    problems: list[list[str]]
    seed: int = 0
    engine: Any = None
    kind: str = "ranks"
    values: dict[str, np.ndarray] | None = None  # PIT values, when kind == "pit"
    coverage: dict[float, float] | None = None

    @property
    def simulations(self) -> int:
        return int(next(iter(self.ranks.values())).shape[0]) if self.ranks else 0

    def pit(self) -> dict[str, np.ndarray]:
        """Values on (0, 1), uniform when calibrated: randomised ranks (seeded: the same result
        gives the same values) or the predictive PITs."""
        if self.kind == "pit":
            return self.values
        rng = np.random.default_rng([self.seed, 7919])
        return {k: randomised_pit(r, self.draws, rng) for k, r in self.ranks.items()}

    def scalars(self) -> list[tuple[str, str, np.ndarray]]:
        """(variable, label such as ``theta[3]``, its values over simulations) per scalar."""
        out = []
        for name, u in self.pit().items():
            u = u.reshape(u.shape[0], -1)
            shape = self.truth[name].shape[1:] if name in self.truth else ()
            for j in range(u.shape[1]):
                index = np.unravel_index(j, shape) if shape else ()
                label = f"{name}[{','.join(map(str, index))}]" if index else name
                out.append((name, label, u[:, j]))
        return out

    def tests(self, alpha: float = ALPHA) -> dict[str, UniformityTest]:
        """The ECDF uniformity test of each scalar (bands of level 1 − alpha each)."""
        self._need(2)
        return {label: uniformity_test(u, alpha=alpha) for _, label, u in self.scalars()}

    def table(self, alpha: float = ALPHA):
        """A DataFrame, one row per scalar: the p-value of uniformity, the mean PIT (0.5 when
        calibrated) and 12·var(PIT) (1 when calibrated; above 1: ranks at the ends, the posterior
        too narrow; below: too wide), and the verdict at family-wise level `alpha`."""
        import pandas as pd

        scalars = self.scalars()
        threshold = alpha / max(len(scalars), 1)
        rows = {}
        for (_, label, u), test in zip(scalars, self.tests(alpha).values(), strict=True):
            rows[label] = {"p_value": test.p_value, "mean_pit": float(u.mean()),
                           "dispersion": float(12 * np.mean((u - 0.5) ** 2)),
                           "verdict": "ok" if test.p_value >= threshold else _shape(u)}
        return pd.DataFrame.from_dict(rows, orient="index")

    def passed(self, alpha: float = ALPHA) -> bool:
        """Whether every scalar's ranks are consistent with uniformity at family-wise level
        `alpha` (each tested at alpha / number of scalars)."""
        return bool((self.table(alpha)["verdict"] == "ok").all())

    def failures(self, alpha: float = ALPHA) -> dict[str, str]:
        """Scalars whose ranks are not uniform, with what their shape says."""
        t = self.table(alpha)
        return {label: f"{row.verdict} (p = {row.p_value:.2g}, mean PIT {row.mean_pit:.3f}, "
                       f"12 var {row.dispersion:.2f})" for label, row in t.iterrows() if row.verdict != "ok"}

    def plot(self, path=None, var_names=None, alpha: float = ALPHA):
        """ECDF-difference plots F̂(z) − z with simultaneous 1 − alpha bands, one panel per scalar
        (the first `MAX_PANELS` unless `var_names` picks variables); saved to `path` if given.
        Returns the matplotlib figure."""
        from .plots import ecdf_difference_figure

        self._need(2)
        scalars = [(label, u) for name, label, u in self.scalars() if var_names is None or name in var_names]
        if var_names is not None and not scalars:
            raise DataError(f"`var_names` {list(var_names)} names no variable; they are {list(self.ranks)}")
        tests = [(label, uniformity_test(u, alpha=alpha)) for label, u in scalars[:MAX_PANELS]]
        title = (f"PIT of {self.simulations} held-out points" if self.kind == "pit" else
                 f"SBC: {self.simulations} simulations, {self.draws} draws each")
        return ecdf_difference_figure(tests, title=title, path=path)

    def to_dataset(self):
        """The ranks as an xarray Dataset laid out as simuk's ``prior_sbc`` group (chain 1 × draw =
        simulations), which ArviZ 1.x's ``plot_ecdf_pit`` reads."""
        import xarray as xr

        return xr.Dataset({k: xr.Variable(("chain", "draw") + tuple(f"{k}_dim_{i}" for i in range(v.ndim - 1)),
                                          v[None]) for k, v in self.ranks.items()},
                          attrs={"draws": self.draws, "seed": self.seed})

    def _need(self, n: int):
        if self.simulations < n:
            raise DataError(f"a calibration test needs at least {n} simulations, this result has {self.simulations}")

    def __repr__(self) -> str:
        what = (f"PIT of {self.simulations} held-out points" if self.kind == "pit" else
                f"{self.simulations} simulations, {self.draws} draws each")
        if self.simulations < 2:
            return f"SBCResult({what})"
        failures = self.failures()
        verdict = "calibrated" if not failures else f"{len(failures)} scalar(s) not uniform: " + \
            ", ".join(list(failures)[:4])
        return f"SBCResult({what}; {verdict})"


def _shape(u: np.ndarray) -> str:
    """What non-uniform PITs say: the larger of the standardised location and spread departures."""
    n = u.size
    z_mean = (u.mean() - 0.5) / np.sqrt(1 / 12 / n)
    z_spread = (np.mean((u - 0.5) ** 2) - 1 / 12) / np.sqrt(1 / 180 / n)  # Var (u − ½)² = 1/180
    if abs(z_spread) >= abs(z_mean):
        return "posterior too narrow" if z_spread > 0 else "posterior too wide"
    return "posterior biased low" if z_mean > 0 else "posterior biased high"  # truth above the draws: low


# -- simulators: (key) -> (truth, data) ---------------------------------------------------------
def _numpyro_simulator(model, data: Mapping, var_names) -> Callable:
    """θ̃ and ỹ from the model run forward (`core.prior.run_forward`, the observations left out)."""
    from ..core.prior import run_forward

    spec = model.inspect(data)
    observed = {s.name: s.data_key for s in spec.observed if s.data_key is not None}
    if not observed:
        raise DataError("SBC replaces the observations in `data` with simulated ones, but `data` gives none of "
                        "the model's observed sites; pass them (any values of the right shape) or `simulate=`")
    latent = [s.name for s in spec.latent]
    names = _pick(latent, var_names)

    def simulate(key, n):
        out = run_forward(model, spec, observed.values(), n, key)
        truth = {k: out[k] for k in names}
        datasets = [{**data, **{key: out[site][i] for site, key in observed.items()}} for i in range(n)]
        return truth, datasets

    return simulate


def _state_space_simulator(model, data: Mapping, var_names) -> Callable:
    """States x̃ (T, d) and observations ỹ (T, p) from the model (`simulate`)."""
    import jax

    if not isinstance(data, Mapping) or "y" not in data:
        raise DataError("SBC of a state-space model takes `data={'y': y}`: y's length T sets the simulated length")
    T = int(np.shape(data["y"])[0])
    _pick(["x"], var_names)

    def simulate(key, n):
        xs, ys = jax.vmap(lambda k: model.simulate(k, T))(jax.random.split(key, n))
        return {"x": np.asarray(xs)}, [{"y": np.asarray(ys[i])} for i in range(n)]

    return simulate


def _pick(names, var_names) -> list[str]:
    if var_names is None:
        return list(names)
    unknown = [v for v in var_names if v not in names]
    if unknown:
        raise DataError(f"`var_names` names {unknown}, not latent variables of the model; they are {list(names)}")
    return list(var_names)


def _rank_draws(posterior, names, n: int, key) -> tuple[dict, float]:
    """`n` draws of each named variable and, for Markov chains, their smallest bulk ESS: evenly
    spaced through the chains (thinned, so the draws are nearly independent), else `sample`."""
    if getattr(posterior, "markov", False):
        from .chain_stats import ess_bulk

        chains = posterior.groups()["posterior"]  # (chain, draw, ...) for every Markov posterior
        missing = [k for k in names if k not in chains]
        if missing:
            raise ModelError(f"the posterior holds no draws of {missing}; it has {list(chains)}")
        c, d = np.shape(chains[names[0]])[:2]
        if c * d < n:
            raise ConfigError(f"SBC ranks each truth among `draws`={n} posterior draws, but the engine returns "
                              f"{c * d}: ask the engine for more draws or SBC for fewer")
        index = ((np.arange(n) + 0.5) * (c * d) / n).astype(int)
        out = {k: np.asarray(chains[k]).reshape((c * d,) + np.shape(chains[k])[2:])[index] for k in names}
        ess = min(float(np.nanmin(ess_bulk(chains[k]))) for k in names)
        return out, ess
    drawn = posterior.sample(n, seed=key)
    missing = [k for k in names if k not in drawn]
    if missing:
        raise ModelError(f"the posterior's draws hold no {missing}; they hold {list(drawn)}")
    return {k: np.asarray(drawn[k]) for k in names}, float("nan")


def _rank(draws: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """#{draws < truth}, ties broken uniformly (so discrete variables get uniform ranks too)."""
    less = (draws < truth).sum(0)
    ties = (draws == truth).sum(0)
    return less + np.floor(rng.uniform(size=less.shape) * (ties + 1)).astype(int)


@contextlib.contextmanager
def _named(i: int, partial: Callable):
    """A bayeskit error in simulation `i` > 0 re-raised as a `SamplingError` that names it and carries
    the result of the simulations before it (the loop driver passes other errors on the same way)."""
    try:
        yield
    except BayeskitError as err:
        if i == 0:  # nothing done yet: the error as it is says most
            raise
        raise SamplingError(f"simulation {i} failed: {type(err).__name__}: {err}", partial()) from err


def _quiet(engine):
    return engine.replace(progress=False) if hasattr(engine, "progress") else engine


def sbc(model, engine=None, data: Mapping | None = None, *, simulations: int = 100, draws: int = 99,
        seed: int = 0, var_names=None, simulate: Callable | None = None, progress: bool = True) -> SBCResult:
    """Simulation-based calibration of `engine` on `model` (see the module docstring).

    ``data``: the model's arguments; its observations are replaced by simulated ones (their values
    are ignored, their shapes kept). ``simulations``: prior draws, one fit each; ``draws``: L, the
    posterior draws each truth is ranked among (ranks 0 … L). ``var_names``: the latent variables
    to check (default all). ``simulate(key, n) -> (truth, datasets)`` replaces the built-in
    simulator (NumPyro models: run forward; state-space models: ``model.simulate``): ``truth`` maps
    names to ``(n, ...)`` arrays, ``datasets`` is a list of n `data` dicts.

    Each fit is ``bk.fit(model, dataset, engine, seed=...)`` with progress bars off and its
    warnings collected (``result.problems``). A fit that fails raises `SamplingError` carrying the
    result of the simulations before it; Ctrl-C returns them.
    """
    import jax

    from ..core.fit import fit
    from ..core.loop import run
    from ..core.model import FeynmanKac, as_model
    from ..core.seeds import as_key

    check_int("simulations", simulations)
    check_int("draws", draws)
    check_int("seed", seed, minimum=0)
    m = as_model(model)
    if simulate is None:
        if hasattr(m, "inspect"):
            simulate = _numpyro_simulator(m, data or {}, var_names)
        elif isinstance(m, FeynmanKac) and hasattr(m, "simulate"):
            simulate = _state_space_simulator(m, data, var_names)
        else:
            raise ModelError(f"SBC cannot simulate from {type(m).__name__} by itself: pass `simulate=`")
    elif not callable(simulate):
        raise ConfigError(f"`simulate` must be a function (key, n) -> (truth, datasets), got {type(simulate).__name__}")
    k_sim, k_fit = jax.random.split(as_key(seed))
    truth, datasets = simulate(k_sim, simulations)
    truth = {k: np.asarray(v) for k, v in truth.items()}
    if len(datasets) != simulations or any(v.shape[:1] != (simulations,) for v in truth.values()):
        raise ConfigError(f"`simulate` must return {simulations} datasets and truths with a leading axis of "
                          f"{simulations}, got {len(datasets)} and {[v.shape for v in truth.values()]}")
    fit_keys = jax.random.split(k_fit, simulations)
    quiet = _quiet(engine) if engine is not None else None
    rng = np.random.default_rng([seed, 104729])
    names = list(truth)
    state = {"ranks": {k: [] for k in names}, "ess": [], "problems": []}

    def result_of(state, done=None):
        n = len(state["ess"])
        return SBCResult({k: np.stack(v) if v else np.zeros((0,) + truth[k].shape[1:], int)
                          for k, v in state["ranks"].items()},
                         {k: v[:n] for k, v in truth.items()}, draws, np.asarray(state["ess"]),
                         state["problems"], seed, engine)

    def advance(state, start, stop):
        for i in range(start, stop):
            with warnings.catch_warnings(record=True) as caught, _named(i, lambda: result_of(state)):
                warnings.simplefilter("always")
                post = fit(m, datasets[i], quiet, seed=fit_keys[i])
                got, ess = _rank_draws(post, names, draws, fit_keys[i])
            for k in names:
                if got[k].shape[1:] != truth[k].shape[1:]:
                    raise ModelError(f"draws of {k!r} have shape {got[k].shape[1:]}, its truth {truth[k].shape[1:]}")
                state["ranks"][k].append(_rank(got[k], truth[k][i], rng))
            state["ess"].append(ess)
            state["problems"].append([str(w.message) for w in caught])
        return state, stop - start

    loop = run(advance, state, total=simulations, chunk=1, progress=progress, desc="SBC",
               partial=lambda s, r, d: result_of(s), what="simulations")
    result = result_of(loop.state)
    _warn_if_unreliable(result)
    return result


def _warn_if_unreliable(result: SBCResult) -> None:
    """Ranks of autocorrelated draws, or of fits that warned, are no test of the engine's exact law."""
    low = np.flatnonzero(result.ess < result.draws)
    if low.size:
        warnings.warn(f"{low.size} of {result.simulations} fits had a bulk ESS below the {result.draws} draws ranked "
                      f"(lowest {np.nanmin(result.ess):.0f}): their ranks are of correlated draws and need not be "
                      f"uniform even for an exact sampler; run longer chains or rank fewer draws",
                      ConvergenceWarning, stacklevel=3)
    warned = [i for i, p in enumerate(result.problems) if p]
    if warned:
        warnings.warn(f"{len(warned)} of {result.simulations} fits warned (the first, simulation {warned[0]}: "
                      f"{result.problems[warned[0]][0][:200]}); see result.problems", ConvergenceWarning,
                      stacklevel=3)


def pit_calibration(model, engine, prior, *, datasets: int = 200, context: int = 20, horizon: int = 1,
                    seed: int = 0, levels=(0.5, 0.8, 0.9, 0.95), progress: bool = True) -> SBCResult:
    """Calibration of a predictive engine (PFN, neural process) on its own prior.

    Draws `datasets` datasets of ``T = context + horizon`` points from `prior` (a dataset prior
    such as ``bk.pfn.ProcessPrior``: ``sample(key, B, T) -> (x, y)``), fits each to its first
    `context` points and takes the PIT F(ỹ) of its last point under the predictive at that point's
    input (one point per dataset, so the PITs are independent; for a learning-curve prior,
    `horizon` epochs ahead). Returns an `SBCResult` of kind "pit" (``values["y"]``),
    with ``coverage[level]``: the share of held-out points inside the central `level` interval.
    """
    import jax

    from ..core.fit import fit
    from ..core.loop import run
    from ..core.seeds import as_key

    check_int("datasets", datasets)
    check_int("context", context)
    check_int("horizon", horizon)
    check_int("seed", seed, minimum=0)
    if not hasattr(prior, "sample"):
        raise ConfigError(f"`prior` must be a dataset prior with sample(key, B, T), got {type(prior).__name__}")
    x, y = prior.sample(as_key(seed), datasets, context + horizon)
    x, y = np.asarray(x), np.asarray(y)
    quiet = _quiet(engine)
    fit_keys = jax.random.split(jax.random.fold_in(as_key(seed), 1), datasets)
    state = {"pit": [], "inside": [], "problems": []}

    def advance(state, start, stop):
        for i in range(start, stop):
            with warnings.catch_warnings(record=True) as caught, _named(i, lambda: result_of(state)):
                warnings.simplefilter("always")
                post = fit(model, {"X": x[i, :context], "y": y[i, :context]}, quiet, seed=fit_keys[i])
                pred = post.predict({"X": x[i, -1:]})
            if not hasattr(pred, "cdf"):
                raise ModelError(f"{type(post).__name__}.predict gives no CDF: PIT calibration needs a predictive "
                                 f"distribution (use `sbc` for engines that return draws)")
            state["pit"].append(float(np.asarray(pred.cdf(y[i, -1:])).ravel()[0]))
            state["inside"].append([_inside(pred, y[i, -1:], level) for level in levels])
            state["problems"].append([str(w.message) for w in caught])
        return state, stop - start

    def result_of(state):
        pit = np.asarray(state["pit"])
        inside = np.asarray(state["inside"], dtype=float).reshape(-1, len(levels))
        return SBCResult({"y": np.zeros((pit.size,), int)}, {"y": y[: pit.size, -1]}, 0,
                         np.full(pit.size, np.nan), state["problems"], seed, engine, kind="pit",
                         values={"y": pit},
                         coverage={lv: float(inside[:, j].mean()) if pit.size else float("nan")
                                   for j, lv in enumerate(levels)})

    loop = run(advance, state, total=datasets, chunk=1, progress=progress, desc="PIT",
               partial=lambda s, r, d: result_of(s), what="datasets")
    return result_of(loop.state)


def _inside(pred, y, level: float) -> bool:
    lo, hi = pred.interval(level)
    return bool(np.all((np.asarray(lo) <= y) & (y <= np.asarray(hi))))
