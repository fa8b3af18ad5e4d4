"""The optimisation loop shared by engines that fit by gradient steps (type-II ML, variational), and
the chunking of compiled loops (MCMC, VI)."""

from __future__ import annotations

import math
from collections.abc import Callable

TARGET_CHUNKS = 40  # host round trips per compiled run: enough for a smooth bar, negligible overhead


def chunk_length(total: int) -> int:
    """Steps per compiled chunk: a divisor of `total` near total/TARGET_CHUNKS if there is one
    (every chunk the same shape: one compilation), else total/TARGET_CHUNKS rounded up (the last
    chunk is shorter or padded)."""
    want = max(1, math.ceil(total / TARGET_CHUNKS))
    for length in range(want, 2 * want + 1):
        if total % length == 0:
            return length
    return want


def run_steps(step: Callable, theta, state, *, steps: int, n: int, progress: bool, desc: str, label: str,
              keep: str = "best"):
    """Run ``step(theta, state) -> (theta, state, loss)`` `steps` times with a progress bar.

    ``loss`` is the objective per data point (minimised); the history records ``-loss * n``
    (the log marginal likelihood, or the ELBO). A non-finite loss stops the run there, keeping
    what was reached: the best point so far (``keep="best"``, for exact objectives) or the last
    finite one (``keep="last"``, for stochastic ones, where the best is a lucky draw).
    Returns (theta, history).
    """
    from tqdm.auto import tqdm

    history, best = [], (math.inf, theta)
    with tqdm(total=steps, desc=desc, disable=not progress, dynamic_ncols=True) as bar:
        for _ in range(steps):
            new_theta, new_state, value = step(theta, state)
            value = float(value)
            if not math.isfinite(value):
                break
            if value < best[0]:
                best = (value, theta)
            history.append(-value * n)
            theta, state = new_theta, new_state
            bar.update(1)
            bar.set_postfix_str(f"{label} {-value * n:.3f}", refresh=False)
    return (best[1] if keep == "best" else theta), history
