"""bayeskit: Bayesian inference organised around one path.

    model -> bk.fit(model, data=..., engine=..., seed=...) -> Posterior

Public names are loaded on first use, so ``import bayeskit`` stays fast and pulls in
neither JAX nor ArviZ until they are needed.
"""

from __future__ import annotations

import importlib

from ._version import __version__

_EXPORTS = {
    "fit": "bayeskit.core.fit",
    "prior_predictive": "bayeskit.core.prior",
    "set_compilation_cache": "bayeskit.core.compilation_cache",
    "load": "bayeskit.core.io",
    "save": "bayeskit.core.io",
    "Posterior": "bayeskit.core.posterior",
    "DrawsPosterior": "bayeskit.core.posterior",
    "Engine": "bayeskit.core.engine",
    "NumPyroModel": "bayeskit.core.model",
    "BayeskitError": "bayeskit.core.errors",
    "ConfigError": "bayeskit.core.errors",
    "ConvergenceWarning": "bayeskit.core.errors",
    "DataError": "bayeskit.core.errors",
    "IncompatibleEngineError": "bayeskit.core.errors",
    "InitializationError": "bayeskit.core.errors",
    "ModelError": "bayeskit.core.errors",
    "SamplingError": "bayeskit.core.errors",
    "NUTS": "bayeskit.engines.mcmc",
    "HMC": "bayeskit.engines.mcmc",
    "Exact": "bayeskit.engines.exact",
    "MatrixFree": "bayeskit.engines.exact",
    "SparseVariational": "bayeskit.engines.sparse",
    "ParticleFilter": "bayeskit.engines.smc",
    "PaRIS": "bayeskit.engines.smc",
    "ParticleGibbs": "bayeskit.engines.smc",
    "VI": "bayeskit.engines.vi",
    "PFN": "bayeskit.engines.pfn",
    "NeuralProcess": "bayeskit.engines.pfn",
    "MartingalePosterior": "bayeskit.engines.martingale",
    "KernelClassifier": "bayeskit.models.classifiers",
    "Optimize": "bayeskit.engines.optimize",
    "DeepKernelMachine": "bayeskit.models.dkm",
    "SparseDeepKernelMachine": "bayeskit.models.dkm",
}
# short namespaces: bk.vi.iwelbo, bk.pfn.train
_MODULES = {"vi": "bayeskit.engines.vi", "smc": "bayeskit.engines.smc", "pfn": "bayeskit.engines.pfn",
            "martingale": "bayeskit.engines.martingale", "classifiers": "bayeskit.models.classifiers"}
_SUBMODULES = ("core", "engines", "diagnostics", "datasets", "models")

__all__ = ["__version__", *_EXPORTS, *_SUBMODULES, *_MODULES]

# The plugins `core` looks up engines, defaults, hooks and services in: every engine package exported
# above, and the diagnostics. Imported on the first lookup, never by ``import bayeskit``.
_PLUGINS = (*sorted({m for m in _EXPORTS.values() if m.startswith("bayeskit.engines.")}), "bayeskit.diagnostics")

from .core.registry import declare_plugins as _declare_plugins  # noqa: E402

_declare_plugins(_PLUGINS)

# XLA:CPU reads XLA_FLAGS when JAX starts its backend: set what samplers need before that happens
from .core.xla_flags import tune_xla_cpu as _tune_xla_cpu  # noqa: E402

_tune_xla_cpu()

# Started by `bayeskit launch`: join JAX's distributed runtime now, before any JAX computation can
# start the backend (core.distributed says why at import). Without the launcher's variables this
# imports nothing.
from .core import distributed as _distributed  # noqa: E402

if _distributed.requested():
    _distributed.initialize()


def __getattr__(name: str):
    from .core.optional import needs_extra

    with needs_extra(f"bk.{name}"):
        if name in _EXPORTS:
            value = getattr(importlib.import_module(_EXPORTS[name]), name)
        elif name in _SUBMODULES:
            value = importlib.import_module(f"bayeskit.{name}")
        elif name in _MODULES:
            value = importlib.import_module(_MODULES[name])
        else:
            raise AttributeError(f"module 'bayeskit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
