"""Chains and SMC runs across processes (issue 19): `bayeskit launch -n 2` on this machine's CPU (JAX's
distributed runtime, gloo collectives) against the same script run as one process.

Every check here is exact equality, which the design guarantees on CPU: each process computes its
contiguous block of items with the programs a single process would use for them (NUTS: one one-lane
program per chain; SMC: vectorised blocks of `RUN_BLOCK` runs, whatever the layout), from keys drawn
for all items from the seed, and the gather only moves bytes. (On accelerators NUTS chains are lanes of
one vectorised program per device, whose rounding may depend on the lane count: docs/distributed.md.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bayeskit.core import distributed
from bayeskit.core.errors import ConfigError

TIMEOUT = 240  # seconds for one launch: two interpreters compiling on two shared cores

SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import bayeskit as bk
    from bayeskit.core import distributed

    out, whats, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    res = {}
    if "nuts" in whats.split("+"):
        import numpyro
        import numpyro.distributions as dist

        def model(sigma, y=None):
            mu = numpyro.sample("mu", dist.Normal(1.0, 2.0))
            tau = numpyro.sample("tau", dist.HalfNormal(1.0))
            with numpyro.plate("n", sigma.shape[0]):
                numpyro.sample("y", dist.Normal(mu, sigma * tau + 0.5), obs=y)

        sigma = np.full(20, 1.5)
        y = 0.7 + sigma * np.random.default_rng(0).standard_normal(20)
        post = bk.fit(model, data={"sigma": sigma, "y": y},
                      engine=bk.NUTS(chains=n, warmup=100, draws=100, progress=False), seed=5)
        res = {k: np.asarray(v) for k, v in post.draws.items()}
        res.update({f"stat_{k}": np.asarray(v) for k, v in post.sample_stats.items()})
    what = whats.split("+")[-1]
    if what.startswith("smc"):
        from bayeskit.models.state_space import LinearGaussian

        model = LinearGaussian.scalar(a=0.9, c=1.0, q=1.0, r=1.0)
        ys = np.random.default_rng(1).standard_normal(30)
        engines = {"paris": bk.PaRIS(n_particles=64, functional="score", runs=n, progress=False)}
        if what == "smc-all":
            engines["pf"] = bk.ParticleFilter(n_particles=64, runs=n, progress=False)
            engines["gibbs"] = bk.ParticleGibbs(n_particles=16, functional=lambda x, x1, t: x1[..., 0], sweeps=6,
                                                burn_in=2, runs=n, progress=False)
        for name, engine in engines.items():
            post = bk.fit(model, {"y": ys}, engine=engine, seed=3)
            res[f"{name}_loglik"] = post.log_likelihood_runs
            res[f"{name}_osl"] = post.one_step_log_densities
            if post.functional_runs is not None:
                res[f"{name}_functional"] = post.functional_runs
    np.savez(f"{out}.{distributed.process_index()}.of{distributed.process_count()}.npz", **res)
    print("done", distributed.process_index(), flush=True)
''')


def _script(tmp_path, text=SCRIPT):
    path = tmp_path / "script.py"
    path.write_text(text)
    return path


def _run(args, cwd, timeout=TIMEOUT):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAYESKIT_") or k == "BAYESKIT_CACHE_DIR"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _launch(script, *args, n=2, timeout=TIMEOUT):
    return _run([sys.executable, "-m", "bayeskit.cli", "launch", "-n", str(n), str(script), *map(str, args)],
                script.parent, timeout)


def _single_and_launched(tmp_path, what, n):
    script = _script(tmp_path)
    one = _run([sys.executable, str(script), "one", what, str(n)], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _launch(script, "two", what, n)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    ref = np.load(tmp_path / "one.0.of1.npz")
    for rank in (0, 1):  # the whole result on every process
        got = np.load(tmp_path / f"two.{rank}.of2.npz")
        assert sorted(got.files) == sorted(ref.files)
        for k in ref.files:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{what}: {k} on process {rank}")
    return two


def test_chains_and_runs_over_two_processes_give_the_single_process_results(tmp_path):
    # one launch for both (each launch starts and compiles in two interpreters):
    # NUTS with 5 chains: 2 on process 0, 3 on process 1 (uneven blocks, padded gathers);
    # PaRIS with 5 runs: blocks of 4 (the second filled up with a copy), one block per process
    two = _single_and_launched(tmp_path, "nuts+smc", 5)
    assert "[0] done 0" in two.stdout and "[1] done 1" in two.stdout


@pytest.mark.slow  # ~60 s: three SMC engines compiled in three processes
def test_all_smc_engines_over_two_processes(tmp_path):
    _single_and_launched(tmp_path, "smc-all", 7)


@pytest.mark.slow
def test_fewer_chains_than_processes(tmp_path):
    _single_and_launched(tmp_path, "nuts", 1)  # process 1 runs no chain but gets the draws


def test_launch_stops_everything_when_one_process_fails(tmp_path):
    script = _script(tmp_path, textwrap.dedent('''
        import bayeskit
        from bayeskit.core import distributed
        if distributed.process_index() == 1:
            raise RuntimeError("process 1 fails")
        distributed.all_gather_objects("waits for process 1")  # would wait forever without the launcher
    '''))
    out = _launch(script, timeout=120)
    assert out.returncode != 0
    assert "process 1 fails" in out.stdout
    assert "bayeskit launch: process" in out.stderr


def test_launch_passes_arguments_and_environment(tmp_path):
    script = _script(tmp_path, textwrap.dedent('''
        import os, sys
        print("args", sys.argv[1:], os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["MASTER_PORT"] != "",
              os.environ["OMP_NUM_THREADS"], os.environ["BAYESKIT_PROCESS_ID"])
    '''))
    out = _launch(script, "a", "--b", n=3, timeout=60)
    assert out.returncode == 0, out.stderr
    for i in range(3):
        assert f"[{i}] args ['a', '--b'] {i} 3 True" in out.stdout
    assert _launch(tmp_path / "missing.py", timeout=60).returncode == 2


def test_block_splits_contiguously():
    blocks = [distributed.block(10, i, 4) for i in range(4)]
    assert [list(b) for b in blocks] == [[0, 1], [2, 3, 4], [5, 6], [7, 8, 9]]
    assert [len(distributed.block(1, i, 2)) for i in range(2)] == [0, 1]
    assert distributed.gather_rows({"a": np.ones(3)})["a"].shape == (3,)  # one process: as it is
    assert distributed.all_gather_objects(5) == [5]


def test_initialise_after_jax_started_says_what_to_do(monkeypatch):
    import jax.numpy as jnp

    jnp.zeros(1)  # the backend is running
    env = {distributed.ENV_COORDINATOR: "127.0.0.1:1", distributed.ENV_NUM_PROCESSES: "2",
           distributed.ENV_PROCESS_ID: "0"}
    with pytest.raises(ConfigError, match="import bayeskit before any JAX computation"):
        distributed.initialize(env)
    assert not distributed.initialize({})  # not launched: nothing to do
