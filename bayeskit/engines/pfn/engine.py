"""`bk.PFN` and `bk.NeuralProcess`: the posterior predictive of a dataset from a network trained on
the model's prior (a prior-data fitted network, or a neural process such as the MPNP).

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
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from ...core.checks import as_numeric, check_bool, check_checkpoint, check_int, check_type
from ...core.engine import Engine
from ...core.errors import ConfigError, DataError
from ...core.model import DatasetPriorSource, NumPyroProgram
from .settings import TINY, Training


class ContextWarning(UserWarning):
    """More context points than the network was trained for: its predictions are extrapolations."""


class _Amortized(Engine):
    """What amortised engines share: a network trained once on the model's prior (or given), data
    checks, and one forward pass per fit. A subclass sets its network type, its default training and
    its posterior (`_check_network`, `_default_training`, `_posterior`)."""

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
        if self.network is not None and not isinstance(self.network, (str, os.PathLike)):
            self._check_network()
        check_type("priors", self.priors, Mapping, "a dict of path -> NumPyro distribution", optional=True)
        if not isinstance(self.device, str) and type(self.device).__name__ != "device":  # str or torch.device
            raise ConfigError(f"`device` must be a torch device such as 'cpu' or 'cuda', got {self.device!r}")
        check_checkpoint(self.checkpoint, self.resume)
        check_bool("progress", self.progress)

    def _network_type(self):
        raise NotImplementedError

    def _check_network(self, network=None) -> None:
        network = self.network if network is None else network
        kind = self._network_type()
        check_type("network", network, kind, f"a {kind.__name__}, the path of a saved one, or None")

    def _default_training(self):
        raise NotImplementedError

    def _posterior(self, network, X, y):
        raise NotImplementedError

    def prior_for(self, model, x_dim: int):
        """The dataset prior that training for `model` simulates from: the model's own
        (`DatasetPriorSource`), that of its NumPyro function (``fn.dataset_prior``) when it carries
        one, else the NumPyro function run forward (`ModelPrior`)."""
        from ...models.priors import ModelPrior

        source = model if isinstance(model, DatasetPriorSource) else getattr(model, "fn", None)
        make = getattr(source, "dataset_prior", None)
        if make is not None:
            return make(x_dim=x_dim, priors=self.priors, inputs=self.inputs)
        if self.priors:
            raise ConfigError("`priors` is for process models; a NumPyro model states its own priors")
        return ModelPrior(model.fn, x_dim=x_dim, inputs=self.inputs)

    def _network(self, model, x_dim, key):
        from ...core.optional import needs_extra

        with needs_extra(f"bk.{type(self).__name__}"):
            return self._resolve_network(model, x_dim, key)

    def _resolve_network(self, model, x_dim, key):
        if self.network is None:
            from .training import train

            # the fit's key seeds the training run: bk.fit(..., seed=s) trains what bk.pfn.train(..., seed=s) does
            return train(self.prior_for(model, x_dim), self.training or self._default_training(), seed=key,
                         checkpoint=self.checkpoint, resume=self.resume, progress=self.progress)
        if isinstance(self.network, (str, os.PathLike)):
            from .training import PRETRAINED, load, pretrained

            path = os.fspath(self.network)
            if not os.path.exists(path):
                if path in PRETRAINED:  # a shipped network by name, as bk.pfn.pretrained takes it
                    network = pretrained(path, device=self.device)
                    self._check_network(network)
                    return network
                raise ConfigError(f"`network` {path!r} is neither a file nor a shipped network; the shipped ones are "
                                  f"{', '.join(map(repr, PRETRAINED))} (bk.pfn.PRETRAINED)")
            network = load(path, device=self.device)
            self._check_network(network)
            return network
        return self.network

    def fit(self, model, data, key):
        from .posterior import check_inputs

        if not isinstance(data, dict) or set(data) != {"X", "y"}:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise DataError(f"`data` for {type(self).__name__} must be a dict with keys 'X' and 'y', got {got}")
        y = as_numeric("`y`", data["y"], dtype=float)
        X_raw = as_numeric("`X`", data["X"], dtype=float)
        if X_raw.ndim not in (1, 2):
            raise DataError(f"`X` must be an (n, d) array of inputs (or (n,) for d = 1), got shape {X_raw.shape}")
        if X_raw.shape[0] == 0 or y.size == 0:
            raise DataError(f"`X` and `y` must hold at least one observation, got shapes {X_raw.shape} and {y.shape}")
        # every check of the data comes before the network is loaded (or trained)
        if y.ndim != 1 or y.shape[0] != X_raw.shape[0]:
            raise DataError(f"`y` must be a 1-D array with one target per row of `X` ({X_raw.shape[0]}), got shape "
                            f"{y.shape}")
        if not np.all(np.isfinite(y)):
            raise DataError(f"`y` contains {int((~np.isfinite(y)).sum())} non-finite value(s) (NaN or inf)")
        if not np.all(np.isfinite(X_raw)):
            raise DataError(f"`X` contains {int((~np.isfinite(X_raw)).sum())} non-finite value(s) (NaN or inf)")
        x_dim = X_raw.shape[1] if X_raw.ndim == 2 else 1
        network = self._network(model, x_dim, key)
        X = check_inputs(X_raw, network.x_dim)
        if X.shape[0] > network.max_context:
            warnings.warn(f"{X.shape[0]} context points, but the network was trained with at most "
                          f"{network.max_context}: its predictions extrapolate beyond its training", ContextWarning,
                          stacklevel=3)
        return self._posterior(network, X, y)


class PFN(_Amortized):
    """Amortised inference with a prior-data fitted network.

    ``network``: a `TrainedPFN`, the path of a saved one, or None (train one for the model with
    ``training``, a `bk.pfn.Training`, default `bk.pfn.TINY`, seeded by the fit's seed). The model
    gives the training prior (`DatasetPriorSource.dataset_prior`, or a NumPyro model run forward);
    ``priors`` (path -> NumPyro distribution) and ``inputs`` (a distribution over one input point)
    shape it. ``device``: where a loaded network runs.
    """

    def __check_init__(self):
        check_type("training", self.training, Training, "a bk.pfn.Training", optional=True)

    def _network_type(self):
        from .training import TrainedPFN  # a network given means torch is loaded already

        return TrainedPFN

    def _default_training(self):
        return TINY

    def _posterior(self, network, X, y):
        from .posterior import PFNPosterior

        return PFNPosterior(network, X, y, engine=self)


class NeuralProcess(_Amortized):
    """Amortised inference with a neural process (CNP, NP, ANP, CANP, BNP, MPNP, MPANP).

    ``network``: a `TrainedNP`, the path of a saved one, or None (train one for the model with
    ``training``, a `bk.pfn.NPTraining`, default `bk.pfn.NP_CPU`: an MPNP). ``samples``: network
    samples (latents, bootstraps, pseudo-context sets) in each predictive mixture. The rest as `bk.PFN`.
    """

    samples: int = 50

    def __check_init__(self):
        from .np_settings import NPTraining

        check_type("training", self.training, NPTraining, "a bk.pfn.NPTraining", optional=True)
        check_int("samples", self.samples)

    def _network_type(self):
        from .neural_process import TrainedNP

        return TrainedNP

    def _default_training(self):
        from .np_settings import NP_CPU

        return NP_CPU

    def _posterior(self, network, X, y):
        from .neural_process import NPPosterior

        return NPPosterior(network, X, y, samples=self.samples, engine=self)
