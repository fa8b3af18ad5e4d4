"""Shared test setup: 64-bit JAX (exact answers are compared to ~1e-3), small models, references."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import bayeskit  # noqa: F401  (before any JAX array: it sets XLA:CPU flags before JAX starts its backend, as for a user)

jax.config.update("jax_enable_x64", True)

REFERENCE_DIR = Path(__file__).parent / "reference" / "posteriordb"


def normal_mean_model(sigma, y=None):
    """y_i ~ N(mu, sigma) with sigma known, mu ~ N(1, 2): conjugate, the posterior is exact."""
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(1.0, 2.0))
    numpyro.deterministic("mu_sq", mu**2)
    with numpyro.plate("n", sigma.shape[0]):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def normal_mean_posterior(sigma, y, m0=1.0, s0=2.0):
    """Exact N(mean, sd) posterior of mu in `normal_mean_model`."""
    precision = 1 / s0**2 + np.sum(1 / sigma**2)
    mean = (m0 / s0**2 + np.sum(y / sigma**2)) / precision
    return mean, precision**-0.5


@pytest.fixture(scope="session")
def normal_data():
    rng = np.random.default_rng(0)
    sigma = np.full(20, 1.5)
    return {"sigma": sigma, "y": 0.7 + sigma * rng.standard_normal(20)}


@pytest.fixture(scope="session")
def normal_fit(normal_data):
    """One shared NUTS fit of the conjugate model (4 chains x 1000 draws)."""
    import bayeskit as bk

    return bk.fit(normal_mean_model, data=normal_data, engine=bk.NUTS(progress=False), seed=0)


def shared_across_workers(tmp_path_factory, name: str, build, save, load):
    """Build an expensive fixture (a trained network) once per test run, not once per xdist worker:
    the first worker builds and saves it under a lock, the others load the file."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent  # shared by every worker of this run
    path = root / name
    with FileLock(str(path) + ".lock"):
        if path.exists():
            return load(path)
        value = build()
        save(value, path)
        return value


def load_reference(name: str) -> dict:
    return json.loads((REFERENCE_DIR / f"{name}.json").read_text())
