"""Posteriors: the one object every engine returns and every diagnostic accepts.

`Posterior` is the contract, the same for every engine:

    sample(n, seed)                                   dict name -> array with leading axis n
    predict(new_data=None, *, seed=0, n=None, **options)
    summary(), to_arviz(), save(path) / bk.load(path)

`DrawsPosterior` holds Monte Carlo draws laid out ``(chain, draw, *shape)``, as MCMC
and any sampler produce them. Closed-form posteriors subclass `Posterior` directly
and only need ``sample``. Everything a posterior holds is passed at construction.

Summaries and ArviZ objects are services that `bayeskit.diagnostics` registers
(`core.registry`), so building a Posterior costs no ArviZ import.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import registry
from .checks import check_int
from .errors import ConfigError, ModelError
from .seeds import as_key


def check_n(n, name: str = "n") -> int:
    """A positive int number of draws."""
    check_int(name, n)
    return int(n)


_check_n = check_n  # the name posteriors of the engines used

#: Groups whose arrays lead with (chain, draw).
DRAW_GROUPS = ("posterior", "sample_stats", "posterior_predictive", "log_likelihood", "prior", "prior_predictive")
#: The group of files and InferenceData that holds `Posterior.traces` (ArviZ keeps groups it does not know).
TRACES_GROUP = "bayeskit_traces"
#: Above this size the pointwise log-likelihood is not computed unless asked for (``log_likelihood=True``).
LOG_LIKELIHOOD_MEMORY = 1 << 30


class Posterior(abc.ABC):
    """What an engine returns. Subclasses implement `sample`; the rest has defaults.

    ``engine`` is the engine that made it (None for a posterior built by hand); ``markov`` says
    whether its draws are Markov chains (MCMC: R-hat and autocorrelation-aware ESS apply) or
    independent draws (exact, VI, SMC, PFN: no R-hat).
    """

    #: Names of the model's observed sites (empty where the model has none).
    observed_sites: tuple[str, ...] = ()
    engine = None
    markov: bool = False

    @abc.abstractmethod
    def sample(self, n: int, seed=0) -> dict[str, np.ndarray]:
        """Draw `n` joint posterior draws: a dict name -> array with leading axis `n`."""

    def problems(self) -> list[str]:
        """What the engine knows makes these draws unrepresentative, each with its numbers (e.g. a
        martingale posterior's horizon too short); warned about after every fit. Markov chains are
        checked by the diagnostics (R-hat, ESS, divergences) on top of this."""
        return []

    def predict(self, new_data: Mapping | None = None, *, seed=0, n: int | None = None, **options):
        """The posterior predictive at ``new_data`` (default: the data of the fit)."""
        raise ModelError(f"{type(self).__name__} has no predictive distribution")

    # -- groups of named arrays, the common currency of files and ArviZ ----------------------
    def groups(self, n_draws: int = 4000, seed=0) -> dict[str, dict[str, np.ndarray]]:
        """Named arrays by group (``posterior``, ``sample_stats``, ...), each ``(chain, draw, ...)``."""
        draws = self.sample(n_draws, seed)
        return {"posterior": {k: np.asarray(v)[None] for k, v in draws.items()}}

    def engine_settings(self) -> dict:
        """The settings of the engine that made this posterior (`Engine.settings`; as saved, for a
        posterior read from a file), or {} when none is known."""
        saved = getattr(self, "saved_engine_settings", None)
        if saved:
            return dict(saved)
        return self.engine.settings() if self.engine is not None else {}

    def report(self, path, **options) -> str:
        """Write this posterior as one self-contained HTML page (settings, versions, checks and what
        they mean, summary, plots, the run's traces); see `bayeskit.diagnostics.report`."""
        return registry.service("report")(self, path, **options)

    def attrs(self) -> dict[str, str]:
        from .._version import __version__

        out = {"bayeskit_class": type(self).__name__, "bayeskit_markov": int(self.markov),
               "inference_library": "bayeskit",
               "inference_library_version": getattr(self, "saved_version", __version__)}
        if getattr(self, "dims", None):
            out["bayeskit_dims"] = json.dumps({k: list(v) for k, v in self.dims.items()})
        if getattr(self, "coords", None):
            out["bayeskit_coords"] = json.dumps({k: v.tolist() for k, v in self.coords.items()})
        settings = self.engine_settings()
        if settings:
            out["bayeskit_engine"] = json.dumps(settings)
        return out

    def name_dimensions(self, coords: Mapping | None = None, dims: Mapping | None = None) -> None:
        """Name the dimensions of variables (``dims``: variable -> dimension names after chain and draw)
        and label them (``coords``: dimension -> labels), as ArviZ's ``coords=``/``dims=`` do; they go
        to `to_arviz`, plots and files. `bk.fit(..., coords=, dims=)` calls this."""
        from .errors import ConfigError

        dims, coords = dict(dims or {}), dict(coords or {})
        for name, names in dims.items():
            if isinstance(names, str) or not all(isinstance(d, str) for d in names):
                raise ConfigError(f"`dims[{name!r}]` must be a list of dimension names, got {names!r}")
        for name, labels in coords.items():
            if np.ndim(labels) != 1:
                raise ConfigError(f"`coords[{name!r}]` must be a 1-D list of labels, got shape {np.shape(labels)}")
        self.dims = {k: tuple(v) for k, v in dims.items()}
        self.coords = {k: np.asarray(v) for k, v in coords.items()}

    def dim_names(self) -> dict[str, tuple[str, ...]]:
        """Names of each variable's dimensions after (chain, draw), e.g. {"x": ("time", "state")};
        variables not named get ``{name}_dim_{i}``."""
        return {}

    def pointwise_log_likelihood(self, enabled="auto") -> dict[str, np.ndarray]:
        """Pointwise log-likelihood of each observed site, ``(chain, draw, *obs_shape)``: ArviZ's
        ``log_likelihood`` group (LOO, WAIC, model comparison). Empty where the engine has none."""
        return {}

    def posterior_predictive(self, enabled="auto") -> dict[str, np.ndarray]:
        """Replicated observations, one per draw: observed site -> ``(chain, draw, *obs_shape)``, ArviZ's
        ``posterior_predictive`` group (posterior predictive checks, LOO-PIT). Empty where the engine
        has none."""
        return {}

    def traces(self) -> dict[str, np.ndarray]:
        """How the run went, step by step: name -> 1-D array (SMC: ``ess`` of the weights per time
        step; VI: the ``objective`` per optimisation step; PFN and neural processes: the
        ``training_loss`` per training step). Reports plot them; files keep them (group `TRACES_GROUP`)."""
        return dict(getattr(self, "_traces", None) or {})

    def to_xarray(self, log_likelihood="auto", posterior_predictive="auto") -> dict:
        """The groups as xarray Datasets with ArviZ's dimension names (``chain``, ``draw``, ...), with the
        pointwise log-likelihood and replicated observations where there are (each "auto", True or
        False, see `DrawsPosterior.pointwise_log_likelihood`)."""
        import xarray as xr

        from .errors import DataError

        out = {}
        attrs = self.attrs()
        named = {**self.dim_names(), **getattr(self, "dims", {})}
        coords = getattr(self, "coords", {})
        groups = dict(self.groups())
        if posterior_predictive is not False:
            replicated = self.posterior_predictive(posterior_predictive)
            if replicated:
                groups["posterior_predictive"] = replicated
        if log_likelihood is not False:
            pointwise = self.pointwise_log_likelihood(log_likelihood)
            if pointwise:
                groups["log_likelihood"] = pointwise
        for group, arrays in groups.items():
            variables = {}
            lead = ("chain", "draw") if group in DRAW_GROUPS else ()
            for name, value in arrays.items():
                value = np.asarray(value)
                rest = value.ndim - len(lead)
                given = named.get(name, ())
                if name in getattr(self, "dims", {}) and len(given) != rest:
                    raise DataError(f"`dims[{name!r}]` names {len(given)} dimension(s) {list(given)}, but {name!r} has "
                                    f"{rest} after chain and draw (shape {value.shape[len(lead):]})")
                dims = lead + (tuple(given) if len(given) == rest else
                               tuple(f"{name}_dim_{i}" for i in range(rest)))
                for dim, size in zip(dims, value.shape, strict=True):
                    if dim in coords and len(coords[dim]) != size:
                        raise DataError(f"`coords[{dim!r}]` has {len(coords[dim])} labels, but {name!r} has {size} "
                                        f"along {dim!r}")
                variables[name] = xr.Variable(dims, value)
            used = {d for v in variables.values() for d in v.dims}
            out[group] = xr.Dataset(variables, coords={d: c for d, c in coords.items() if d in used},
                                    attrs=attrs if group == "posterior" else {})
        traces = self.traces()
        if traces:  # each on its own axis: an ESS per time step and an objective per step differ in length
            out[TRACES_GROUP] = xr.Dataset({k: xr.Variable((f"{k}_step",), np.asarray(v, dtype=float).ravel())
                                            for k, v in traces.items()})
        return out

    def to_arviz(self, log_likelihood="auto", posterior_predictive="auto"):
        """An ArviZ ``InferenceData`` of this posterior, with ``log_likelihood`` and
        ``posterior_predictive`` groups where there are (False leaves either out)."""
        return registry.service("to_arviz")(self, log_likelihood=log_likelihood,
                                            posterior_predictive=posterior_predictive)

    def summary(self, **kwargs):
        """DataFrame of mean, sd, interval, mcse, ess_bulk, ess_tail per scalar, and r_hat for Markov chains."""
        return registry.service("summary")(self, **kwargs)

    def save(self, path, log_likelihood="auto", posterior_predictive="auto") -> None:
        """Write the posterior to a netCDF file (ArviZ's layout, readable by `bk.load` and
        ``az.from_netcdf``), with its pointwise log-likelihood and posterior predictive draws unless
        either is False."""
        from .io import save

        save(self, path, log_likelihood=log_likelihood, posterior_predictive=posterior_predictive)


class DrawsPosterior(Posterior):
    """A posterior represented by draws ``(chain, draw, *shape)``, with sample statistics.

    ``model`` (a `NumPyroModel`) and ``data`` are kept so `predict` can run the model forward;
    a posterior read back with `bk.load` needs ``model=`` for that.
    """

    def __init__(
        self,
        draws: Mapping[str, Any],
        *,
        sample_stats: Mapping[str, Any] | None = None,
        observed_data: Mapping[str, Any] | None = None,
        constant_data: Mapping[str, Any] | None = None,
        static_data: Mapping[str, Any] | None = None,
        observed_keys: tuple[str, ...] = (),
        latent_sites: tuple[str, ...] | None = None,
        model=None,
        engine=None,
        markov: bool = True,
        log_likelihood: Mapping[str, Any] | None = None,
        posterior_predictive: Mapping[str, Any] | None = None,
        observed_args: Mapping[str, Any] | None = None,
        traces: Mapping[str, Any] | None = None,
    ):
        self._traces = {k: np.asarray(v) for k, v in (traces or {}).items()}
        self.draws = {k: np.asarray(v) for k, v in draws.items()}
        # pointwise log-likelihood: given (read from a file) or computed once from the model when asked
        self._log_likelihood = {k: np.asarray(v) for k, v in (log_likelihood or {}).items()} or None
        self._posterior_predictive = {k: np.asarray(v) for k, v in (posterior_predictive or {}).items()} or None
        # the observations as the model takes them (argument name -> array), for the log-likelihood
        self.observed_args = {k: np.asarray(v) for k, v in (observed_args or {}).items()}
        shapes = {v.shape[:2] for v in self.draws.values()}
        if len(shapes) != 1 or any(v.ndim < 2 for v in self.draws.values()):
            raise ConfigError("every draws array must share leading (chain, draw) axes")
        self.sample_stats = {k: np.asarray(v) for k, v in (sample_stats or {}).items()}
        self.observed_data = {k: np.asarray(v) for k, v in (observed_data or {}).items()}
        self.constant_data = {k: np.asarray(v) for k, v in (constant_data or {}).items()}
        self.static_data = dict(static_data or {})
        self.observed_keys = tuple(observed_keys)
        self.observed_sites = tuple(self.observed_data)
        self.latent_sites = tuple(latent_sites) if latent_sites is not None else tuple(self.draws)
        self.model = model
        from .engine import Engine

        self.engine = engine if isinstance(engine, Engine) or engine is None else Engine.from_settings(engine)
        self.markov = bool(markov)

    @classmethod
    def from_spec(cls, values, spec, *, model, engine, sample_stats=None, markov: bool = True, **extra):
        """Assemble draws ``(chain, draw, ...)`` of a NumPyro model fitted to the data in ``spec`` (a
        `ModelSpec`): observed and constant data, static settings and latent sites come from it.
        Variables are kept in the order the model's sites run (as the model reads; pytrees sort
        their keys), anything else after them."""
        observed_keys = spec.observed_keys
        values = spec.in_model_order(values)
        return cls(
            values,
            sample_stats=sample_stats,
            observed_data={s.name: spec.arrays[s.data_key] for s in spec.observed if s.data_key in spec.arrays},
            constant_data={k: v for k, v in spec.arrays.items() if k not in observed_keys},
            static_data=dict(spec.static),
            observed_keys=observed_keys,
            latent_sites=tuple(s.name for s in spec.latent),
            model=model,
            engine=engine,
            markov=markov,
            observed_args={k: spec.arrays[k] for k in observed_keys if k in spec.arrays},
            **extra,
        )

    def __repr__(self) -> str:
        c, d = self.shape
        names = ", ".join(self.draws)
        engine = type(self.engine).__name__ if self.engine is not None else None
        return f"{type(self).__name__}({c} chains x {d} draws; {names}; engine={engine})"

    @property
    def shape(self) -> tuple[int, int]:
        """(chains, draws per chain)."""
        return next(iter(self.draws.values())).shape[:2]

    def sample(self, n: int, seed=0) -> dict[str, np.ndarray]:
        """`n` draws picked uniformly from all chains (without replacement while n <= total)."""
        import jax

        n = _check_n(n)
        c, d = self.shape
        total = c * d
        key = as_key(seed)
        if n <= total:
            idx = np.asarray(jax.random.permutation(key, total)[:n])
        else:
            idx = np.asarray(jax.random.randint(key, (n,), 0, total))
        return {k: v.reshape((total,) + v.shape[2:])[idx] for k, v in self.draws.items()}

    def model_kwargs(self) -> dict:
        """The fit's model arguments less the observations."""
        return {**self.static_data, **self.constant_data}

    def predict(self, new_data: Mapping | None = None, *, seed=0, n: int | None = None, **options) -> dict:
        """Posterior predictive draws of the observed and deterministic sites.

        ``new_data`` overrides the model arguments used in the fit (new inputs); the observed
        arguments are left out so the model simulates them. Returns name -> array with leading
        axis the number of posterior draws used (all, or `n` picked by `sample`).
        """
        from numpyro.infer import Predictive

        if options:
            raise ConfigError(f"unknown option(s) {', '.join(map(repr, options))} for {type(self).__name__}.predict")
        if self.model is None:
            raise ModelError(
                "this posterior has no model attached (it was loaded from a file); "
                "use bk.load(path, model=model) to predict"
            )
        kwargs = self.model_kwargs()
        if new_data is not None:
            if not isinstance(new_data, Mapping):
                raise ConfigError(f"`new_data` must be a dict of model arguments, got {type(new_data).__name__}")
            static, arrays = self.model.split_data(new_data)
            kwargs.update(dict(static))
            kwargs.update(arrays)
        for k in self.observed_keys:
            kwargs[k] = None  # the model simulates what it observed in the fit
        if n is None:
            c, d = self.shape
            latent = {k: self.draws[k].reshape((c * d,) + self.draws[k].shape[2:]) for k in self.latent_sites}
        else:
            latent = {k: v for k, v in self.sample(n, seed).items() if k in self.latent_sites}
        predictive = Predictive(self.model.fn, posterior_samples=latent, params=self.model_params() or None)
        out = predictive(as_key(seed), **kwargs)
        return {k: np.asarray(v) for k, v in out.items() if k not in latent}

    def pointwise_log_likelihood(self, enabled="auto") -> dict[str, np.ndarray]:
        """log p(y_i | θ) of each observation at each draw: observed site -> ``(chain, draw, *obs_shape)``,
        as ``az.from_numpyro`` makes it, for ``az.loo``, ``az.waic`` and ``az.compare``.

        Computed once from the model (NumPyro's ``log_likelihood`` at every draw) and kept; a
        posterior read from a file has the one saved with it. ``enabled="auto"`` skips it, with a
        warning, above `LOG_LIKELIHOOD_MEMORY` (``True`` computes it whatever its size); without
        the model or the observations there is none (an empty dict)."""
        if self._log_likelihood is not None:
            return self._log_likelihood
        if enabled is False or self.model is None or not self.observed_keys or \
                set(self.observed_keys) - set(self.observed_args):
            return {}
        from numpyro import handlers
        from numpyro.infer.util import log_likelihood

        c, d = self.shape

        def compute():
            latent = {k: v.reshape((c * d,) + v.shape[2:]) for k, v in self.draws.items() if k in self.latent_sites}
            params = self.model_params()
            fn = handlers.substitute(self.model.fn, data=params) if params else self.model.fn
            return log_likelihood(fn, latent, **self.model_kwargs(), **self.observed_args)

        self._log_likelihood = self._per_draw("the pointwise log-likelihood", "log_likelihood", enabled,
                                              self.observed_args, compute, keys=None)
        return self._log_likelihood or {}

    def posterior_predictive(self, enabled="auto") -> dict[str, np.ndarray]:
        """ỹ ~ p(y | θ) at each draw θ, for each observed site: ``(chain, draw, *obs_shape)``, as
        ``az.from_numpyro(posterior_predictive=...)`` holds it; for ``az.plot_ppc`` and
        ``az.plot_loo_pit``. Drawn once (seed 0, `predict` at the fit's data) and kept; "auto"
        skips it, with a warning, above `LOG_LIKELIHOOD_MEMORY`."""
        if self._posterior_predictive is not None:
            return self._posterior_predictive
        if enabled is False or self.model is None or not self.observed_sites:
            return {}
        self._posterior_predictive = self._per_draw("the posterior predictive draws", "posterior_predictive", enabled,
                                                    self.observed_data, lambda: self.predict(seed=0),
                                                    keys=self.observed_sites)
        return self._posterior_predictive or {}

    def _per_draw(self, what: str, option: str, enabled, observed: Mapping, compute, keys):
        """An optional group of one array per draw and observed site, ``(chain, draw, *obs_shape)``, from
        ``compute()`` (leading axis chain x draw; ``keys`` picks its entries, None: all; ``observed``
        sizes it); None when "auto" skips it (above
        `LOG_LIKELIHOOD_MEMORY`, or when the model cannot compute it), with a warning that says why.
        ``enabled=True`` computes it whatever its size and lets a failure raise."""
        import warnings

        c, d = self.shape
        size = c * d * sum(int(np.size(v)) for v in observed.values()) * 8
        if enabled == "auto" and size > LOG_LIKELIHOOD_MEMORY:
            warnings.warn(f"{what} would take {size / 2**30:.1f} GiB ({c * d} draws x {size // (8 * c * d)} "
                          f"observations), so it was left out; pass {option}=True to compute it anyway", stacklevel=4)
            return None
        try:
            out = compute()
        except Exception as exc:  # an optional group must not stop to_arviz or save: say why it is missing
            if enabled is True:
                raise
            warnings.warn(f"{what} could not be computed from the model ({type(exc).__name__}: {exc}), so it was "
                          f"left out of the InferenceData; pass {option}=True to see the error where it happens",
                          stacklevel=4)
            return None
        return {k: np.asarray(v).reshape((c, d) + np.shape(v)[1:]) for k, v in out.items() if keys is None or k in keys}

    def model_params(self) -> dict:
        """Values of the model's own ``numpyro.param`` sites that `predict` runs it with (none: their
        initial values; an engine that fits them, such as VI, returns the fitted ones)."""
        return {}

    def groups(self, n_draws: int = 0, seed=0) -> dict[str, dict[str, np.ndarray]]:
        groups = {"posterior": self.draws}
        for name in ("sample_stats", "observed_data", "constant_data"):
            if getattr(self, name):
                groups[name] = getattr(self, name)
        return groups

    def attrs(self) -> dict[str, str]:
        return {
            **super().attrs(),
            "bayeskit_static_data": json.dumps(self.static_data),
            "bayeskit_observed_keys": json.dumps(list(self.observed_keys)),
            "bayeskit_latent_sites": json.dumps(list(self.latent_sites)),
        }
