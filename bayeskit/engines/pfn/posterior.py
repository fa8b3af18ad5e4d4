"""The posterior a PFN returns: the posterior predictive of new targets given the observed
dataset, one forward pass per batch of queries."""

from __future__ import annotations

import dataclasses

import numpy as np

from ...core.checks import check_probability
from ...core.errors import ConfigError, DataError
from ...core.posterior import Posterior, check_n
from ...core.seeds import torch_generator

QUERY_CHUNK = 4096  # queries per forward pass: they do not see each other, so chunking changes nothing


@dataclasses.dataclass(frozen=True)
class BarPredictive:
    """Marginal predictive distributions at m points, each a bar distribution (``logits`` (m, K))."""

    logits: object  # torch tensor (m, K), float64
    bar: object  # BarDistribution

    def _t(self, value):
        import torch

        value = torch.tensor(np.asarray(value, dtype=float), dtype=self.logits.dtype)
        if value.shape not in ((), self.logits.shape[:1]):
            raise ConfigError(f"values must be a scalar or of shape ({self.logits.shape[0]},), got "
                              f"{tuple(value.shape)}")
        return value

    @property
    def mean(self) -> np.ndarray:
        return self.bar.mean(self.logits).numpy()

    @property
    def variance(self) -> np.ndarray:
        return self.bar.variance(self.logits).numpy()

    @property
    def stddev(self) -> np.ndarray:
        return np.sqrt(self.variance)

    def log_prob(self, y) -> np.ndarray:
        """Log predictive density of targets `y` (m,), point by point."""
        return self.bar.log_prob(self.logits, self._t(y)).numpy()

    def cdf(self, y) -> np.ndarray:
        return self.bar.cdf(self.logits, self._t(y)).numpy()

    def quantile(self, q) -> np.ndarray:
        """The q-quantile at each point (q a scalar or one level per point)."""
        return self.bar.icdf(self.logits, self._t(q)).numpy()

    def interval(self, prob: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central interval holding `prob` of the predictive mass at each point."""
        check_probability("prob", prob)
        return self.quantile((1 - prob) / 2), self.quantile((1 + prob) / 2)

    def sample(self, n: int, seed=0) -> np.ndarray:
        """(n, m) draws, independent across points (a PFN gives marginals); ``seed`` an int or a JAX
        key (an int and its key give the same draws)."""
        generator = torch_generator(seed)
        return self.bar.sample(self.logits, (check_n(n),), generator=generator).numpy()


class AmortizedPosterior(Posterior):
    """What the posteriors of amortised engines share: the fit's data (``X``, ``y``), a ``network``
    whose ``x_dim`` inputs must match, and replicates of y drawn from `predict` (which subclasses give)."""

    observed_sites = ("y",)

    def inputs(self, new_data) -> np.ndarray:
        """New inputs from ``{"X": X_new}`` or an array (default: the training X), checked."""
        X_new = self.X if new_data is None else new_data["X"] if isinstance(new_data, dict) else new_data
        return check_inputs(X_new, self.network.x_dim, "X_new")

    def sample(self, n: int, seed=0) -> dict[str, np.ndarray]:
        return {"y": self.predict(seed=seed).sample(check_n(n), seed)}

    def traces(self) -> dict[str, np.ndarray]:
        """The network's training loss per step (empty for a network trained elsewhere)."""
        history = np.asarray(getattr(self.network, "history", ()), dtype=float)
        return {"training_loss": history} if history.size else {}

    def groups(self, n_draws: int = 4000, seed=0) -> dict[str, dict[str, np.ndarray]]:
        return {"posterior": {k: v[None] for k, v in self.sample(n_draws, seed).items()},
                "observed_data": {"y": self.y}, "constant_data": {"X": self.X}}


class PFNPosterior(AmortizedPosterior):
    """p(y_new | x_new, D) from a trained PFN conditioned on the data D = (X, y).

    ``predict(X_new)`` gives the predictive distribution (`BarPredictive`: mean, variance, log_prob,
    cdf, quantile, interval, sample); ``sample(n)`` draws replicates of y at the training inputs
    (the posterior predictive check's y_rep, point by point); ``network`` is the `TrainedPFN`,
    ``engine`` the `bk.PFN` that made it.
    """

    def __init__(self, network, X, y, *, engine=None):
        self.network, self.X, self.y, self.engine = network, X, y, engine

    def __repr__(self):
        return f"PFNPosterior(n={self.y.shape[0]} points of dimension {self.X.shape[1]}; {self.network!r})"

    @property
    def extrapolates(self) -> bool:
        """Whether the network predicts only beyond its context (trained on a prior whose queries follow
        the context, as LC-PFN's later epochs): then `predict` takes inputs after the last observed one."""
        return getattr(self.network, "queries", "anywhere") == "after"

    def future_inputs(self) -> np.ndarray:
        """An extrapolating network's default queries: the integer inputs after the last observed one, up to
        the length of the sequences it was trained on (LC-PFN: the epochs after the last observed one)."""
        last = float(np.max(self.X))
        horizon = self.network.max_context + 1
        X_future = np.arange(np.floor(last) + 1, horizon + 1, dtype=float)[:, None]
        if X_future.size == 0:
            raise DataError(f"the data reach input {last:g}, the end of the sequences this network was trained on "
                            f"({horizon}): there is nothing after it to predict")
        return X_future

    def sample(self, n: int, seed=0) -> dict[str, np.ndarray]:
        """Replicates of y at the training inputs; for an extrapolating network, draws of ``y_future`` at
        `future_inputs` instead (it predicts nothing at its context)."""
        if self.extrapolates:
            return {"y_future": self.predict(seed=seed).sample(check_n(n), seed)}
        return super().sample(n, seed)

    def groups(self, n_draws: int = 4000, seed=0) -> dict[str, dict[str, np.ndarray]]:
        out = super().groups(n_draws, seed)
        if self.extrapolates:
            out["constant_data"]["X_future"] = self.future_inputs()
        return out

    def predict(self, new_data=None, *, seed=0, n=None, **options) -> BarPredictive:
        """Predictive distribution at new inputs (``{"X": X_new}`` or an array; default: the training X,
        or `future_inputs` for an extrapolating network, which refuses inputs at or before its context's
        last: it was never trained to predict there, and an observed point's value is its observation).

        The answer is a distribution, not draws: ``seed`` and ``n`` are unused (draw with
        ``.sample(n, seed)`` on it)."""
        import torch

        if options:
            raise ConfigError(f"unknown option(s) {', '.join(map(repr, options))} for PFNPosterior.predict")

        if self.extrapolates:
            X_new = self.future_inputs() if new_data is None else self.inputs(new_data)
            last = float(np.max(self.X))
            early = X_new[:, 0] <= last
            if early.any():
                raise DataError(
                    f"this PFN was trained on {self.network.prior_name}, whose queries always follow the context: "
                    f"it predicts inputs after the last observed one ({last:g}) only, and X_new has "
                    f"{int(early.sum())} at or before it (first: {X_new[early, 0][0]:g}). Ask for later inputs "
                    f"(the default, predict(), gives {last + 1:g} onwards); for the curve at the observed epochs, fit "
                    f"bayeskit.models.learning_curves.learning_curve_model with bk.NUTS(init='sample')")
        else:
            X_new = self.inputs(new_data)
        chunks = [self.network.logits(self.X[None], self.y[None], X_new[None, i:i + QUERY_CHUNK])[0]
                  for i in range(0, X_new.shape[0], QUERY_CHUNK)]
        return BarPredictive(torch.cat(chunks), self.network.bar)

    def attrs(self):
        out = super().attrs()
        out["bayeskit_pfn"] = repr(self.network)
        return out


def check_inputs(X, x_dim: int, name: str = "X") -> np.ndarray:
    """X as a finite (n, d) float array with d = x_dim, or a named error."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1 and x_dim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise DataError(f"`{name}` must be an (n, {x_dim}) array of inputs, got shape {X.shape}")
    if X.shape[1] != x_dim:
        raise DataError(f"`{name}` has {X.shape[1]} columns, but the network was trained on {x_dim}-dimensional "
                        f"inputs")
    if not np.all(np.isfinite(X)):
        raise DataError(f"`{name}` contains {int((~np.isfinite(X)).sum())} non-finite value(s) (NaN or inf)")
    return X
