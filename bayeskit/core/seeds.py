"""Seeds: an int or a JAX key, turned into one raw ``uint32[2]`` key.

`fit` is pure in the seed, so every random choice downstream is split from this key.
"""

from __future__ import annotations

import numbers

import numpy as np

from .errors import ConfigError


def as_key(seed, *, name: str = "seed"):
    """Return a raw JAX PRNG key (``uint32[2]``) from an int, a raw key or a typed key."""
    import jax

    if isinstance(seed, bool):
        raise ConfigError(f"`{name}` must be an int or a JAX PRNG key, got a bool")
    if isinstance(seed, numbers.Integral):
        if seed < 0:
            raise ConfigError(f"`{name}` must be a non-negative int, got {seed}")
        if seed < 2**64 and jax.config.jax_default_prng_impl == "threefry2x32":
            # what PRNGKey(seed) returns for threefry, [high word, low word], without a device
            # dispatch (~0.1 ms): an engine that answers in a millisecond (bk.PFN) would feel it
            return np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)
        return jax.random.PRNGKey(int(seed))
    if isinstance(seed, (jax.Array, np.ndarray)):
        if jax.dtypes.issubdtype(seed.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(seed)
        if seed.shape == (2,) and seed.dtype == np.uint32:
            return jax.numpy.asarray(seed)
    raise ConfigError(
        f"`{name}` must be an int or a JAX PRNG key (jax.random.key(0) or jax.random.PRNGKey(0)), "
        f"got {type(seed).__name__}"
    )
