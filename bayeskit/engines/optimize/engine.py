"""`bk.Optimize`: maximise a model's objective over its parameters by Adam or L-BFGS."""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ...core.cache import cached, program_key
from ...core.checks import check_bool, check_choice, check_int, check_positive
from ...core.engine import Engine
from ...core.errors import ConfigError, DataError
from ...core.model import Objective
from ...core.module import Module
from ...core.optimise import learning_rates, run_steps
from .posterior import OptimizedPosterior


class Optimize(Engine):
    """Fit a model with the `Objective` capability by maximising its objective: a point estimate.

    ``optimizer="adam"``: ``steps`` Adam steps with learning rate ``learning_rate``, held
    (``schedule="constant"``) or decayed along a cosine to 1% of it (``"cosine"``); each step uses a
    random minibatch of ``batch_size`` points without replacement (the objective scaled to the
    whole data set by the model), or all points when None. ``optimizer="lbfgs"``: ``steps``
    iterations of optax's L-BFGS with a zoom line search on the whole data set (for exact, small
    problems; ``learning_rate`` and ``schedule`` are then unused). A non-finite objective stops the
    run, keeping the last point whose objective was finite.

    The compiled step depends on the model's structure and the data's shapes only: a refit with other
    data of the same shapes, other hyperparameter values, steps or learning rate compiles nothing.
    """

    steps: int = 2000
    learning_rate: float = 0.01
    batch_size: int | None = None
    schedule: str = "cosine"
    optimizer: str = "adam"
    progress: bool = True

    capability: ClassVar = Objective
    #: the learning rate enters the compiled step as an argument, so none of these recompile
    runtime_fields: ClassVar = ("progress", "steps", "learning_rate", "schedule")

    def __check_init__(self):
        check_int("steps", self.steps)
        check_positive("learning_rate", self.learning_rate)
        check_int("batch_size", self.batch_size, optional=True)
        check_choice("schedule", self.schedule, ("cosine", "constant"))
        check_choice("optimizer", self.optimizer, ("adam", "lbfgs"))
        check_bool("progress", self.progress)

    def learning_rates(self) -> np.ndarray:
        """The learning rate of each Adam step."""
        return learning_rates(self.steps, self.learning_rate, self.schedule)

    def fit(self, model, data, key) -> OptimizedPosterior:
        data = model.check_data(data)
        n = _num_points(data)
        batch = n if self.batch_size is None else min(self.batch_size, n)
        if self.optimizer == "lbfgs" and batch < n:
            raise ConfigError(f"`optimizer='lbfgs'` needs the whole data set per step (batch_size=None), got "
                              f"batch_size={self.batch_size} for {n} points; use optimizer='adam' for minibatches")
        key_init, key_run = jax.random.split(key)
        params = model.init(data, key_init)
        traced = isinstance(model, Module) and type(model)._module_pytree
        structure = jax.tree_util.tree_structure(model) if traced else model

        def evaluate(p):
            """The objective at p on all the data (one more compiled program)."""
            program = cached(program_key("Optimize.objective", structure, static=(n, traced), arrays=data),
                             lambda: jax.jit(lambda p, m, d, k: m.objective(p, d, n, k),
                                             static_argnames=() if traced else ("m",)))
            return float(program(p, model, data, key_run))

        if not jax.tree_util.tree_leaves(params):  # nothing to learn: the objective at the model as given
            value = evaluate(params)
            return OptimizedPosterior(model, params, data, [value], engine=self, objective=value)

        program = program_key("Optimize.step", structure, static=(batch, n, traced), arrays=data, engine=self)
        step, init = cached(program, lambda: _program(self.optimizer, batch, n, traced))
        rates = iter(self.learning_rates())  # NumPy float64 scalars: one abstract signature, one trace
        # L-BFGS needs one deterministic objective: the same key (for any Monte Carlo term) at every step
        keys = iter([key_run] * self.steps if self.optimizer == "lbfgs" else jax.random.split(key_run, self.steps))
        last_state = [None]

        def one_step(p, state):
            new_p, new_state, loss = step(p, state, next(rates), model, data, next(keys))
            last_state[0] = new_state
            return new_p, new_state, loss

        def stopped(p, history):  # a non-finite objective: the last point whose objective was finite
            return OptimizedPosterior(model, p, data, history, engine=self, stopped=True, objective=evaluate(p))

        params, history = run_steps(one_step, params, init(params), steps=self.steps, n=n,
                                    progress=self.progress, desc=f"optimise ({self.optimizer})",
                                    label="objective", keep="last", partial=stopped)
        # the history holds the objective before each step: evaluate it where the fit ended, on all the data;
        # with the whole data per step, one more step at learning rate 0 gives it without another program
        if batch < n or len(history) < self.steps:  # (fewer steps: interrupted)
            final = evaluate(params)
        else:
            final = -n * float(step(params, last_state[0], np.float64(0.0), model, data, key_run)[2])
        return OptimizedPosterior(model, params, data, history, engine=self, objective=final)


def _num_points(data: dict) -> int:
    sizes = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in data.items()}
    if not sizes or None in sizes.values() or len(set(sizes.values())) != 1:
        raise DataError(f"the model's checked data must be arrays sharing a leading axis of points, got leading "
                        f"sizes {sizes}")
    return next(iter(sizes.values()))


def _program(optimizer: str, batch: int, n: int, traced: bool):
    """(jitted step(params, state, learning_rate, model, data, key) -> (params, state, loss), init):
    loss = −objective / n, so the loss per point is what the optimiser sees whatever n is."""
    import optax

    def loss_fn(model, data, key):
        return lambda p: -model.objective(p, data, n, key) / n

    if optimizer == "adam":
        opt = optax.inject_hyperparams(optax.adam)(learning_rate=1.0)

        def step(params, state, learning_rate, model, data, key):
            key_batch, key_objective = jax.random.split(key)
            if batch < n:
                idx = jax.random.choice(key_batch, n, (batch,), replace=False)
                data = {k: v[idx] for k, v in data.items()}
            value, grad = jax.value_and_grad(loss_fn(model, data, key_objective))(params)
            rate = jnp.asarray(learning_rate, dtype=jnp.result_type(state.hyperparams["learning_rate"]))
            state = state._replace(hyperparams={**state.hyperparams, "learning_rate": rate})
            updates, state = opt.update(grad, state, params)
            return optax.apply_updates(params, updates), state, value
    else:
        opt = optax.lbfgs()

        def step(params, state, learning_rate, model, data, key):
            loss = loss_fn(model, data, key)
            value, grad = optax.value_and_grad_from_state(loss)(params, state=state)
            updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=loss)
            return optax.apply_updates(params, updates), state, value

    # a model that is not a pytree of its hyperparameters is a compile-time constant
    return jax.jit(step, static_argnames=() if traced else ("model",)), opt.init
