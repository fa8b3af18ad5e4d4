"""Amortised engines: prior-data fitted networks (PFNs, Müller et al. 2022) and neural processes
(CNP … MPNP): a network trained once on datasets drawn from a prior gives the posterior predictive
of a new dataset in one forward pass. Both train on one loop (`train`) from the same dataset priors.
PyTorch is imported on first use of a name that needs it, never by ``import bayeskit`` nor by
importing this package (the engine registry imports every engine package).

    prior = bk.pfn.ProcessPrior(process, priors={"kernel.lengthscale": dist.LogNormal(-1.5, 0.5)})
    trained = bk.pfn.train(prior, bk.pfn.TINY)      # minutes on a CPU; bk.pfn.PAPER for a GPU
    trained.save("gp.pfn")
    post = bk.fit(process, {"X": X, "y": y}, engine=bk.PFN(network=trained))

    mpnp = bk.pfn.train(prior, bk.pfn.NPTraining(model="mpnp"))
    post = bk.fit(process, {"X": X, "y": y}, engine=bk.NeuralProcess(network=mpnp))
"""

from __future__ import annotations

import importlib

from .engine import PFN, ContextWarning, NeuralProcess
from .np_settings import MODELS, NP_CPU, NP_PAPER, NPTraining

# public name -> the module (relative to this package) that defines it, imported on first use
_LAZY = {
    "BarDistribution": ".bar", "borders_from_samples": ".bar",
    "PFNTransformer": ".network",
    "BarPredictive": ".posterior", "PFNPosterior": ".posterior",
    "DatasetPrior": "...models.priors", "LearningCurvePrior": "...models.priors", "ModelPrior": "...models.priors",
    "ProcessPrior": "...models.priors",
    "LC_TINY": ".training", "PAPER": ".training", "PRETRAINED": ".training", "TINY": ".training",
    "TrainedPFN": ".training", "Training": ".training", "load": ".training", "pretrained": ".training",
    "train": ".training",
    "MixturePredictive": ".neural_process", "NPPosterior": ".neural_process", "TrainedNP": ".neural_process",
}

__all__ = ["LC_TINY", "MODELS", "NP_CPU", "NP_PAPER", "PAPER", "PFN", "PRETRAINED", "TINY", "BarDistribution",
           "BarPredictive", "ContextWarning", "MixturePredictive", "NPPosterior", "NPTraining", "NeuralProcess",
           "TrainedNP",
           "DatasetPrior", "LearningCurvePrior", "ModelPrior", "PFNPosterior", "PFNTransformer", "ProcessPrior",
           "TrainedPFN", "Training", "borders_from_samples", "load", "pretrained", "train"]


def __getattr__(name: str):
    from ...core.optional import needs_extra

    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with needs_extra(f"bk.pfn.{name}"):
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})
