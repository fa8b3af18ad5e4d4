"""`bk.fit`: model + data + engine + seed -> Posterior."""

from __future__ import annotations

import importlib

from .engine import Engine
from .errors import ConfigError
from .model import NumPyroModel, as_model
from .posterior import DrawsPosterior
from .seeds import as_key

# Default engine per model kind, named rather than imported so `core` depends on no engine.
_DEFAULT_ENGINES = {NumPyroModel: ("bayeskit.engines.mcmc", "NUTS")}


def default_engine(model) -> Engine:
    for kind, (module, name) in _DEFAULT_ENGINES.items():
        if isinstance(model, kind):
            return getattr(importlib.import_module(module), name)()
    engines = getattr(model, "engines", ())  # names of bayeskit engines, the default first
    if engines:
        return getattr(importlib.import_module("bayeskit"), engines[0])()
    raise ConfigError(f"no default engine for {type(model).__name__}; pass `engine=`")


def fit(model, data: dict | None = None, engine: Engine | None = None, seed=0):
    """Fit `model` to `data` with `engine` and return a Posterior.

    Parameters
    ----------
    model
        A NumPyro model function (``def model(x, y=None)``) or a structured bayeskit model.
    data
        Keyword arguments of the model: inputs and observations.
    engine
        An engine configuration such as ``bk.NUTS(chains=4)``; defaults to the model's default
        (NUTS for NumPyro models).
    seed
        An int or a JAX PRNG key. The result is a pure function of the seed.
    """
    m = as_model(model)
    if engine is None:
        engine = default_engine(m)
    if not isinstance(engine, Engine):
        raise ConfigError(f"`engine` must be a bayeskit engine such as bk.NUTS(), got {type(engine).__name__}")
    engine.check_accepts(m)
    posterior = engine.fit(m, data, as_key(seed))
    if isinstance(posterior, DrawsPosterior) and posterior.sample_stats:
        # Diagnostics sit above core; imported here, on first use, to warn with the numbers.
        from ..diagnostics.convergence import warn_if_problems

        warn_if_problems(posterior, stacklevel=3)
    return posterior
