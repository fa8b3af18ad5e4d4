"""What every predictive rule shares: the data it accepts and the per-draw set-up.

A rule is a `Module` (a JAX pytree), so the engine passes it into one compiled program and a
new hyperparameter value compiles nothing new. ``condition`` runs on the host once per fit
(it may fit bandwidths); ``start``, ``forward`` and ``distribution`` run inside the compiled
scan, vmapped over posterior draws.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...core.checks import as_numeric
from ...core.errors import DataError
from ...core.module import Module


def float_dtype():
    """JAX's default float: float64 with ``jax_enable_x64``, else float32 (the rules work in either)."""
    import jax
    import jax.numpy as jnp

    return jax.dtypes.canonicalize_dtype(jnp.float64)


class PredictiveRule(Module):
    """Base class of c.i.d. predictive rules (the `core.model.PredictiveRule` capability)."""

    #: The data keys a rule accepts: "y" alone, or "X" and "y" for rules with covariates.
    accepts_covariates = False

    def condition(self, data: Mapping, horizon: int):
        raise NotImplementedError

    def start(self, state, key):
        """Per-draw set-up before the forward steps (default: none)."""
        return state

    def forward(self, state, key):
        raise NotImplementedError

    def distribution(self, state):
        raise NotImplementedError

    # -- data ------------------------------------------------------------------------------------
    def check_data(self, data) -> tuple[np.ndarray | None, np.ndarray]:
        """(X or None, y) as float arrays with one row per observation, or a named error."""
        name = type(self).__name__
        allowed = {"X", "y"} if self.accepts_covariates else {"y"}
        if not isinstance(data, Mapping) or "y" not in data or not set(data) <= allowed:
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            want = "'y' (and optionally 'X')" if self.accepts_covariates else "'y'"
            raise DataError(f"`data` for {name} must be a dict with key {want}, got {got}")
        y = as_numeric("`y`", data["y"], dtype=float)
        if y.ndim == 0 or y.shape[0] < 1:
            raise DataError(f"`y` must hold at least one observation (one per row), got shape {y.shape}")
        if not np.all(np.isfinite(y)):
            raise DataError(f"`y` contains {int((~np.isfinite(y)).sum())} non-finite value(s) (NaN or inf)")
        X = None
        if "X" in data:
            X = as_numeric("`X`", data["X"], dtype=float)
            if X.ndim == 1:
                X = X[:, None]
            if X.ndim != 2 or X.shape[0] != y.shape[0]:
                raise DataError(f"`X` must be an (n, p) array with one row per observation of `y` ({y.shape[0]}), "
                                f"got shape {X.shape}")
            if not np.all(np.isfinite(X)):
                raise DataError(f"`X` contains {int((~np.isfinite(X)).sum())} non-finite value(s) (NaN or inf)")
        return X, y
