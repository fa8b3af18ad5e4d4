"""Engines: frozen, documented settings for one inference algorithm.

An engine holds settings, never results. ``engine.fit(model, data, key)`` turns a
model and data into a `Posterior`; `bk.fit` is the public way to call it.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

from .errors import IncompatibleEngineError


class Engine(abc.ABC):
    """Base class of inference engines (subclasses are frozen dataclasses)."""

    #: Model classes this engine fits (structured models may also list the engine themselves).
    model_types: ClassVar[tuple[type, ...]] = ()

    def accepts(self, model) -> bool:
        if isinstance(model, self.model_types):
            return True
        return type(self).__name__ in getattr(model, "engines", ())

    def check_accepts(self, model) -> None:
        if not self.accepts(model):
            fits = list(getattr(model, "engines", ()))
            hint = f"; engines that fit it: {', '.join(fits)}" if fits else ""
            raise IncompatibleEngineError(
                f"engine {type(self).__name__} cannot fit model {getattr(model, 'name', model)!r} "
                f"({type(model).__name__}){hint}"
            )

    @abc.abstractmethod
    def fit(self, model, data: dict | None, key) -> Any:
        """Return a `Posterior` for `model` given `data`; `key` is a raw JAX PRNG key."""

    def settings(self) -> dict:
        """The engine's settings as plain JSON-friendly values (stored with saved posteriors)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v if isinstance(v, (bool, int, float, str, type(None))) else repr(v)
        return {"engine": type(self).__name__, **out}
