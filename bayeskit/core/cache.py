"""The compiled-program cache: a refit with the same model, data layout and settings compiles nothing.

One keying rule for every engine (`program_key`): what the program was built for, as a tuple of
hashables — the engine kind, the model (its function or its structure), the static data, the shapes
and dtypes of the array data, and the engine's `compile_key` (settings that change the program; the
number of chains or particles only changes shapes). A key that cannot be hashed (an unhashable
model or optimizer) builds a program without caching it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np

SIZE = 64  # programs kept, least recently used dropped first

_PROGRAMS: OrderedDict = OrderedDict()


def data_signature(arrays: Mapping) -> tuple:
    """Shapes and dtypes of array data: with static settings, what decides a recompile."""
    return tuple((k, np.shape(v), str(getattr(v, "dtype", np.asarray(v).dtype))) for k, v in sorted(arrays.items()))


def program_key(kind: str, model, *, static=(), arrays: Mapping | None = None, engine=None, extra=()) -> tuple:
    """The cache key of a program: engine kind, model, static data, array layout, engine settings, extras."""
    model_key = getattr(model, "fn", model)  # a NumPyro model is its function
    settings = engine.compile_key() if engine is not None else ()
    return (kind, model_key, tuple(static), data_signature(arrays or {}), settings, *tuple(extra))


def cached(key: Hashable, build: Callable[[], Any]):
    """The program stored under ``key``, built by ``build()`` on first use."""
    try:
        hash(key)
    except TypeError:
        return build()
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    program = build()
    _PROGRAMS[key] = program
    if len(_PROGRAMS) > SIZE:
        _PROGRAMS.popitem(last=False)
    return program


def clear() -> None:
    """Drop every cached program (tests of compile behaviour; freeing memory)."""
    _PROGRAMS.clear()
