"""Prior-data fitted networks (PFNs): a transformer trained once on datasets drawn from a prior
gives the posterior predictive of a new dataset in one forward pass (Müller et al. 2022).
PyTorch is imported here, on first use, never by ``import bayeskit``.

    prior = bk.pfn.ProcessPrior(process, priors={"kernel.lengthscale": dist.LogNormal(-1.5, 0.5)})
    trained = bk.pfn.train(prior, bk.pfn.TINY)      # minutes on a CPU; bk.pfn.PAPER for a GPU
    trained.save("gp.pfn")
    post = bk.fit(process, {"X": X, "y": y}, engine=bk.PFN(network=trained))
"""

from .bar import BarDistribution, borders_from_samples
from .engine import PFN, ContextWarning
from .network import PFNTransformer
from .posterior import BarPredictive, PFNPosterior
from .priors import DatasetPrior, LearningCurvePrior, ModelPrior, ProcessPrior
from .training import LC_TINY, PAPER, PRETRAINED, TINY, TrainedPFN, Training, load, pretrained, train

__all__ = ["LC_TINY", "PAPER", "PFN", "PRETRAINED", "TINY", "BarDistribution", "BarPredictive", "ContextWarning",
           "DatasetPrior", "LearningCurvePrior", "ModelPrior", "PFNPosterior", "PFNTransformer", "ProcessPrior",
           "TrainedPFN", "Training", "borders_from_samples", "load", "pretrained", "train"]
