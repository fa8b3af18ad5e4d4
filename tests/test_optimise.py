"""`core.optimise.run_steps`, the host loop of type-II ML, sparse VI, `Optimize` and SMC learning:
a non-finite objective raises `SamplingError` naming the step, with the point reached kept."""

import math

import numpy as np
import pytest

from bayeskit import SamplingError
from bayeskit.core.optimise import run_steps


def descent(blow_up_at: int):
    """Gradient descent on (theta - 3)^2 whose loss turns NaN at step `blow_up_at`."""
    count = [0]

    def step(theta, state):
        loss = (theta - 3.0) ** 2 if count[0] < blow_up_at else math.nan
        count[0] += 1
        return theta - 0.1 * 2 * (theta - 3.0), state + 1, loss

    return step


@pytest.mark.parametrize("keep", ["best", "last"])
def test_non_finite_loss_raises_naming_the_step_and_keeps_the_point(keep):
    with pytest.raises(SamplingError, match=r"demo: the loss was not finite at step 7 of 20") as err:
        run_steps(descent(7), 0.0, 0, steps=20, n=2, progress=False, desc="demo", label="loss", keep=keep,
                  partial=lambda theta, history: {"theta": theta, "history": history})
    kept = err.value.partial
    # steps 0..6 had finite losses at theta_k = 3 (1 - 0.8^k); the loss falls, so best and last agree here:
    # the input of step 6, not the NaN step's
    assert kept["theta"] == pytest.approx(3.0 * (1 - 0.8**6), rel=1e-12)
    np.testing.assert_allclose(kept["history"], [-2 * (3.0 * 0.8**k) ** 2 for k in range(7)], rtol=1e-12)


def test_non_finite_at_the_start_says_nothing_was_optimised():
    with pytest.raises(SamplingError, match="starting point") as err:
        run_steps(descent(0), 1.0, 0, steps=5, n=1, progress=False, desc="demo", label="loss")
    assert err.value.partial == (1.0, [])


def test_finite_run_returns_the_best_or_last_point():
    theta, history = run_steps(descent(100), 0.0, 0, steps=10, n=1, progress=False, desc="d", label="l")
    assert len(history) == 10 and theta == pytest.approx(3.0 * (1 - 0.8**9))  # best: the last evaluated input
    theta, _ = run_steps(descent(100), 0.0, 0, steps=10, n=1, progress=False, desc="d", label="l", keep="last")
    assert theta == pytest.approx(3.0 * (1 - 0.8**10))  # last: after the final update


@pytest.mark.parametrize("keep", ["best", "last"])
def test_non_finite_gradient_stops_before_the_parameters_turn_nan(keep):
    # the loss at step 4 is finite but its gradient is NaN (so would be the next parameters): the run
    # stops naming step 4 and keeps a finite point; a NaN never becomes a model's hyperparameter
    def step(theta, state):
        grad = 2 * (theta[0] - 3.0) if state != 4 else math.nan
        return np.array([theta[0] - 0.1 * grad]), state + 1, float((theta[0] - 3.0) ** 2)

    with pytest.raises(SamplingError, match=r"demo: the gradient of the loss at step 4 of 20 was not finite") as err:
        run_steps(step, np.array([0.0]), 0, steps=20, n=1, progress=False, desc="demo", label="loss", keep=keep,
                  partial=lambda theta, history: {"theta": theta, "history": history})
    kept = err.value.partial
    assert np.all(np.isfinite(kept["theta"])) and len(kept["history"]) == 5  # steps 0..4 had finite losses
    assert kept["theta"][0] == pytest.approx(3.0 * (1 - 0.8**4), rel=1e-12)  # the input of step 4, the best too
