"""`bk.fit`: model + data + engine + seed -> Posterior."""

from __future__ import annotations

from . import distributed, registry
from .compilation_cache import ensure_compilation_cache
from .engine import Engine
from .errors import ConfigError
from .model import as_model
from .seeds import as_key


def default_engine(model) -> Engine:
    """The engine registered for the model's capability (NUTS for a NumPyro model)."""
    engine = registry.default_engine(model)
    if engine is None:
        raise ConfigError(f"no default engine for {type(model).__name__}; pass `engine=`")
    return engine


def fit(model, data: dict | None = None, engine: Engine | None = None, seed=0, *, coords=None, dims=None):
    """Fit `model` to `data` with `engine` and return a Posterior.

    Parameters
    ----------
    model
        A NumPyro model function (``def model(x, y=None)``) or a structured bayeskit model.
    data
        Keyword arguments of the model: inputs and observations.
    engine
        An engine configuration such as ``bk.NUTS(chains=4)``; defaults to the engine registered
        for the model's capability (NUTS for NumPyro models, Exact for processes, ...).
    seed
        An int or a JAX PRNG key. The result is a pure function of the seed.
    coords, dims
        Names for the dimensions of variables, as ArviZ takes them: ``dims={"theta": ["school"]}``
        (variable -> dimension names after chain and draw), ``coords={"school": names}`` (labels).
        They reach `to_arviz`, plots and saved files.
    """
    m = as_model(model)
    if engine is None:
        engine = default_engine(m)
    if not isinstance(engine, Engine):
        raise ConfigError(f"`engine` must be a bayeskit engine such as bk.NUTS(), got {type(engine).__name__}")
    engine.check_accepts(m)
    ensure_compilation_cache()  # a model compiled in an earlier process is read back, not compiled
    posterior = engine.fit(m, data, as_key(seed))
    if coords or dims:
        posterior.name_dimensions(coords, dims)
    if distributed.is_root():  # over several processes (`core.distributed`), process 0 speaks for all
        registry.run_hooks("after_fit", posterior, stacklevel=4)  # diagnostics: convergence warnings with numbers
    return posterior
