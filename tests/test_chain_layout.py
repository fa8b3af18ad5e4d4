"""Chains in groups (threads on CPU, groups spread over devices): the draws depend on the seed and the
groups' sizes only, not on which thread or device runs a group."""

import os
import subprocess
import sys
import textwrap

import numpy as np

import bayeskit as bk
from bayeskit.engines.mcmc.hmc import chain_groups

from .conftest import normal_mean_model

ENGINE = dict(chains=4, warmup=150, draws=150, progress=False)


def test_same_seed_and_cores_same_draws_and_valid_for_any_cores(normal_data):
    from .conftest import normal_mean_posterior

    mean, sd = normal_mean_posterior(normal_data["sigma"], normal_data["y"])
    engine = dict(ENGINE, draws=500)
    again = [bk.fit(normal_mean_model, data=normal_data, engine=bk.NUTS(cores=2, **engine), seed=3) for _ in range(2)]
    np.testing.assert_array_equal(again[0].draws["mu"], again[1].draws["mu"])
    # one group of four lanes, four of one: other rounding, other draws, the same posterior
    for cores in (1, 4):
        mu = bk.fit(normal_mean_model, data=normal_data, engine=bk.NUTS(cores=cores, **engine), seed=3).draws["mu"]
        assert abs(mu.mean() - mean) < 5 * sd / np.sqrt(500)  # ESS >= 500 of 2000 draws here: a 5-sigma band


def test_groups_cover_chains_once():
    for chains, cores in ((4, 2), (5, 2), (3, 8), (1, 4)):
        groups = chain_groups(chains, cores)
        assert len(groups) == min(chains, cores)
        assert np.array_equal(np.concatenate([g.chains for g in groups]), np.arange(chains))
        sizes = [len(g.chains) for g in groups]
        assert max(sizes) - min(sizes) <= 1


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
        if devices == 4:  # two groups, each on its own device
            assert "devices 2" in out.stderr
        draws[devices] = np.load(path)
    assert draws[4].shape == (4, 150)
    assert len({m.tobytes() for m in draws[4]}) == 4  # independent chains
    # the same groups (two of two chains) on one device or on two: the same draws
    np.testing.assert_array_equal(draws[4], draws[1])
