"""Checks of arguments and settings: one wording for each kind of bad value, used everywhere.

Every function raises `ConfigError` naming the argument and what was expected, e.g.
"`learning_rate` must be a finite number > 0, got -1". Array checks (``check_*_values``) skip
traced values: those are checked where they were concrete. `as_numeric` is the one check of data
arrays every entry point shares (it raises `DataError`: the data, not a setting, is wrong).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import numpy as np

from .errors import ConfigError, DataError


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_threads(value, name: str = "threads") -> None:
    """A thread setting: "auto" (follow the machine's load, `core.threads`), a positive int, or None."""
    if value is None or value == "auto":
        return
    check_int(name, value, why='threads, "auto" (the idle cores) or None (the library\'s own setting)')


def check_int(name: str, value, minimum: int = 1, why: str = "", *, maximum: int | None = None,
              optional: bool = False) -> None:
    """An int (not a bool) in [minimum, maximum]; ``why`` says what the bound is for; ``optional``
    also accepts None."""
    if optional and value is None:
        return
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        reason = f" ({why})" if why else ""
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        none = "None or " if optional else ""
        raise ConfigError(f"`{name}` must be {none}an int {bound}{reason}, got {value!r}")


def check_real(name: str, value, low: float | None = None, high: float | None = None, *,
               low_open: bool = False, high_open: bool = False, optional: bool = False) -> None:
    """A finite real number (not a bool) within the given bounds (closed unless ``*_open``)."""
    if optional and value is None:
        return
    ok = _is_real(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        none = "None or " if optional else ""
        raise ConfigError(f"`{name}` must be {none}a finite number{_interval(low, high, low_open, high_open)}, "
                          f"got {value!r}")


def _interval(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def check_positive(name: str, value, *, optional: bool = False) -> None:
    """A finite number > 0 (a learning rate, a step size, a radius)."""
    check_real(name, value, 0.0, low_open=True, optional=optional)


def check_probability(name: str, value, *, closed: bool = False) -> None:
    """A number in (0, 1), or [0, 1] with ``closed=True``."""
    check_real(name, value, 0.0, 1.0, low_open=not closed, high_open=not closed)


def check_bool(name: str, value) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"`{name}` must be a bool, got {value!r}")


def check_choice(name: str, value, choices: Iterable) -> None:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"`{name}` must be one of {', '.join(map(repr, choices))}, got {value!r}")


def check_type(name: str, value, types, what: str, *, optional: bool = False) -> None:
    """``value`` is an instance of ``types``; ``what`` describes what is expected ("a bk.pfn.Training")."""
    if optional and value is None:
        return
    if not isinstance(value, types):
        none = "None or " if optional else ""
        raise ConfigError(f"`{name}` must be {none}{what}, got {type(value).__name__}")


def check_checkpoint(checkpoint, resume) -> None:
    """``checkpoint`` a path or None; ``resume=True`` needs one."""
    check_bool("resume", resume)
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise ConfigError(f"`checkpoint` must be None or a file path, got {type(checkpoint).__name__}")
    if resume and not checkpoint:
        raise ConfigError("`resume=True` needs `checkpoint=` (the file to resume from)")


def _check_values(owner: str, values: dict, allow_zero: bool) -> None:
    import jax

    for name, value in values.items():
        if isinstance(value, jax.core.Tracer):
            continue
        v = np.asarray(value)
        if not np.all(np.isfinite(v)) or np.any(v < 0) or (not allow_zero and np.any(v == 0)):
            what = "must be >= 0 and finite" if allow_zero else "must be positive and finite"
            raise ConfigError(f"{owner}: `{name}` {what}, got {value!r}")


def check_positive_values(owner: str, **values) -> None:
    """Concrete hyperparameters (scalars or arrays) that must be > 0 and finite."""
    _check_values(owner, values, allow_zero=False)


def check_non_negative_values(owner: str, **values) -> None:
    """Concrete hyperparameters (scalars or arrays) that must be >= 0 and finite."""
    _check_values(owner, values, allow_zero=True)


def as_numeric(label: str, value, *, dtype=None, allow_empty: bool = True):
    """`value` as an array of numbers (bools, ints or floats), converted to ``dtype`` when given, or a
    `DataError` that names it (``label``, e.g. "`y`" or "data['y']") and says what was expected: for
    strings, object arrays holding anything but numbers (None, text), ragged nested lists and, unless
    ``allow_empty``, arrays with no elements. An array (NumPy, JAX) that is numeric already is returned
    as it is; an object array of numbers (a pandas column) as the numbers."""
    arr = value
    if not (hasattr(value, "shape") and isinstance(getattr(value, "dtype", None), np.dtype)):
        try:  # a JAX or NumPy array stays where it is; lists, scalars, frames and tensors are converted
            arr = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise DataError(f"{label} could not be converted to an array of numbers: {exc}") from None
    kind = arr.dtype.kind
    if kind == "O":
        flat = np.ravel(np.asarray(arr))
        odd = next((i for i, v in enumerate(flat) if not _is_real(v) and not isinstance(v, (bool, np.bool_))), None)
        if odd is not None:
            raise DataError(f"{label} must be numeric (ints, floats or bools), got an object array whose element "
                            f"{odd} is {flat[odd]!r}; remove or impute what is not a number and convert it, e.g. "
                            f"np.asarray(..., float)")
        arr = np.array(np.asarray(arr).tolist())  # numbers held as Python objects (a pandas column): as numbers
        kind = arr.dtype.kind
    if kind not in "biuf":  # strings, bytes, dates, complex, raw records
        raise DataError(f"{label} must be numeric (ints, floats or bools), got dtype {arr.dtype} "
                        f"(e.g. {np.ravel(np.asarray(arr))[:1].tolist()}); convert it, e.g. np.asarray(..., float)")
    if not allow_empty and np.size(arr) == 0:
        raise DataError(f"{label} is empty (shape {tuple(np.shape(arr))}): there is nothing to fit; "
                        f"give at least one observation")
    if dtype is not None and arr.dtype != dtype:
        arr = np.asarray(arr, dtype=dtype) if isinstance(arr, np.ndarray) else arr.astype(dtype)
    return arr
