"""Prior-data fitted networks (PFNs): a transformer trained once on datasets drawn from a prior
gives the posterior predictive of a new dataset in one forward pass (Müller et al. 2022).
PyTorch is imported here, on first use, never by ``import bayeskit``.

    prior = bk.pfn.ProcessPrior(process, priors={"kernel.lengthscale": dist.LogNormal(-1.5, 0.5)})
    trained = bk.pfn.train(prior, bk.pfn.TINY)      # minutes on a CPU; bk.pfn.PAPER for a GPU
    trained.save("gp.pfn")
"""

from .bar import BarDistribution, borders_from_samples
from .network import PFNTransformer
from .priors import DatasetPrior, ModelPrior, ProcessPrior
from .training import PAPER, TINY, TrainedPFN, Training, load, train

__all__ = ["PAPER", "TINY", "BarDistribution", "DatasetPrior", "ModelPrior", "PFNTransformer", "ProcessPrior",
           "TrainedPFN", "Training", "borders_from_samples", "load", "train"]
