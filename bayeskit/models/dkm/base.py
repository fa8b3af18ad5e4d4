"""Settings every deep kernel machine shares: depth, ν, the Gram kernel and its hyperparameters.

Positive hyperparameters are learned on the log scale unless named in ``fixed`` or set to 0 (a zero
bias variance stays 0); ``jitter`` (relative to the mean diagonal) is added to every prior covariance
K(G) before it is factorised.
"""

from __future__ import annotations

import math
import warnings

import jax.numpy as jnp
import numpy as np

from ...core.checks import (
    check_bool,
    check_choice,
    check_int,
    check_non_negative_values,
    check_positive_values,
    check_real,
)
from ...core.errors import ConfigError, DataError
from ...core.module import Module, field
from ..kernels.base import as_inputs
from . import gram_kernels as gk


def _tuple_if_sequence(value):
    return tuple(value) if isinstance(value, (list, tuple, np.ndarray)) else value


class DeepKernelSettings(Module):
    """Shared settings of `DeepKernelMachine` and `SparseDeepKernelMachine` (see their docstrings)."""

    layers: int = field(static=True, default=2)
    nu: float | tuple[float, ...] = field(default=1.0, converter=_tuple_if_sequence)
    kernel: str = field(static=True, default="relu")
    weight_var: float = 2.0
    bias_var: float = 0.0
    lengthscale: float = 1.0
    noise: float = 0.1
    fixed: tuple[str, ...] = field(static=True, default=(), converter=_tuple_if_sequence)
    jitter: float = field(static=True, default=1e-6)
    whiten: bool = field(static=True, default=True)

    def __check_init__(self):
        owner = type(self).__name__
        check_int("layers", self.layers)
        nus = self.nu if isinstance(self.nu, tuple) else (self.nu,) * self.layers
        if len(nus) != self.layers:
            raise ConfigError(f"`nu` must be one number or one per layer ({self.layers}), got {len(nus)} values")
        for nu in nus:
            if isinstance(nu, bool) or not isinstance(nu, (int, float, np.integer, np.floating)) or not nu > 0:
                raise ConfigError(f"`nu` must be > 0 (float('inf') for a layer fixed at its prior mean), got "
                                  f"{self.nu!r}")
        check_choice("kernel", self.kernel, gk.KERNELS)
        check_positive_values(owner, weight_var=self.weight_var, lengthscale=self.lengthscale, noise=self.noise)
        check_non_negative_values(owner, bias_var=self.bias_var)
        check_real("jitter", self.jitter, 0.0)
        check_bool("whiten", self.whiten)
        if not isinstance(self.fixed, tuple) or not all(isinstance(f, str) for f in self.fixed):
            raise ConfigError(f"`fixed` must be a tuple of hyperparameter names, got {self.fixed!r}")
        unknown = [f for f in self.fixed if f not in self.hyperparameter_names]
        if unknown:
            raise ConfigError(f"`fixed` names {unknown[0]!r}, not a hyperparameter of {owner}; they are "
                              f"{', '.join(self.hyperparameter_names)}")

    # -- settings -----------------------------------------------------------------------------------
    @property
    def nus(self) -> tuple:
        """ν of each hidden layer (values, or tracers inside a compiled objective: ν is a leaf, so a new ν
        compiles nothing)."""
        return self.nu if isinstance(self.nu, tuple) else (self.nu,) * self.layers

    @property
    def layer_nu(self) -> tuple[float, ...]:
        """ν of each hidden layer as floats (on a model as constructed, not inside a compiled function)."""
        return tuple(float(v) for v in self.nus)

    @property
    def hyperparameter_names(self) -> tuple[str, ...]:
        names = ("weight_var", "bias_var") + (("lengthscale",) if self.kernel == "se" else ())
        return names + (("noise",) if self.has_noise else ())

    @property
    def has_noise(self) -> bool:
        return True

    # -- hyperparameters ------------------------------------------------------------------------------
    def initial_hyperparameters(self, dtype) -> dict:
        """{name: log value} of the learned hyperparameters (positive and not in ``fixed``)."""
        return {name: jnp.log(jnp.asarray(getattr(self, name), dtype))
                for name in self.hyperparameter_names
                if name not in self.fixed and float(np.asarray(getattr(self, name))) > 0}

    def hyperparameters(self, params) -> dict:
        """Every hyperparameter's value: learned ones from ``params``, the rest as set."""
        learned = params["hyper"]
        return {name: jnp.exp(learned[name]) if name in learned else getattr(self, name)
                for name in self.hyperparameter_names}

    def gram_map(self, hyper: dict):
        return gk.gram_map(self.kernel, hyper["weight_var"], hyper["bias_var"], hyper.get("lengthscale", 1.0))

    def input_layer(self, hyper, X1, X2=None):
        """G₀ on X1 (and the cross block to X2, with X1's diagonal, when X2 is given)."""
        if X2 is None:
            return gk.input_gram(X1, X1, hyper["weight_var"], hyper["bias_var"])
        return (gk.input_gram(X1, X2, hyper["weight_var"], hyper["bias_var"]),
                gk.input_diagonal(X1, hyper["weight_var"], hyper["bias_var"]))

    def describe_settings(self, params) -> dict:
        hyper = self.hyperparameters(params)
        return {
            "layers": self.layers,
            "nu": [v if math.isfinite(v) else "inf" for v in self.layer_nu],
            "whiten": bool(self.whiten),
            "kernel": self.kernel,
            "jitter_relative": float(self.jitter),
            **{name: float(np.asarray(v)) for name, v in hyper.items()},
        }


def check_inputs(X, data: dict) -> jnp.ndarray:
    """New inputs for a prediction: ``{"X": X_new}``, an array, or None (the training inputs)."""
    if X is None:
        return data["X"]
    if isinstance(X, dict):
        if "X" not in X:
            raise DataError(f"`new_data` must be {{'X': inputs}} or an array of inputs, got keys {sorted(X)}")
        X = X["X"]
    X = as_inputs(X, "X")
    d = data["X"].shape[1]
    if X.shape[1] != d:
        raise DataError(f"new inputs `X` must have {d} columns like the training inputs, got {X.shape[1]}")
    if not np.all(np.isfinite(np.asarray(X))):
        raise DataError("new inputs `X` contain non-finite values (NaN or inf)")
    return jnp.asarray(X, dtype=data["X"].dtype)


def as_float_inputs(X):
    """X in JAX's default float, warning when that is float32 (Cholesky factors of Gram matrices are
    fragile in single precision)."""
    X = jnp.asarray(X, dtype=float)
    if X.dtype != jnp.float64:
        warnings.warn("deep kernel machines compute in float32 here: enable 64-bit JAX "
                      "(jax.config.update('jax_enable_x64', True)) for stable Cholesky factors", UserWarning,
                      stacklevel=3)
    return X
