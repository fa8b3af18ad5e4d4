"""The point estimate `bk.Optimize` returns: the fitted parameters with the model's predictive."""

from __future__ import annotations

import json

import numpy as np

from ...core.errors import ModelError
from ...core.posterior import Posterior, check_n
from ...core.seeds import as_key

STILL_IMPROVING = 1e-3  # objective gained per data point over the last 10% of steps that counts as unconverged


class OptimizedPosterior(Posterior):
    """The parameters that maximise a model's objective, with the objective's trace.

    ``params``: the fitted parameters (the model's pytree); ``history``: the objective at each step;
    ``objective``: its value at ``params`` on all the data; ``info``: what the model reports about the
    fit (``describe``: hyperparameters, jitter, ...). ``predict(new_data)`` is the model's predictive at new inputs;
    ``sample(n, seed)`` the model's draws given the fitted parameters (for a deep kernel machine: the
    output functions from its Gaussian output layer). The draws are independent (``markov`` False).
    """

    markov = False

    def __init__(self, model, params, data: dict, history=(), *, engine=None, stopped: bool = False,
                 objective: float | None = None):
        self.model, self.params, self.data = model, params, data
        self.history = tuple(float(h) for h in history)
        last = self.history[-1] if self.history else float("nan")
        self.objective = float(objective) if objective is not None else last
        self.engine = engine
        self.stopped = bool(stopped)
        describe = getattr(model, "describe", None)
        self.info = describe(params, data) if callable(describe) else {}

    @property
    def num_points(self) -> int:
        return int(np.shape(next(iter(self.data.values())))[0])

    def __repr__(self):
        facts = "".join(f", {k}={_short(v)}" for k, v in self.info.items() if np.ndim(v) == 0)
        return (f"OptimizedPosterior({type(self.model).__name__}, n={self.num_points}, "
                f"objective {self.objective:.4f} after {len(self.history)} steps{facts})")

    def predict(self, new_data=None, *, seed=0, n: int | None = None, **options):
        """The model's predictive at ``new_data`` (default: the data of the fit); ``seed`` and ``n`` serve
        Monte Carlo predictives, ``options`` are the model's (e.g. ``noisy=``)."""
        return self.model.predict(self.params, self.data, new_data, seed=seed, n=n, **options)

    def sample(self, n: int, seed=0) -> dict[str, np.ndarray]:
        """`n` draws of what the model draws given the fitted parameters (``model.sample``)."""
        n = check_n(n)
        draw = getattr(self.model, "sample", None)
        if not callable(draw):
            raise ModelError(f"{type(self.model).__name__} is a point estimate with nothing to draw: it has no "
                             f"`sample(params, data, key, n)`; use `predict` or `params`")
        return {k: np.asarray(v) for k, v in draw(self.params, self.data, as_key(seed), n).items()}

    def problems(self) -> list[str]:
        out = []
        if self.stopped:
            out.append(f"the objective became non-finite after {len(self.history)} of {self.engine.steps} steps; "
                       f"the fit kept the last point with a finite objective (lower `learning_rate`)")
            return out
        tail = len(self.history) // 10
        if tail >= 4:
            # averages over quarters of the last 10% of steps: Monte Carlo and minibatch noise cancel
            quarter = tail // 4
            last = np.asarray(self.history[-tail:])
            gain = (last[-quarter:].mean() - last[:quarter].mean()) / self.num_points
            if gain > STILL_IMPROVING:
                out.append(f"the objective was still improving over the last 10% of steps ({gain:.2g} per data "
                           f"point, above {STILL_IMPROVING:g}): raise `steps` or `learning_rate`")
        return out

    def attrs(self):
        out = super().attrs()
        out["bayeskit_objective"] = repr(self.objective)
        out["bayeskit_fit_info"] = json.dumps(_plain(self.info))
        return out


def _short(value):
    return f"{value:.3g}" if isinstance(value, float) else value


def _plain(value):
    """JSON-friendly copies of NumPy and JAX values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "shape"):
        return np.asarray(value).tolist()
    return value
