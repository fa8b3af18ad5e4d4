"""Checks of settings shared by every engine: one wording for each kind of bad value."""

from __future__ import annotations

import numpy as np

from .errors import ConfigError


def check_int(name: str, value, minimum: int = 1, why: str = "") -> None:
    """Raise ConfigError naming `name` unless `value` is an int (not a bool) >= `minimum`;
    ``why`` says what the bound is for."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        reason = f" ({why})" if why else ""
        raise ConfigError(f"`{name}` must be an int >= {minimum}{reason}, got {value!r}")
