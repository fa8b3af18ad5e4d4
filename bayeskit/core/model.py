"""Models: what is random.

Two kinds reach `bk.fit`:

* a NumPyro model function (``def model(x, y=None): ...``), wrapped here in
  `NumPyroModel`, which the general engines (NUTS, HMC, VI) fit;
* a *structured* model object (a process, a state-space model, ...).

A model offers *capabilities*: the protocols below. An engine names the capability it needs
(``Engine.capability``) and fits every model that has it; nobody names engines or models by string.

`NumPyroModel.inspect(data)` checks the data against the model and lists its sites
by tracing the model abstractly (``jax.eval_shape``): no numbers are computed and
nothing is compiled, so inspecting twice costs microseconds.
"""

from __future__ import annotations

import inspect as _inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .checks import as_numeric
from .errors import DataError, ModelError

STATIC_TYPES = (bool, int, float, str, type(None))  # JSON-storable settings; the rest are arrays


# -- capabilities ----------------------------------------------------------------------------------
@runtime_checkable
class NumPyroProgram(Protocol):
    """A NumPyro program with its data checked (`NumPyroModel`): what NUTS, HMC and VI fit."""

    fn: Callable

    def inspect(self, data: Mapping | None = None) -> ModelSpec: ...


@runtime_checkable
class MarginalLikelihood(Protocol):
    """y | X is a scale mixture of N(0, σ² A) with A = K(X, X) + ε I: an exact marginal likelihood
    through q = yᵀA⁻¹y and log|A| (the scale-mixture processes), and predictives from A's factor."""

    def gram(self, X): ...

    def factor(self, X, y): ...

    def log_marginal_likelihood(self, X, y): ...


@runtime_checkable
class FeynmanKac(Protocol):
    """A state-space model as particle methods see it: M0 (initial), M (transition), log G (observation)."""

    state_dim: int
    obs_dim: int

    def initial_sample(self, key, n: int): ...

    def initial_log_prob(self, x): ...

    def transition_sample(self, key, x, t): ...

    def transition_log_prob(self, x, x_next, t): ...

    def observation_log_prob(self, x, y, t): ...


@runtime_checkable
class SparseClassifier(Protocol):
    """A process prior over C latent functions with a categorical likelihood, fitted through inducing points."""

    kernel: Any
    scale_prior: Any
    num_classes: int
    num_inducing: int


@runtime_checkable
class DatasetPriorSource(Protocol):
    """A model that simulates whole datasets (X, y) from its prior: what amortised engines train on.

    ``dataset_prior(x_dim=, priors=, inputs=)`` returns a dataset prior (``sample(key, batch, n)``);
    ``priors`` puts hyperpriors on named parameters, ``inputs`` is a distribution of one input point.
    """

    def dataset_prior(self, *, x_dim: int, priors: Mapping | None = None, inputs=None): ...


@runtime_checkable
class PredictiveRule(Protocol):
    """A sequence of one-step-ahead predictives P_n, P_{n+1}, ... that is conditionally identically
    distributed (c.i.d.): what martingale posteriors impute the unseen future with.

    ``condition(data, horizon)`` (host side, once) returns the state of P_n given the observed data
    with room for ``horizon`` more points; ``start(state, key)`` sets up one posterior draw;
    ``forward(state, key)`` draws Y_{i+1} ~ P_i and returns the state of P_{i+1}; ``distribution(state)``
    is P_i as a distribution (NumPyro's interface: ``mean``, ``variance``, ``cdf``, ``icdf``, ``log_prob``).
    """

    def condition(self, data: Mapping, horizon: int): ...

    def start(self, state, key): ...

    def forward(self, state, key): ...

    def distribution(self, state): ...


@runtime_checkable
class Objective(Protocol):
    """A model fitted by maximising an objective over its parameters: a point estimate, such as the
    Bayesian representation-learning limit of a deep Gaussian process (a deep kernel machine).

    ``check_data(data)`` returns the data as a dict of arrays that share a leading axis of n points;
    ``init(data, key)`` the starting parameters (a pytree); ``objective(params, batch, n, key)`` the
    objective of the whole data set (n points) estimated from ``batch``, a dict of arrays with the same
    keys (all n points, or a minibatch), to be maximised (``key``: for Monte Carlo estimates; exact
    objectives ignore it); ``predict(params, data, new_data, **options)`` the predictive at new inputs.
    Optional: ``sample(params, data, key, n)`` (joint draws of what the model can draw) and
    ``describe(params, data)`` (JSON-friendly facts about a fit, e.g. fitted hyperparameters and jitter).
    """

    def check_data(self, data) -> dict: ...

    def init(self, data: dict, key): ...

    def objective(self, params, batch: dict, n: int, key): ...

    def predict(self, params, data: dict, new_data, **options): ...


def capability_name(capability) -> str:
    """A readable name of a capability (a protocol or a tuple of them)."""
    if isinstance(capability, tuple):
        return " or ".join(capability_name(c) for c in capability)
    return getattr(capability, "__name__", repr(capability))


@dataclass(frozen=True)
class Site:
    """One named site of a NumPyro model, as seen by an abstract trace."""

    name: str
    kind: str  # "latent", "observed" or "deterministic"
    shape: tuple[int, ...]
    dtype: Any
    discrete: bool = False
    data_key: str | None = None  # the data argument an observed site reads, if known


@dataclass(frozen=True)
class ModelSpec:
    """The sites of a model for one data set, plus the data split into static and array parts."""

    sites: tuple[Site, ...]
    static: tuple[tuple[str, Any], ...]  # hashable Python scalars: part of the compile cache key
    arrays: dict = field(hash=False, compare=False)  # arrays: traced arguments of compiled code

    def of_kind(self, kind: str) -> tuple[Site, ...]:
        return tuple(s for s in self.sites if s.kind == kind)

    @property
    def latent(self) -> tuple[Site, ...]:
        return self.of_kind("latent")

    @property
    def observed(self) -> tuple[Site, ...]:
        return self.of_kind("observed")

    @property
    def deterministic(self) -> tuple[Site, ...]:
        return self.of_kind("deterministic")

    @property
    def observed_keys(self) -> tuple[str, ...]:
        """Data arguments that hold observations (dropped when predicting)."""
        return tuple(s.data_key for s in self.observed if s.data_key is not None)

    def kwargs(self) -> dict:
        return {**dict(self.static), **self.arrays}

    def in_model_order(self, values: Mapping) -> dict:
        """`values` (site name -> anything) in the order the model runs its sites, others after them
        (pytrees and NumPyro's outputs sort their keys; a reader of the model expects its order)."""
        order = {s.name: i for i, s in enumerate(self.sites)}
        return dict(sorted(values.items(), key=lambda kv: order.get(kv[0], len(order))))

    def array_signature(self) -> tuple:
        """Shapes and dtypes of the array data: with `static`, what decides a recompile."""
        from .cache import data_signature

        return data_signature(self.arrays)


class NumPyroModel:
    """A NumPyro model function, with its data checked before any engine sees it."""

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise ModelError(f"`model` must be a NumPyro model function, got {type(fn).__name__}")
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)
        try:
            params = _inspect.signature(fn).parameters
        except (TypeError, ValueError):  # builtins, some callables
            params = {}
        self._accepts_any = any(p.kind == p.VAR_KEYWORD for p in params.values()) or not params
        self.arguments = tuple(
            n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        )
        #: arguments without a default: a fit needs each of them in `data`
        self.required = tuple(n for n in self.arguments if params[n].default is params[n].empty)

    def __repr__(self) -> str:
        return f"NumPyroModel({self.name})"

    # -- data --------------------------------------------------------------------------------
    def split_data(self, data: Mapping | None) -> tuple[tuple, dict]:
        """Check argument names and split data into static scalars and arrays."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise DataError(f"`data` must be a dict of model arguments, got {type(data).__name__}")
        # A key the model does not take is refused, as NumPyro's MCMC.run(**kwargs) would: a misspelt
        # observation would otherwise leave its site sampled as a latent, silently.
        unknown = [k for k in data if k not in self.arguments]
        if unknown and not self._accepts_any:
            raise DataError(f"data key {unknown[0]!r} is not an argument of model {self.name!r}; "
                            f"it takes {', '.join(self.arguments) or 'no arguments'}")
        static, arrays = [], {}
        for k, v in data.items():
            if isinstance(v, STATIC_TYPES):
                static.append((k, v))
            else:  # numbers only: strings, objects and ragged lists are nothing JAX can trace
                arrays[k] = as_numeric(f"data[{k!r}]", v)
        return tuple(sorted(static, key=lambda kv: kv[0])), arrays

    def inspect(self, data: Mapping | None = None) -> ModelSpec:
        """Validate `data` and list the model's sites (latent, observed, deterministic)."""
        import jax
        from numpyro import handlers
        from numpyro.infer import init_to_uniform

        static, arrays = self.split_data(data)
        missing = [k for k in self.required if k not in (data or {})]
        if missing:  # was the model's own TypeError, "missing 1 required positional argument"
            given = ", ".join(map(repr, data or {})) or "none"
            raise DataError(f"data has no key {missing[0]!r}, an argument of model {self.name!r} without a default; "
                            f"it takes {', '.join(self.arguments)} (given: {given})")
        static_keys = {k for k, _ in static}
        sites: list[Site] = []

        def trace_sites(arrs):
            ids = {id(v): k for k, v in arrs.items()}
            # init_to_uniform gives values where a prior cannot be sampled (ImproperUniform)
            model = handlers.substitute(handlers.seed(self.fn, rng_seed=0), substitute_fn=init_to_uniform())
            tr = handlers.trace(model).get_trace(**dict(static), **arrs)
            for name, s in tr.items():
                if s["type"] == "sample":
                    value = s["value"]
                    observed = bool(s["is_observed"])
                    key = None
                    if observed:
                        # an array argument passed straight to obs=, else the argument named like the site
                        key = ids.get(id(value), name if name in arrs or name in static_keys else None)
                        try:  # NumPyro's own check, made only once a log density is computed
                            np.broadcast_shapes(np.shape(value), tuple(s["fn"].shape()))
                        except ValueError:
                            source = f"data[{key!r}]" if key is not None else "the observation"
                            raise DataError(
                                f"observed site {name!r} of model {self.name!r}: {source} has shape "
                                f"{np.shape(value)}, but the model's distribution there has shape "
                                f"{tuple(s['fn'].shape())}; the data arrays' lengths disagree "
                                f"({', '.join(f'{k}: {np.shape(v)}' for k, v in arrs.items())})") from None
                    sites.append(
                        Site(
                            name=name,
                            kind="observed" if observed else "latent",
                            shape=tuple(np.shape(value)),
                            dtype=_dtype(value),
                            discrete=bool(s["fn"].support.is_discrete),
                            data_key=key,
                        )
                    )
                elif s["type"] == "deterministic":
                    sites.append(Site(name, "deterministic", tuple(np.shape(s["value"])), _dtype(s["value"])))
            return None

        try:
            jax.eval_shape(trace_sites, arrays)
        except (DataError, ModelError):
            raise
        except Exception as exc:
            raise ModelError(
                f"model {self.name!r} failed when run with the given data: {type(exc).__name__}: {exc}"
            ) from exc
        # An observation given as a Python number is data, not a setting: keep it with the arrays
        # so it is recorded as observed and a new value does not recompile.
        observed_static = {s.data_key for s in sites if s.kind == "observed"} & static_keys
        if observed_static:
            arrays = {**arrays, **{k: np.asarray(v) for k, v in static if k in observed_static}}
            static = tuple((k, v) for k, v in static if k not in observed_static)
        spec = ModelSpec(tuple(sites), static, arrays)
        given = set(data or {})
        for site in spec.latent:
            # a latent site named like an argument left out: most often an observation forgotten in `data`
            if site.name in self.arguments and site.name not in given:
                warnings.warn(
                    f"model {self.name!r}: argument {site.name!r} was not given, so site {site.name!r} is "
                    f"sampled as a latent variable; pass data[{site.name!r}] to condition on it",
                    UserWarning, stacklevel=4)
        self._check_finite(spec)
        if not spec.latent:
            raise ModelError(
                f"model {self.name!r} has no latent sample sites: there is nothing to infer "
                "(every numpyro.sample site is observed)"
            )
        return spec

    def _check_finite(self, spec: ModelSpec) -> None:
        """NaN and ±inf anywhere in the data, and observations with no elements, are refused by name
        (NumPyro would give a NaN log density, or a posterior equal to the prior, without a word)."""
        for site in spec.observed:
            if site.data_key in spec.arrays and np.size(spec.arrays[site.data_key]) == 0:
                raise DataError(f"observed site {site.name!r} (data key {site.data_key!r}) is empty (shape "
                                f"{tuple(np.shape(spec.arrays[site.data_key]))}): there is nothing to condition on; "
                                f"give at least one observation")
        for key, arr in spec.arrays.items():
            a = np.asarray(arr)
            if not np.issubdtype(a.dtype, np.inexact):
                continue
            bad = ~np.isfinite(a)
            if bad.any():
                readers = [s.name for s in spec.observed if s.data_key == key]
                where = f"observed site {readers[0]!r} (data key {key!r})" if readers else f"data key {key!r}"
                first = tuple(int(i) for i in np.argwhere(bad)[0]) if a.ndim else ()
                raise DataError(
                    f"{where} contains {int(bad.sum())} non-finite value(s) (NaN or inf), "
                    f"first at index {first}; remove or impute them before fitting"
                )


def latent_values(trace) -> dict:
    """Values of the latent (sample, not observed) sites of a NumPyro trace."""
    return {n: s["value"] for n, s in trace.items() if s["type"] == "sample" and not s["is_observed"]}


def _dtype(value):
    return value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype


def as_model(model):
    """Return the model object engines work with: a function as a `NumPyroModel`, a structured model
    (a `Module`, or any object with a capability) as it is."""
    from .module import Module

    if isinstance(model, (NumPyroModel, Module)):
        return model
    if isinstance(model, type):
        raise ModelError(f"`model` must be a model object or a NumPyro model function, got the class "
                         f"{model.__name__}: instantiate it")
    if callable(model):
        return NumPyroModel(model)
    if model is None or isinstance(model, (str, bytes, int, float, np.ndarray)):
        raise ModelError(
            f"`model` must be a NumPyro model function or a bayeskit model object, got {type(model).__name__}"
        )
    return model  # an object: the engine checks it has the capability it needs
