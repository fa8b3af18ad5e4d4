"""Gradient-step optimisation on the host (type-II maximum likelihood, sparse variational fits),
driven by the shared loop (`core.loop`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from . import loop
from .errors import SamplingError

NON_FINITE = "non-finite objective"
NON_FINITE_STEP = "non-finite parameters after a step"
FINAL_LR_FRACTION = 0.01  # the cosine schedule decays the learning rate to this fraction of its start


def learning_rates(steps: int, learning_rate: float, schedule: str):
    """The learning rate of each of `steps` steps: `learning_rate` held (``"constant"``) or decayed
    along a cosine to `FINAL_LR_FRACTION` of it (``"cosine"``)."""
    import numpy as np

    if schedule == "constant":
        return np.full(steps, float(learning_rate))
    t = np.arange(steps) / max(steps - 1, 1)
    cosine = 0.5 * (1 + np.cos(np.pi * t))
    return learning_rate * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * cosine)


def _finite(tree) -> bool:
    """Whether every leaf of a parameter pytree is finite."""
    import jax
    import numpy as np

    return all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree_util.tree_leaves(tree))


def run_steps(step: Callable, theta, state, *, steps: int, n: int, progress: bool, desc: str, label: str,
              keep: str = "best", partial: Callable[[Any, list], Any] | None = None, start: int = 0,
              records=(), checkpoint=None, snapshot: Callable | None = None):
    """Run ``step(theta, state) -> (theta, state, loss)`` `steps` times with a progress bar.

    ``loss`` is the objective per data point (minimised); the history records ``-loss * n``
    (the log marginal likelihood, or the ELBO). Returns (theta, history).

    A non-finite loss stops the run and raises `SamplingError` naming the step; its ``partial`` is
    ``partial(theta, history)`` (default: the pair itself) at what was reached: the best point so
    far (``keep="best"``, for exact objectives) or the last one with a finite loss (``keep="last"``,
    for stochastic ones, where the best is a lucky draw). A step whose update leaves the parameters
    non-finite (a NaN or infinite gradient with a finite loss) stops the run the same way, so a NaN
    never reaches the model as a hyperparameter value.

    ``checkpoint`` (a `core.checkpoint.Checkpoint`) is written after each chunk of steps with
    ``snapshot((theta, state))``; a resumed run passes the saved ``(theta, state)``, the steps done
    as ``start`` and the saved ``records`` (the history so far). With ``keep="best"`` the best point
    is then the best since the resume.
    """
    best = [math.inf, theta, -1]  # loss, theta, step
    last = [theta]  # the last point whose loss was finite (the loss is that of the step's input)

    def advance(carry, start, stop):
        theta, state = carry
        values = []
        for _ in range(start, stop):
            new_theta, new_state, value = step(theta, state)
            value = float(value)
            if not math.isfinite(value):
                raise loop.Stop((theta, state), start + len(values), values, NON_FINITE)
            last[0] = theta
            if value < best[0]:
                best[:] = [value, theta, start + len(values)]
            values.append(-value * n)
            if not _finite(new_theta):
                raise loop.Stop((theta, state), start + len(values) - 1, values, NON_FINITE_STEP)
            theta, state = new_theta, new_state
        return (theta, state), values

    result = loop.run(advance, (theta, state), total=steps, start=start, records=records, progress=progress,
                      desc=desc, postfix=lambda records, done: f"{label} {records[-1][-1]:.3f}" if records[-1] else "",
                      checkpoint=checkpoint, snapshot=snapshot)
    history = [v for record in result.records for v in record]
    stopped = result.stopped
    if stopped is not None and stopped.reason in (NON_FINITE, NON_FINITE_STEP):
        kept = best[1] if keep == "best" else last[0]
        bad = stopped.done
        good = bad - 1 if stopped.reason == NON_FINITE else bad  # the last step whose input was finite
        if good < 0:
            where = "the starting point (nothing was optimised)"
        elif keep == "best":
            where = f"the best point reached (step {best[2]})"
        else:
            where = f"the parameters of step {good}, the last with a finite {label}"
        kept_result, note = (kept, history), ""
        if partial is not None:
            try:
                kept_result = partial(kept, history)
            except Exception as exc:  # the error of the run says more; keep the raw point
                note = f" as (parameters, history): a posterior at that point failed too ({type(exc).__name__}: {exc})"
        import jax

        x64 = "" if jax.config.jax_enable_x64 else ", use 64-bit floats (jax.config.update('jax_enable_x64', True))"
        what = (f"the {label} was not finite at step {bad} of {steps}" if stopped.reason == NON_FINITE else
                f"the gradient of the {label} at step {bad} of {steps} was not finite (the step led to non-finite "
                f"parameters)")
        raise SamplingError(
            f"{desc}: {what}: the run stopped there and kept {where} "
            f"(error.partial{note}). Lower the learning rate{x64}, or check the data and the starting values",
            partial=kept_result)
    return (best[1] if keep == "best" else result.state[0]), history
