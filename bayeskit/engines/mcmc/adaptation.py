"""Stan's windowed adaptation of step size and mass matrix, as pure per-step functions.

Built from BlackJAX's dual averaging and Welford covariance primitives. Unlike
``blackjax.window_adaptation`` it exposes one ``update`` per step, so warmup and
sampling share one loop body (the NUTS kernel is traced and compiled once) and the
loop can be cut into chunks for progress reporting and interruption.

Schedule (Stan): a fast window (step size only), slow windows doubling in length
(step size + covariance; the mass matrix is replaced at the end of each), a final
fast window. After warmup the step size is fixed at the dual-averaging average.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
from blackjax.adaptation.step_size import dual_averaging_adaptation

FAST, SLOW, SAMPLING = 0, 1, 2


def stan_schedule(
    warmup: int, draws: int, init_buffer: int = 75, term_buffer: int = 50, base_window: int = 25
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step (stage, window_end) for `warmup` adaptation steps followed by `draws` sampling steps.

    ``window_end`` marks the last step of each slow window, and the last warmup step
    (where the final step size is set).
    """
    stage = np.full(warmup + draws, SAMPLING, dtype=np.int32)
    end = np.zeros(warmup + draws, dtype=bool)
    if warmup == 0:
        return stage, end
    stage[:warmup] = FAST
    end[warmup - 1] = True
    if warmup < 20:  # too short to estimate a covariance: adapt the step size only (as Stan)
        return stage, end
    if init_buffer + base_window + term_buffer > warmup:
        init_buffer, term_buffer = int(0.15 * warmup), int(0.1 * warmup)
        base_window = warmup - init_buffer - term_buffer
    slow_end = warmup - term_buffer
    start, size = init_buffer, base_window
    while start < slow_end:
        # the last slow window absorbs what is left when another doubling would not fit
        if start + size + 2 * size > slow_end:
            size = slow_end - start
        stage[start : start + size] = SLOW
        end[start + size - 1] = True
        start, size = start + size, 2 * size
    return stage, end


class AdaptationState(NamedTuple):
    dual_averaging: tuple
    mass_matrix: tuple
    step_size: jax.Array  # step size the kernel uses at the next step
    inverse_mass_matrix: jax.Array


def window_adaptation(dense_mass: bool, target_accept: float):
    """Return ``(init, update)`` for one chain."""
    mm_init, mm_update, mm_final = mass_matrix_adaptation(is_diagonal_matrix=not dense_mass)
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)

    def init(dim: int, step_size) -> AdaptationState:
        mm = mm_init(dim)
        return AdaptationState(da_init(step_size), mm, jnp.asarray(step_size), mm.inverse_mass_matrix)

    def update(state: AdaptationState, stage, window_end, position, acceptance_rate) -> AdaptationState:
        warming = stage != SAMPLING
        da = da_update(state.dual_averaging, acceptance_rate)
        mm = _select(stage == SLOW, mm_update(state.mass_matrix, position), state.mass_matrix)
        step_size = jnp.exp(da.log_step_size)
        imm = state.inverse_mass_matrix

        # End of a slow window: new mass matrix, dual averaging restarted from its average.
        mm_new = mm_final(mm)
        da_restart = da_init(da_final(da))
        slow_end = window_end & (stage == SLOW)
        mm = _select(slow_end, mm_new, mm)
        imm = jnp.where(slow_end, mm_new.inverse_mass_matrix, imm)
        da = _select(slow_end, da_restart, da)
        step_size = jnp.where(slow_end, jnp.exp(da_restart.log_step_size), step_size)
        # End of the final fast window: freeze the step size at the running average.
        step_size = jnp.where(window_end & (stage == FAST), da_final(da), step_size)

        new = AdaptationState(da, mm, step_size, imm)
        return _select(warming, new, state)

    return init, update


def _select(pred, a, b):
    return jax.tree.map(lambda x, y: jnp.where(pred, x, y), a, b)
