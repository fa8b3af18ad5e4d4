"""JAX's persistent compilation cache, on by default, so that a model compiled in one process
is not compiled again in the next.

A compiled sampler is an XLA executable keyed by its program and compile options; JAX can keep
these on disk. bayeskit turns that on before its first fit, in a folder of the user's cache
(``$XDG_CACHE_HOME/bayeskit/jax``, else ``~/.cache/bayeskit/jax``). The environment variable
``BAYESKIT_CACHE_DIR`` moves it (a path) or turns it off (``off`` or an empty value);
`set_compilation_cache` does the same from code. A cache folder the user already gave JAX
(``jax_compilation_cache_dir``) is left as it is.

Programs that compile in under `MIN_COMPILE_SECONDS` are not written (reading them back would
cost about as much).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "BAYESKIT_CACHE_DIR"
MIN_COMPILE_SECONDS = 0.2
_OFF = ("", "off", "0", "false", "none")

_state = {"configured": False, "path": None}


def default_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bayeskit" / "jax"


def set_compilation_cache(path: str | os.PathLike | None = "default") -> Path | None:
    """Keep compiled programs in `path` (``"default"``: the user cache folder; None: off).

    Returns the folder in use, or None when the cache is off.
    """
    import jax

    if path is None or (isinstance(path, str) and path.strip().lower() in _OFF):
        jax.config.update("jax_enable_compilation_cache", False)
        _state.update(configured=True, path=None)
        return None
    folder = default_path() if path == "default" else Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: run without the cache rather than fail the fit
        _state.update(configured=True, path=None)
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    _state.update(configured=True, path=folder)
    return folder


def ensure_compilation_cache() -> Path | None:
    """Configure the cache once per process (from `ENV`), unless the user configured JAX's own."""
    if _state["configured"]:
        return _state["path"]
    import jax

    setting = os.environ.get(ENV)
    if setting is None and jax.config.jax_compilation_cache_dir:  # the user's own JAX setting wins
        _state.update(configured=True, path=Path(jax.config.jax_compilation_cache_dir))
        return _state["path"]
    return set_compilation_cache("default" if setting is None else setting)
