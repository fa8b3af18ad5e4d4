"""Trained neural processes and the posterior `bk.NeuralProcess` returns: the predictive at new
inputs is the equal-weight Gaussian mixture over S samples (latent draws, bootstrap sets or
pseudo-context sets) that the network gives for the observed context."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from scipy.special import logsumexp, ndtr

from ...core.checks import check_int, check_probability
from ...core.errors import ConfigError
from ...core.posterior import check_n
from ...core.seeds import int_seed, numpy_rng
from .posterior import QUERY_CHUNK, AmortizedPosterior


@dataclasses.dataclass(frozen=True)
class MixturePredictive:
    """Marginal predictives at m points: Σ_s N(μ_s, σ_s²) / S, with ``mu`` and ``sigma`` (S, m) float64."""

    mu: np.ndarray
    sigma: np.ndarray

    def _values(self, value):
        value = np.asarray(value, dtype=float)
        if value.shape not in ((), self.mu.shape[1:]):
            raise ConfigError(f"values must be a scalar or of shape {self.mu.shape[1:]}, got {value.shape}")
        return value

    @property
    def mean(self) -> np.ndarray:
        return self.mu.mean(0)

    @property
    def variance(self) -> np.ndarray:
        return (self.sigma**2 + self.mu**2).mean(0) - self.mean**2

    @property
    def stddev(self) -> np.ndarray:
        return np.sqrt(self.variance)

    def log_prob(self, y) -> np.ndarray:
        """log (1/S) Σ_s N(y; μ_s, σ_s²), point by point."""
        z = (self._values(y) - self.mu) / self.sigma
        return logsumexp(-0.5 * z**2 - np.log(self.sigma) - 0.5 * math.log(2 * math.pi), axis=0) - math.log(
            self.mu.shape[0])

    def cdf(self, y) -> np.ndarray:
        return ndtr((self._values(y) - self.mu) / self.sigma).mean(0)

    def quantile(self, q) -> np.ndarray:
        """The q-quantile at each point, by bisection on the mixture's cdf (to 1e-10 of the spread)."""
        q = np.broadcast_to(self._values(q), self.mu.shape[1:])
        lo = (self.mu - 40 * self.sigma).min(0)
        hi = (self.mu + 40 * self.sigma).max(0)
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid) < q
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def interval(self, prob: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        check_probability("prob", prob)
        return self.quantile((1 - prob) / 2), self.quantile((1 + prob) / 2)

    def sample(self, n: int, seed=0) -> np.ndarray:
        """(n, m) draws, independent across points; ``seed`` an int or a JAX key."""
        rng = numpy_rng(seed)
        n = check_n(n)
        component = rng.integers(self.mu.shape[0], size=(n, self.mu.shape[1]))
        columns = np.arange(self.mu.shape[1])
        return self.mu[component, columns] + self.sigma[component, columns] * rng.standard_normal(component.shape)


class TrainedNP:
    """A trained neural process with what it was trained on and its loss trace (`bk.pfn.train` with an
    `NPTraining`). ``predict(x_context, y_context, x_query, samples, seed)`` gives a `MixturePredictive`."""

    def __init__(self, network, training, prior_name: str, history=(), step: int | None = None, x_loc=None,
                 x_scale=None):
        self.network = network.eval()
        self.training = training
        self.prior_name = prior_name
        self.history = np.asarray(history, dtype=float)
        self.step = len(self.history) if step is None else step
        self.x_loc = np.zeros(network.x_dim) if x_loc is None else np.asarray(x_loc, dtype=float)
        self.x_scale = np.ones(network.x_dim) if x_scale is None else np.asarray(x_scale, dtype=float)

    def __repr__(self):
        final = self.history[-20:].mean() if self.history.size else float("nan")
        return (f"TrainedNP({self.network.config['kind']}, {self.training.model}; {self.prior_name}; {self.step} "
                f"steps, final loss {final:.3f})")

    @property
    def x_dim(self) -> int:
        return self.network.x_dim

    @property
    def max_context(self) -> int:
        return self.training.max_context

    def predict(self, x_context, y_context, x_query, samples: int = 50, seed=0) -> MixturePredictive:
        """The predictive at ``x_query`` (m, d) given one context (n, d), (n,); the network's own sampling
        (latents, bootstraps, pseudo-contexts) is seeded by ``seed`` in a forked torch generator."""
        mu, sigma = self.mixture(np.asarray(x_context)[None], np.asarray(y_context)[None],
                                 np.asarray(x_query)[None], samples, seed)
        return MixturePredictive(mu[:, 0], sigma[:, 0])

    @torch.no_grad()
    def mixture(self, x_context, y_context, x_query, samples: int = 50, seed=0) -> tuple[np.ndarray, np.ndarray]:
        """The mixture components (μ, σ), each (S, B, m) float64, for a batch of B tasks with contexts of
        one size: x_context (B, n, d), y_context (B, n), x_query (B, m, d)."""
        from .training import torch_threads

        check_int("samples", samples)
        device = next(self.network.parameters()).device
        as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32), device=device)  # noqa: E731
        xc = as_t((np.asarray(x_context, dtype=float) - self.x_loc) / self.x_scale)
        yc = as_t(y_context)[..., None]
        xq = (np.asarray(x_query, dtype=float) - self.x_loc) / self.x_scale
        mus, sigmas = [], []
        threads = self.training.threads if device.type == "cpu" else None
        with torch.random.fork_rng(devices=[]), torch_threads(threads):
            torch.manual_seed(int_seed(seed))
            for i in range(0, xq.shape[1], QUERY_CHUNK):
                mu, sigma = self.network.predict(xc, yc, as_t(xq[:, i:i + QUERY_CHUNK]), samples)
                mus.append(mu[..., 0].double().cpu().numpy())
                sigmas.append(sigma[..., 0].double().cpu().numpy())
        return np.concatenate(mus, -1), np.concatenate(sigmas, -1)  # S = 1 for a deterministic network

    def save(self, path) -> None:
        from .training import _atomic_save

        _atomic_save({"format": "bayeskit.np/1", "network": self.network.state_dict(),
                      "network_config": self.network.config, "training": dataclasses.asdict(self.training),
                      "prior_name": self.prior_name, "history": self.history.tolist(), "step": self.step,
                      "x_loc": self.x_loc.tolist(), "x_scale": self.x_scale.tolist()}, path)

    @classmethod
    def from_saved(cls, saved: dict, device: str = "cpu") -> TrainedNP:
        from ...models.neural_processes import build
        from .np_settings import NPTraining

        network = build(saved["network_config"])
        network.load_state_dict(saved["network"])
        return cls(network.to(device), NPTraining(**saved["training"]), saved["prior_name"], saved["history"],
                   saved["step"], saved["x_loc"], saved["x_scale"])


class NPPosterior(AmortizedPosterior):
    """p(y_new | x_new, D) from a trained neural process conditioned on the data D = (X, y).

    ``predict(X_new)`` gives a `MixturePredictive` over ``samples`` network samples (mean, variance,
    log_prob, cdf, quantile, interval, sample), seeded by ``seed``; ``sample(n)`` draws replicates of y
    at the training inputs; ``network`` is the `TrainedNP`, ``engine`` the `bk.NeuralProcess`.
    """

    def __init__(self, network, X, y, *, samples: int = 50, engine=None):
        self.network, self.X, self.y, self.samples, self.engine = network, X, y, samples, engine

    def __repr__(self):
        return f"NPPosterior(n={self.y.shape[0]} points of dimension {self.X.shape[1]}; {self.network!r})"

    def predict(self, new_data=None, *, seed=0, n=None, **options) -> MixturePredictive:
        """The predictive at new inputs (``{"X": X_new}`` or an array; default: the training X).
        ``n`` is unused (draw with ``.sample(n, seed)`` on the result)."""
        if options:
            raise ConfigError(f"unknown option(s) {', '.join(map(repr, options))} for NPPosterior.predict")
        return self.network.predict(self.X, self.y, self.inputs(new_data), self.samples, seed)

    def attrs(self):
        out = super().attrs()
        out["bayeskit_network"] = repr(self.network)
        return out
