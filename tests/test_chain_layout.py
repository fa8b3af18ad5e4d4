"""Chains on CPU threads and devices: on CPU every chain is its own one-lane loop, so its draws depend on
the seed only, not on `cores` or on how many devices the chains are spread over."""

import os
import subprocess
import sys
import textwrap

import numpy as np

import bayeskit as bk
from bayeskit.engines.mcmc.hmc import chain_groups

from .conftest import normal_mean_model

ENGINE = dict(chains=4, warmup=150, draws=150, progress=False)


def test_same_seed_same_draws_for_any_cores(normal_data):
    from .conftest import normal_mean_posterior

    mean, sd = normal_mean_posterior(normal_data["sigma"], normal_data["y"])
    engine = dict(ENGINE, draws=500)
    fits = {cores: bk.fit(normal_mean_model, data=normal_data, engine=bk.NUTS(cores=cores, **engine), seed=3)
            for cores in (1, 2, 4)}
    for cores in (2, 4):
        np.testing.assert_array_equal(fits[cores].draws["mu"], fits[1].draws["mu"])
    mu = fits[1].draws["mu"]
    assert len({c.tobytes() for c in mu}) == 4  # four independent chains
    assert abs(mu.mean() - mean) < 5 * sd / np.sqrt(500)  # ESS >= 500 of 2000 draws here: a 5-sigma band


def test_one_group_per_chain_on_cpu():
    for chains in (1, 3, 5):
        groups = chain_groups(chains, 2)
        assert [g.chains.tolist() for g in groups] == [[c] for c in range(chains)]


SCRIPT = textwrap.dedent(
    """
    import jax, sys
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    import bayeskit as bk
    from bayeskit.engines.mcmc.hmc import chain_groups
    from tests.conftest import normal_mean_model

    groups = chain_groups(4, 2)
    print("devices", len({g.device for g in groups}), file=sys.stderr)
    sigma = np.full(20, 1.5)
    y = 0.7 + sigma * np.random.default_rng(0).standard_normal(20)
    post = bk.fit(normal_mean_model, data={"sigma": sigma, "y": y},
                  engine=bk.NUTS(chains=4, warmup=150, draws=150, cores=2, progress=False), seed=5)
    np.save(sys.argv[1], post.draws["mu"])
    """
)


def test_groups_spread_over_devices_with_the_same_draws(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    draws = {}
    for devices in (1, 4):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
        path = tmp_path / f"d{devices}.npy"
        out = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], cwd=root, env=env, capture_output=True,
                             text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        if devices == 4:  # four one-chain groups, one per device
            assert "devices 4" in out.stderr
        draws[devices] = np.load(path)
    assert draws[4].shape == (4, 150)
    assert len({m.tobytes() for m in draws[4]}) == 4  # independent chains
    # one device or four: the same draws
    np.testing.assert_array_equal(draws[4], draws[1])
