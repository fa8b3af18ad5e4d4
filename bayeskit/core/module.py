"""`Module`: the one base of every frozen settings or parameter object in bayeskit.

Kernels, processes, scale priors, state-space models, proposals and engine settings are all
`Module` subclasses: each subclass becomes a frozen dataclass, and (unless it says
``pytree=False``) a JAX pytree whose array fields are leaves and whose ``field(static=True)``
fields are part of the tree structure, in the spirit of Equinox's ``Module``::

    class RBF(Kernel):
        lengthscale: float = 1.0
        variance: float = 1.0

        def __check_init__(self):
            check_positive_values("RBF", lengthscale=self.lengthscale, variance=self.variance)

On construction, ``field(converter=...)`` converters run first, then every ``__check_init__``
of the class hierarchy, base classes first, so a subclass can never skip its parents' checks.
A pytree rebuilt by JAX (``jax.grad`` returns a model of cotangents, ``vmap`` one of tracers) is
made without running converters or checks: those hold for values a user wrote, not for gradients.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar


def field(*, static: bool = False, converter=None, domain: str | None = None, **kwargs):
    """A dataclass field of a `Module`: ``static=True`` keeps it out of the pytree leaves (a setting
    such as a depth or an activation), ``converter`` maps the value given on construction, and
    ``domain`` says where a hyperparameter lives when engines learn it: ``"positive"`` (the
    default for array fields: learned on the log scale) or ``"real"`` (learned as it is)."""
    if domain not in (None, "positive", "real"):
        raise ValueError(f"field(domain=...) must be 'positive' or 'real', got {domain!r}")
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata["static"] = static
    if domain is not None:
        metadata["domain"] = domain
    if converter is not None:
        metadata["converter"] = converter
    return dataclasses.field(metadata=metadata, **kwargs)


class Module:
    """Base class: subclasses are frozen dataclasses and (by default) JAX pytrees."""

    _module_pytree: ClassVar[bool] = True

    def __init_subclass__(cls, *, pytree: bool | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if pytree is not None:
            cls._module_pytree = pytree
        dataclasses.dataclass(frozen=True, repr="__repr__" not in cls.__dict__,
                              eq="__eq__" not in cls.__dict__)(cls)
        _name_unknown_arguments(cls)
        if cls._module_pytree:
            _register(cls)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            convert = f.metadata.get("converter")
            if convert is not None:
                object.__setattr__(self, f.name, convert(getattr(self, f.name)))
        for klass in reversed(type(self).__mro__):
            check = klass.__dict__.get("__check_init__")
            if check is not None:
                check(self)

    def replace(self, **changes) -> Module:
        """A copy with some fields changed (converters and checks run again)."""
        return dataclasses.replace(self, **changes)


def _name_unknown_arguments(cls) -> None:
    """Wrap the dataclass ``__init__`` so a misspelt or unknown keyword (``bk.NUTS(step_size=0.1)``) is a
    `ConfigError` that names it and lists what the class takes, rather than Python's bare TypeError."""
    import difflib
    import functools

    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except TypeError:
            names = [f.name for f in dataclasses.fields(cls) if f.init]
            unknown = [k for k in kwargs if k not in names]
            if not unknown:
                raise
            from .errors import ConfigError

            close = difflib.get_close_matches(unknown[0], names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{cls.__name__} has no setting {unknown[0]!r}{hint}; it takes "
                              f"{', '.join(names) or 'none'}") from None

    cls.__init__ = __init__


def static_fields(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("static", False))


def _register(cls) -> None:
    import jax

    names = tuple(f.name for f in dataclasses.fields(cls))
    static = set(static_fields(cls))
    data = tuple(n for n in names if n not in static)
    meta = tuple(n for n in names if n in static)

    def flatten_with_keys(obj):
        children = tuple((jax.tree_util.GetAttrKey(n), getattr(obj, n)) for n in data)
        return children, tuple(getattr(obj, n) for n in meta)

    def flatten(obj):
        return tuple(getattr(obj, n) for n in data), tuple(getattr(obj, n) for n in meta)

    def unflatten(aux: tuple, children) -> Any:
        obj = object.__new__(cls)  # no __init__: converters and checks are for values a user wrote
        for n, v in zip(data, children, strict=True):
            object.__setattr__(obj, n, v)
        for n, v in zip(meta, aux, strict=True):
            object.__setattr__(obj, n, v)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
