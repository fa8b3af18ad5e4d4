"""Chains spread over several devices with shard_map (4 host CPU devices forced in a subprocess)."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    import bayeskit as bk
    from bayeskit.core import cache
    from bayeskit.engines.mcmc import program
    from tests.conftest import normal_mean_model, normal_mean_posterior

    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    sigma = np.full(20, 1.5)
    y = 0.7 + sigma * rng.standard_normal(20)
    mean, sd = normal_mean_posterior(sigma, y)
    for chains, shards in ((4, 4), (6, 3), (2, 2)):
        assert program.shard_count(chains) == shards
        post = bk.fit(normal_mean_model, data={"sigma": sigma, "y": y},
                      engine=bk.NUTS(chains=chains, warmup=300, draws=500, progress=False), seed=0)
        built = [p for p in cache._PROGRAMS.values() if isinstance(p, program.Program) and p.shards == shards]
        assert built, f"no program built for {shards} shards"
        mu = post.draws["mu"]
        assert mu.shape == (chains, 500)
        # chains are independent: no two identical
        assert len({m.tobytes() for m in mu}) == chains
        # each of these short runs still matches the exact posterior (|z| < 5 with ESS >= 400)
        se = sd / np.sqrt(400)
        assert abs(mu.mean() - mean) < 5 * se, (mu.mean(), mean, se)
    print("ok")
    """
)


def test_chains_sharded_over_four_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
