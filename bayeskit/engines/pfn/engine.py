"""`bk.PFN`: the posterior predictive of a dataset from a network trained on the model's prior.

    trained = bk.pfn.train(bk.pfn.ProcessPrior(process), bk.pfn.TINY)     # once
    post = bk.fit(process, {"X": X, "y": y}, engine=bk.PFN(network=trained))
    post.predict({"X": X_new}).interval(0.9)

Without ``network`` the engine trains one for the model first (``training`` settings; inputs
drawn from ``inputs``, hyperpriors from ``priors`` for a process): keep ``post.network`` and
pass it next time, or save it (`TrainedPFN.save`, `bk.pfn.load`).
"""

from __future__ import annotations

import os
import warnings
from typing import ClassVar

import numpy as np

from ...core.engine import Engine
from ...core.errors import ConfigError, DataError
from ...core.model import DatasetPriorSource, NumPyroProgram


class ContextWarning(UserWarning):
    """More context points than the network was trained for: its predictions are extrapolations."""


class PFN(Engine):
    """Amortised inference with a prior-data fitted network.

    ``network``: a `TrainedPFN`, the path of a saved one, or None (train one for the model with
    ``training``, a `bk.pfn.Training`, default `bk.pfn.TINY`). ``priors`` (path -> NumPyro
    distribution) and ``inputs`` (a distribution over one input point) shape the training prior.
    ``device``: where a loaded network runs.
    """

    network: object = None
    training: object = None
    priors: dict | None = None
    inputs: object = None
    device: str = "cpu"
    checkpoint: str | None = None
    resume: bool = False
    progress: bool = True

    capability: ClassVar = (DatasetPriorSource, NumPyroProgram)

    def __check_init__(self):
        from .training import TrainedPFN, Training

        if self.network is not None and not isinstance(self.network, (TrainedPFN, str, os.PathLike)):
            raise ConfigError(f"`network` must be a TrainedPFN, the path of a saved one, or None, got "
                              f"{type(self.network).__name__}")
        if self.training is not None and not isinstance(self.training, Training):
            raise ConfigError(f"`training` must be a bk.pfn.Training, got {type(self.training).__name__}")
        if self.resume and not self.checkpoint:
            raise ConfigError("`resume=True` needs `checkpoint=` (the file to resume from)")

    def prior_for(self, model, x_dim: int):
        """The dataset prior that training for `model` simulates from."""
        from ...models.learning_curves import learning_curve_model
        from ...models.processes.process import ScaleMixtureProcess
        from .priors import LearningCurvePrior, ModelPrior, ProcessPrior

        if isinstance(model, ScaleMixtureProcess):
            return ProcessPrior(model, dict(self.priors or {}), x_dim=x_dim, inputs=self.inputs)
        if self.priors:
            raise ConfigError("`priors` is for process models; a NumPyro model states its own priors")
        if model.fn is learning_curve_model:
            # its truncation is a factor, which running the model forward would ignore: draw by rejection
            if self.inputs is not None:
                raise ConfigError("`inputs` cannot be set for the learning-curve model: its inputs are the epochs")
            return LearningCurvePrior()
        return ModelPrior(model.fn, x_dim=x_dim, inputs=self.inputs)

    def _network(self, model, x_dim, key):
        from .training import TINY, TrainedPFN, load, train

        if isinstance(self.network, TrainedPFN):
            return self.network
        if self.network is not None:
            return load(self.network, device=self.device)
        import jax

        seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
        return train(self.prior_for(model, x_dim), self.training or TINY, seed=seed, checkpoint=self.checkpoint,
                     resume=self.resume, progress=self.progress)

    def fit(self, model, data, key):
        from .posterior import PFNPosterior, check_inputs

        if not isinstance(data, dict) or set(data) != {"X", "y"}:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise DataError(f"`data` for a PFN must be a dict with keys 'X' and 'y', got {got}")
        y = np.asarray(data["y"], dtype=float)
        X_raw = np.asarray(data["X"], dtype=float)
        x_dim = X_raw.shape[1] if X_raw.ndim == 2 else 1
        network = self._network(model, x_dim, key)
        X = check_inputs(X_raw, network.x_dim)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise DataError(f"`y` must be a 1-D array with one target per row of `X` ({X.shape[0]}), got shape "
                            f"{y.shape}")
        if not np.all(np.isfinite(y)):
            raise DataError(f"`y` contains {int((~np.isfinite(y)).sum())} non-finite value(s) (NaN or inf)")
        if X.shape[0] > network.max_context:
            warnings.warn(f"{X.shape[0]} context points, but the network was trained with at most "
                          f"{network.max_context}: its predictions extrapolate beyond its training", ContextWarning,
                          stacklevel=3)
        return PFNPosterior(network, X, y)
