"""Seeds: the one path from ``seed=`` (an int or a JAX key) to every random number in a fit.

`fit` is pure in the seed. Every engine turns ``seed`` into one raw ``uint32[2]`` key (`as_key`) and
derives everything else from it here, never from global state:

* JAX sub-keys: `split` (n independent keys) and `fold_in` (the key of step t, so a resumed or
  replayed run repeats the uninterrupted one exactly);
* NumPy: `seed_sequence` / `numpy_rng`, seeded by the key's two words;
* PyTorch: `torch_generator`, seeded by `int_seed` (the key's words as one int);

so an int seed and the JAX key it stands for give the same numbers everywhere.
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
            return seed if isinstance(seed, np.ndarray) else jax.numpy.asarray(seed)
    raise ConfigError(
        f"`{name}` must be an int or a JAX PRNG key (jax.random.key(0) or jax.random.PRNGKey(0)), "
        f"got {type(seed).__name__}"
    )


def split(seed, n: int):
    """``n`` independent raw keys (n, 2) derived from ``seed``."""
    import jax

    return jax.random.split(as_key(seed), n)


def fold_in(seed, data):
    """The key of item ``data`` (a step, a run) of the stream ``seed``: repeatable in any order."""
    import jax

    return jax.random.fold_in(as_key(seed), data)


def words(seed) -> list[int]:
    """The key's two uint32 words, on the host."""
    return [int(w) for w in np.asarray(as_key(seed)).ravel()]


def seed_sequence(seed) -> np.random.SeedSequence:
    """A NumPy SeedSequence seeded by the key's words (spawn it for independent streams)."""
    return np.random.SeedSequence(words(seed))


def numpy_rng(seed) -> np.random.Generator:
    """A NumPy generator for host-side randomness (split positions, start candidates)."""
    return np.random.default_rng(seed_sequence(seed))


def int_seed(seed) -> int:
    """One int in [0, 2**63) from the key: for libraries that take an int seed (torch)."""
    hi, lo = words(seed)
    return ((hi << 32) | lo) & (2**63 - 1)


def torch_generator(seed, device="cpu"):
    """A ``torch.Generator`` on ``device`` seeded from the key (never torch's global generator)."""
    import torch

    return torch.Generator(device=device).manual_seed(int_seed(seed))
