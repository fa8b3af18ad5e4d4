"""Engines: frozen, documented settings for one inference algorithm.

An engine holds settings, never results. It names the model capability it needs
(``capability``, a protocol of `core.model`), and ``engine.fit(model, data, key)`` turns any
model with that capability plus data into a `Posterior`; `bk.fit` is the public way to call it.
A new engine is one subclass::

    class ImportanceSampling(Engine):
        capability = NumPyroProgram
        particles: int = 1000

        def __check_init__(self):
            check_int("particles", self.particles)

        def fit(self, model, data, key) -> Posterior: ...
"""

from __future__ import annotations

import abc
import dataclasses
import json
from typing import Any, ClassVar

from . import registry
from .errors import ConfigError, IncompatibleEngineError
from .model import capability_name
from .module import Module


class Engine(Module, abc.ABC, pytree=False):
    """Base class of inference engines (subclasses are frozen dataclasses of settings)."""

    #: The model capability this engine fits (a protocol of `core.model`, or a tuple of them).
    capability: ClassVar[Any] = ()
    #: Settings that change no compiled program (left out of `compile_key`).
    runtime_fields: ClassVar[tuple[str, ...]] = ("progress", "checkpoint", "resume")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_") and not getattr(cls, "__abstractmethods__", None):
            registry.register_engine(cls)

    def accepts(self, model) -> bool:
        return bool(self.capability) and isinstance(model, self.capability)

    def check_accepts(self, model) -> None:
        if self.accepts(model):
            return
        fits = [name for name, cls in registry.engines().items() if _accepts(cls, model)]
        hint = f"; engines that fit it: {', '.join(f'bk.{n}' for n in fits)}" if fits else ""
        raise IncompatibleEngineError(
            f"engine {type(self).__name__} cannot fit model {getattr(model, 'name', type(model).__name__)!r} "
            f"({type(model).__name__}): it needs a model with the {capability_name(self.capability)} "
            f"capability{hint}"
        )

    @abc.abstractmethod
    def fit(self, model, data: dict | None, key) -> Any:
        """Return a `Posterior` for `model` given `data`; `key` is a raw JAX PRNG key."""

    def compile_key(self) -> tuple:
        """The settings that change a compiled program (a part of the program cache's key)."""
        values = []
        for f in dataclasses.fields(self):
            if f.name not in self.runtime_fields:
                value = getattr(self, f.name)
                values.append((f.name, value if _hashable(value) else repr(value)))
        return (type(self).__name__, *values)

    def settings(self) -> dict:
        """The engine's settings as plain JSON-friendly values (stored with saved posteriors); a
        setting that is not a plain value (a function, an object) is stored as its repr and listed
        under ``"stored_as_repr"``."""
        out, as_repr, as_reference = {}, [], []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (bool, int, float, str, type(None))):
                out[f.name] = v
            elif _reference(v) is not None:  # a module-level function: stored by its import path
                out[f.name] = _reference(v)
                as_reference.append(f.name)
            else:
                out[f.name] = repr(v)
                as_repr.append(f.name)
        return {"engine": type(self).__name__, **out, "stored_as_repr": as_repr, "stored_as_reference": as_reference}

    @staticmethod
    def from_settings(settings) -> Engine | None:
        """The engine that `settings` (a dict, or its JSON) describe: plain settings are restored, those
        stored as their repr take their defaults. None when the engine class is unknown here."""
        if isinstance(settings, str):
            settings = json.loads(settings or "{}")
        if isinstance(settings, Engine) or settings is None:
            return settings
        cls = registry.engines().get(settings.get("engine"))
        if cls is None:
            return None
        skip = set(settings.get("stored_as_repr", ()))
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        kwargs = {k: v for k, v in settings.items() if k in names and k not in skip}
        for k in settings.get("stored_as_reference", ()):
            kwargs[k] = _resolve(kwargs[k])
            if kwargs[k] is None:
                del kwargs[k]
        try:
            return cls(**kwargs)
        except (ConfigError, TypeError, ValueError):
            return None


def _reference(value) -> str | None:
    """``"module:qualname"`` of a function importable by that path, else None (lambdas, closures)."""
    import types

    if not isinstance(value, types.FunctionType) or "<" in value.__qualname__:
        return None
    return f"{value.__module__}:{value.__qualname__}"


def _resolve(reference: str):
    """The function a `_reference` names, or None when it cannot be imported here."""
    import importlib

    module, _, name = reference.partition(":")
    try:
        value = importlib.import_module(module)
        for part in name.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError):
        return None
    return value


def _accepts(cls, model) -> bool:
    return bool(cls.capability) and isinstance(model, cls.capability)


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
