"""Where the layers above `core` plug in: engines, default engines, hooks and services.

`core` imports no engine and no diagnostics module. Instead:

* every `Engine` subclass is recorded here when its module is imported (`engines`);
* an engine package registers the engine a capability defaults to (`register_default`);
* `diagnostics` registers the checks run after every fit (``add_hook("after_fit", ...)``) and
  the services a Posterior delegates to (``provide("summary", ...)``, ``"to_arviz"``);
* the top-level package declares which modules are plugins (`declare_plugins`); they are
  imported the first time something here is looked up, so ``import bayeskit`` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

_plugins: tuple[str, ...] = ()
_loaded: set[str] = set()
_engines: dict[str, type] = {}
_defaults: list[tuple[type, Callable]] = []
_hooks: dict[str, list[Callable]] = {}
_services: dict[str, Callable] = {}


def declare_plugins(modules) -> None:
    """Name modules (engine packages, diagnostics) to import before the first lookup."""
    global _plugins
    _plugins = tuple(dict.fromkeys((*_plugins, *modules)))


def load_plugins() -> None:
    for name in _plugins:
        if name not in _loaded:
            _loaded.add(name)
            importlib.import_module(name)


def register_engine(cls: type) -> None:
    """Record an engine class (`Engine.__init_subclass__` calls this for every public subclass)."""
    _engines[cls.__name__] = cls


def engines() -> dict[str, type]:
    """Every known engine class by name."""
    load_plugins()
    return dict(_engines)


def register_default(capability: type, factory: Callable) -> None:
    """``factory()`` is the engine a model with ``capability`` gets when ``bk.fit`` has no ``engine=``."""
    _defaults.append((capability, factory))


def default_engine(model):
    """The default engine for ``model``, or None. Later registrations take precedence."""
    load_plugins()
    for capability, factory in reversed(_defaults):
        if isinstance(model, capability):
            return factory()
    return None


def add_hook(event: str, fn: Callable) -> None:
    """Run ``fn`` at ``event`` (``"after_fit"``: ``fn(posterior, stacklevel)``)."""
    if fn not in _hooks.setdefault(event, []):
        _hooks[event].append(fn)


def run_hooks(event: str, *args, **kwargs) -> None:
    load_plugins()
    for fn in _hooks.get(event, ()):
        fn(*args, **kwargs)


def provide(name: str, fn: Callable) -> None:
    """Offer a service (``"summary"``, ``"to_arviz"``) that posteriors delegate to."""
    _services[name] = fn


def service(name: str) -> Callable:
    if name not in _services:
        load_plugins()
    if name not in _services:
        from .errors import ConfigError

        raise ConfigError(f"no module provides {name!r}: is bayeskit.diagnostics installed?")
    return _services[name]
