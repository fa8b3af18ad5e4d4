"""Gradient-step optimisation on the host (type-II maximum likelihood, sparse variational fits),
driven by the shared loop (`core.loop`)."""

from __future__ import annotations

import math
from collections.abc import Callable

from . import loop


def run_steps(step: Callable, theta, state, *, steps: int, n: int, progress: bool, desc: str, label: str,
              keep: str = "best"):
    """Run ``step(theta, state) -> (theta, state, loss)`` `steps` times with a progress bar.

    ``loss`` is the objective per data point (minimised); the history records ``-loss * n``
    (the log marginal likelihood, or the ELBO). A non-finite loss stops the run there, keeping
    what was reached: the best point so far (``keep="best"``, for exact objectives) or the last
    finite one (``keep="last"``, for stochastic ones, where the best is a lucky draw).
    Returns (theta, history).
    """
    best = [math.inf, theta]

    def advance(carry, start, stop):
        theta, state = carry
        values = []
        for _ in range(start, stop):
            new_theta, new_state, value = step(theta, state)
            value = float(value)
            if not math.isfinite(value):
                raise loop.Stop((theta, state), start + len(values), values, "non-finite objective")
            if value < best[0]:
                best[:] = [value, theta]
            values.append(-value * n)
            theta, state = new_theta, new_state
        return (theta, state), values

    result = loop.run(advance, (theta, state), total=steps, progress=progress, desc=desc,
                      postfix=lambda records, done: f"{label} {records[-1][-1]:.3f}" if records[-1] else "")
    history = [v for record in result.records for v in record]
    return (best[1] if keep == "best" else result.state[0]), history
