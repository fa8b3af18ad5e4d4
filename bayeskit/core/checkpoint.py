"""Checkpoints: a long run's state on disk, so that a killed run resumes where it was.

`core.loop.run` writes one after each chunk (``checkpoint=``, with the state the engine's
``snapshot`` makes of its carry), atomically: the new file is written beside the old one and
moved over it (`os.replace`), so a run killed at any moment leaves the last complete checkpoint.
A file holds the steps done, the state after them, what every chunk recorded (the draws kept so
far, an objective's history) and a `fingerprint` of what decides the run's numbers: the
settings, the seed, the model and the data. Resuming a run whose fingerprint differs is refused,
naming what differs; with the same fingerprint the resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from .checks import check_checkpoint
from .errors import ConfigError

FORMAT = 1
#: Settings that never change a run's numbers: a resumed run may give them other values.
NOT_FINGERPRINTED = ("progress", "checkpoint", "resume", "stored_as_repr", "stored_as_reference")

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # in reprs of functions and objects: differs from process to process


class Saved(NamedTuple):
    """What a checkpoint holds: the state after ``done`` steps and the records of every chunk so far."""

    state: Any
    done: int
    records: list


class Checkpoint:
    """The checkpoint file of one run. ``fingerprint`` (a dict of strings, `fingerprint`) is written with
    every state and compared at `load`; ``resume`` says whether `load` reads the file at all."""

    def __init__(self, path, fingerprint: Mapping[str, str], resume: bool = False):
        check_checkpoint(path, resume)
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise ConfigError(f"`checkpoint` {path!r} is in a folder that does not exist ({folder!r}): create it first")
        self.path, self.fingerprint, self.resume = path, dict(fingerprint), resume

    @classmethod
    def of(cls, path, resume: bool, fingerprint: Callable[[], Mapping[str, str]]) -> Checkpoint | None:
        """The checkpoint of a run with these settings, or None without a path (``fingerprint`` is only
        computed when there is one)."""
        check_checkpoint(path, resume)
        return cls(path, fingerprint(), resume) if path else None

    def load(self) -> Saved | None:
        """The saved state to resume from: None unless resuming from a file that exists (a first run
        with ``resume=True`` starts afresh). Raises `ConfigError` when the file was written by a run
        with another fingerprint, or is not a checkpoint."""
        if not self.resume or not os.path.exists(self.path):
            return None
        try:
            with open(self.path, "rb") as f:
                saved = pickle.load(f)
            if saved.get("format") != FORMAT:
                raise ValueError("unknown format")
        except Exception as exc:  # noqa: BLE001 (pickle raises anything on a file that is not one)
            raise ConfigError(f"`checkpoint` {self.path!r} is not a bayeskit checkpoint ({type(exc).__name__}: "
                              f"{exc}); pass resume=False to start afresh and overwrite it") from None
        differs = _differences(saved["fingerprint"], self.fingerprint)
        if differs:
            raise ConfigError(f"`checkpoint` {self.path!r} was written by a run with other settings, seed, model "
                              f"or data ({'; '.join(differs)}): resume it with the same ones, or pass resume=False "
                              f"to start afresh and overwrite it")
        return Saved(saved["state"], int(saved["done"]), list(saved["records"]))

    def save(self, state, done: int, records) -> None:
        """Write the state after ``done`` steps (arrays brought to the host) and the records so far.
        Over several processes (`core.distributed`) only process 0 writes: the state and records it is
        given are every process's (gathered), and every process reads the file back to resume."""
        import jax

        from . import distributed

        if not distributed.is_root():
            return

        payload = {"format": FORMAT, "fingerprint": self.fingerprint, "done": int(done),
                   "state": jax.device_get(state), "records": list(records)}
        tmp = f"{self.path}.tmp"
        with open(tmp, "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.path)  # atomic: a run killed mid-write leaves the previous checkpoint


def _differences(saved: Mapping[str, str], here: Mapping[str, str]) -> list[str]:
    out = []
    for name in sorted(set(saved) | set(here)):
        a, b = saved.get(name, "(unset)"), here.get(name, "(unset)")
        if a != b:
            hashed = a.startswith(_HASHED) or b.startswith(_HASHED)
            out.append(f"`{name}` differs" if hashed or max(len(a), len(b)) > 40 else f"`{name}` {a} there, {b} here")
    return out


def fingerprint(settings, seed, **parts) -> dict[str, str]:
    """What decides a run's numbers, as strings to compare: each setting of ``settings`` (a frozen
    dataclass such as an engine, or a dict; less `NOT_FINGERPRINTED`), plain values as they are and
    others by `digest`, the seed's key words, and a `digest` of each of ``parts`` (the model, the data)."""
    from .seeds import words

    if dataclasses.is_dataclass(settings):
        settings = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    out = {str(k): repr(v) if isinstance(v, _PLAIN) else _HASHED + digest(v)
           for k, v in settings.items() if k not in NOT_FINGERPRINTED}
    out["seed"] = str(words(seed))
    for name, value in parts.items():
        out[name] = _HASHED + digest(value)
    return out


_PLAIN = (bool, int, float, str, type(None))
_HASHED = "sha256:"  # marks a digest in a fingerprint (its difference is said, not shown)


def digest(value) -> str:
    """A short hash of a value: a pytree's structure and each leaf's dtype, shape and bytes (arrays);
    a function's name, code and the values it closes over; a dataclass's type and fields; else its
    repr (memory addresses left out)."""
    h = hashlib.sha256()
    _update(h, value, depth=0)
    return h.hexdigest()[:16]


def _update(h, value, depth: int) -> None:
    import jax

    if depth > _DEPTH:  # a structure that refers to itself: what was hashed so far stands for it
        return
    code = getattr(value, "__code__", None)
    if code is not None:  # a function: by name and code, not by address or module (a model run as a
        # script is __main__'s, imported it is its module's: the same model), and the values it closes
        # over (the rate of an optax schedule)
        h.update(getattr(value, "__qualname__", "").encode() + code.co_code)
        h.update(_ADDRESS.sub("", repr(code.co_consts)).encode())
        for cell in getattr(value, "__closure__", None) or ():
            try:
                _update(h, cell.cell_contents, depth + 1)
            except ValueError:  # an empty cell
                pass
        return
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        a = np.asarray(value)
        h.update(f"{a.dtype}{a.shape}".encode() + np.ascontiguousarray(a).tobytes())
        return
    if isinstance(value, _PLAIN):
        h.update(repr(value).encode())
        return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(type(value).__qualname__.encode())
        for f in dataclasses.fields(value):
            h.update(f.name.encode())
            _update(h, getattr(value, f.name), depth + 1)
        return
    leaves, treedef = jax.tree_util.tree_flatten(value)
    if len(leaves) == 1 and leaves[0] is value:  # not a container: its repr
        h.update(_ADDRESS.sub("", repr(value)).encode())
        return
    h.update(_ADDRESS.sub("", str(treedef)).encode())
    for leaf in leaves:
        _update(h, leaf, depth + 1)


_DEPTH = 8
