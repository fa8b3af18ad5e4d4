"""The dataset priors PFNs train on live in `bayeskit.models.priors`; re-exported here."""

from ...models.priors import DatasetPrior, LearningCurvePrior, ModelPrior, ProcessPrior

__all__ = ["DatasetPrior", "LearningCurvePrior", "ModelPrior", "ProcessPrior"]
