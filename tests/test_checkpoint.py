"""Long runs lose nothing: a run killed at a chunk boundary resumes from its checkpoint and gives
exactly what the uninterrupted run gives, for every engine with ``checkpoint=``: NUTS and HMC (in
warmup and in sampling), SMC learning (PaRIS and particle Gibbs), VI, and PFN training (its own torch
checkpoint).

Two ways to end a run. Killed: a subprocess whose `Checkpoint.save` holds (waits) after writing the
checkpoint at or past a given step; the test polls the file until it holds that step and then
sends SIGKILL, so the kill can neither come too early nor find the run already finished (no sleeps
as synchronisation). Each costs a process start and a compile (5-18 s on two busy cores), so the
default tier kills NUTS (in warmup and in sampling) and the slow tier every other engine. Stopped:
the same hook raises, in this process, an exception no engine catches, at every point and for
every engine (under a second once the engine's programs are compiled; the engines that compile
for long, PaRIS learning and VI, in the slow tier). The resumed and uninterrupted runs are
fitted here; their numbers must be equal, not close: a resume replays the same compiled steps on
the same bits.
"""

from __future__ import annotations

import functools
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest

import bayeskit as bk
from bayeskit.core.checkpoint import Checkpoint, digest, fingerprint
from bayeskit.core.errors import ConfigError
from bayeskit.engines.smc import Learn
from bayeskit.models.state_space import LinearGaussian

ROOT = Path(__file__).resolve().parents[1]
KILL_TIMEOUT = 600  # s for the subprocess to reach its checkpoint (imports and compiling on a busy machine)


def scaled_normal(sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(1.0, 2.0))
    tau = numpyro.sample("tau", dist.HalfNormal(1.0))
    with numpyro.plate("n", sigma.shape[0]):
        numpyro.sample("y", dist.Normal(mu, sigma * tau), obs=y)


def regression(X, y=None):
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    numpyro.sample("y", dist.Normal(X @ w, 0.5), obs=y)


NORMAL_DATA = {"sigma": np.full(20, 1.5), "y": np.linspace(-1.0, 2.0, 20)}
_X = np.random.default_rng(0).standard_normal((30, 3))
REGRESSION_DATA = {"X": _X, "y": _X @ np.array([1.0, -0.5, 0.2]) + 0.5 * np.random.default_rng(1).standard_normal(30)}


@functools.cache
def ssm_y():  # on first use: a subprocess running another engine need not compile the simulation
    return np.asarray(LinearGaussian.scalar(a=0.9, c=1.0, q=1.0, r=1.0).simulate(jax.random.key(1), 30)[1])


# 3 chains (the stuck-chain check compares with the median), 100 + 100 transitions in chunks of 10
MCMC = {"chains": 3, "warmup": 100, "draws": 100, "progress": False}
LEARN_STEPS = 40


def nuts(checkpoint=None, resume=False):
    return bk.fit(scaled_normal, NORMAL_DATA, seed=1, engine=bk.NUTS(**MCMC, checkpoint=checkpoint, resume=resume))


def hmc(checkpoint=None, resume=False):
    return bk.fit(scaled_normal, NORMAL_DATA, seed=1,
                  engine=bk.HMC(**MCMC, num_steps=8, checkpoint=checkpoint, resume=resume))


def _learning(engine, checkpoint, resume):
    learn = Learn(params=("A", "Q"), steps=LEARN_STEPS, learning_rate=optax.cosine_decay_schedule(0.05, LEARN_STEPS),
                  checkpoint=checkpoint, resume=resume)
    return bk.fit(LinearGaussian.scalar(a=0.3, q=1.5), {"y": ssm_y()}, seed=0,
                  engine=engine(n_particles=16, learn=learn, progress=False))


def paris_learning(checkpoint=None, resume=False):
    return _learning(bk.PaRIS, checkpoint, resume)


def gibbs_learning(checkpoint=None, resume=False):  # carries its reference path from step to step
    return _learning(bk.ParticleGibbs, checkpoint, resume)


def vi(checkpoint=None, resume=False):  # a cosine schedule over 80 steps, in chunks of 2 (no settling check: < 100)
    return bk.fit(regression, REGRESSION_DATA, seed=3,
                  engine=bk.VI(steps=80, draws=50, progress=False, checkpoint=checkpoint, resume=resume))


RUNS = {f.__name__: f for f in (nuts, hmc, paris_learning, gibbs_learning, vi)}

SCRIPT = """
import sys
import threading

sys.path.insert(0, {root!r})
import bayeskit  # noqa: F401  (before JAX starts: its XLA flags, as in the tests)
import jax

jax.config.update("jax_enable_x64", True)
from bayeskit.core import checkpoint
from tests.test_checkpoint import RUNS

save = checkpoint.Checkpoint.save


def hold(self, state, done, records):
    save(self, state, done, records)
    if done >= {stop_at}:  # written: wait here (other threads may run on) until the test kills us
        threading.Event().wait()


checkpoint.Checkpoint.save = hold
RUNS[{name!r}]({path!r})
"""


def killed_run(tmp_path, name: str, stop_at: int) -> tuple[str, int]:
    """Run ``RUNS[name]`` with a checkpoint in a subprocess, SIGKILL it once the checkpoint holds step
    ``stop_at`` or later; (the checkpoint's path, the steps it holds)."""
    path, log = tmp_path / f"{name}.ckpt", tmp_path / f"{name}.log"
    script = tmp_path / f"{name}.py"
    script.write_text(SCRIPT.format(root=str(ROOT), stop_at=stop_at, name=name, path=str(path)))
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(script)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + KILL_TIMEOUT
        while True:
            done = _steps_in(path)
            if done >= stop_at:
                break
            if proc.poll() is not None:
                pytest.fail(f"the run to kill ended (code {proc.returncode}) before step {stop_at}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint at step {stop_at} after {KILL_TIMEOUT} s:\n{log.read_text()}")
            time.sleep(0.05)  # polling the file, not waiting for the run
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    return str(path), done


def _steps_in(path) -> int:
    """Steps the checkpoint holds (-1 without one yet). It is replaced atomically: always whole."""
    if not os.path.exists(path):
        return -1
    with open(path, "rb") as f:
        return pickle.load(f)["done"]


class Killed(BaseException):  # noqa: N818 - stands for a kill: no engine catches a BaseException
    pass


def stopped_run(monkeypatch, tmp_path, name: str, stop_at: int) -> tuple[str, int]:
    """Run ``RUNS[name]`` with a checkpoint here, ended by `Killed` once the checkpoint at ``stop_at``
    or later is written; (the checkpoint's path, the steps it holds)."""
    path = str(tmp_path / f"{name}.ckpt")
    save = Checkpoint.save

    def save_then_stop(self, state, done, records):
        save(self, state, done, records)
        if done >= stop_at:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(Checkpoint, "save", save_then_stop)
        with pytest.raises(Killed):
            RUNS[name](path)
    return path, _steps_in(path)


def assert_same_fit(name, resumed, full):
    if name in ("paris_learning", "gibbs_learning"):
        assert resumed.learning_history == full.learning_history
        assert resumed.learning_trace.keys() == full.learning_trace.keys()
        for k in full.learning_trace:
            np.testing.assert_array_equal(resumed.learning_trace[k], full.learning_trace[k])
        for p in ("A", "Q"):
            np.testing.assert_array_equal(getattr(resumed.learned, p), getattr(full.learned, p))
        # the smoothing pass at the learned parameters
        np.testing.assert_array_equal(resumed.functional_runs, full.functional_runs)
        np.testing.assert_array_equal(resumed.log_likelihood_runs, full.log_likelihood_runs)
        return
    if name == "vi":
        np.testing.assert_array_equal(resumed.objective_trace, full.objective_trace)
        for k in full.params:
            np.testing.assert_array_equal(resumed.params[k], full.params[k])
    assert_same_draws(resumed, full)


TOTAL = {"nuts": 200, "hmc": 200, "paris_learning": LEARN_STEPS, "gibbs_learning": LEARN_STEPS, "vi": 80}


def assert_same_draws(resumed, full):
    assert resumed.draws.keys() == full.draws.keys() and resumed.sample_stats.keys() == full.sample_stats.keys()
    for k in full.draws:
        np.testing.assert_array_equal(resumed.draws[k], full.draws[k], err_msg=k)
    for k in full.sample_stats:
        np.testing.assert_array_equal(resumed.sample_stats[k], full.sample_stats[k], err_msg=k)


STOPS = [
    ("nuts", 30),  # warmup, first half: stuck-chain checks between chunks, no run-ahead
    ("nuts", 70),  # warmup, second half: metric windows under way, chains running ahead
    ("nuts", 110),  # sampling, a chunk past warmup: draws kept, chains running ahead
    ("hmc", 30),
    ("hmc", 110),
    ("paris_learning", LEARN_STEPS // 2),
    ("gibbs_learning", LEARN_STEPS // 2),  # its reference path is part of the state
    ("vi", 40),  # a cosine schedule: the rates of the steps left depend on where the run was
]
SLOW = pytest.mark.slow  # a process start and a compile each: see the module docstring


# PaRIS learning and VI compile for 10-15 s here: slow (particle Gibbs learning covers `learn` in the
# default tier, at one compile of ~15 s shared with the fingerprint test, and tests/test_vi.py VI's resume)
@pytest.mark.parametrize("name, stop_at", [
    *STOPS[:5], pytest.param(*STOPS[5], marks=SLOW), STOPS[6], pytest.param(*STOPS[7], marks=SLOW)])
def test_a_run_stopped_at_a_checkpoint_resumes_to_the_uninterrupted_run(monkeypatch, tmp_path, name, stop_at):
    path, done = stopped_run(monkeypatch, tmp_path, name, stop_at)
    assert stop_at <= done < TOTAL[name]
    assert_same_fit(name, RUNS[name](path, resume=True), RUNS[name]())
    assert _steps_in(path) == TOTAL[name]  # the resumed run went on writing it


@pytest.mark.parametrize("name, stop_at", [
    STOPS[0], STOPS[2], *(pytest.param(*stop, marks=SLOW) for stop in (STOPS[1], *STOPS[3:]))])
def test_a_killed_run_resumes_to_the_uninterrupted_run(tmp_path, name, stop_at):
    path, done = killed_run(tmp_path, name, stop_at)
    assert stop_at <= done < TOTAL[name]
    assert_same_fit(name, RUNS[name](path, resume=True), RUNS[name]())


def test_stuck_chain_restarts_resume_where_they_were(monkeypatch, tmp_path):
    # chain 0 reported stuck at every check: restarted at transitions 10, 20 and 30 (at most 3), each
    # from fresh candidates of the restart seed stream. Stopped at 20, the resumed run must draw the
    # third restart's candidates from that stream where the run left it, and count it as the third.
    from bayeskit.engines.mcmc import hmc as hmc_module

    def chain_0_stuck(step_length, position):
        return np.arange(len(step_length)) == 0

    monkeypatch.setattr(hmc_module, "stuck_chains", chain_0_stuck)
    with pytest.warns(bk.ConvergenceWarning, match=r"restarted from fresh starting points \(3 time"):
        full = nuts()
    path, done = stopped_run(monkeypatch, tmp_path, "nuts", 20)
    assert done == 20
    with pytest.warns(bk.ConvergenceWarning, match=r"restarted from fresh starting points \(3 time"):
        resumed = nuts(path, resume=True)
    assert_same_draws(resumed, full)


def test_resuming_a_finished_run_returns_its_draws(tmp_path):
    path = str(tmp_path / "run.ckpt")
    first = nuts(path)
    assert_same_draws(nuts(path, resume=True), first)


def test_resuming_another_run_is_refused_naming_what_differs(tmp_path):
    path = str(tmp_path / "run.ckpt")
    nuts(path)
    engine = bk.NUTS(**MCMC, checkpoint=path, resume=True)
    with pytest.raises(ConfigError, match="`draws` 100 there, 50 here"):
        bk.fit(scaled_normal, NORMAL_DATA, seed=1, engine=engine.replace(draws=50))
    with pytest.raises(ConfigError, match="`seed`"):
        bk.fit(scaled_normal, NORMAL_DATA, seed=2, engine=engine)
    with pytest.raises(ConfigError, match="`data` differs"):
        bk.fit(scaled_normal, {**NORMAL_DATA, "y": NORMAL_DATA["y"] + 1}, seed=1, engine=engine)
    with pytest.raises(ConfigError, match="`engine` 'NUTS' there, 'HMC' here"):
        bk.fit(scaled_normal, NORMAL_DATA, seed=1, engine=bk.HMC(**MCMC, checkpoint=path, resume=True))
    # what does not change the draws may change: the progress bar, the threads
    assert_same_draws(bk.fit(scaled_normal, NORMAL_DATA, seed=1, engine=engine.replace(cores=1)), nuts())
    # learning: a checkpoint of another learning rate (particle Gibbs: the programs of the default tier)
    learn_path = str(tmp_path / "learn.ckpt")
    gibbs_learning(learn_path)
    other = Learn(params=("A", "Q"), steps=LEARN_STEPS, learning_rate=optax.cosine_decay_schedule(0.02, LEARN_STEPS),
                  checkpoint=learn_path, resume=True)
    with pytest.raises(ConfigError, match="`learn` differs"):
        bk.fit(LinearGaussian.scalar(a=0.3, q=1.5), {"y": ssm_y()}, seed=0,
               engine=bk.ParticleGibbs(n_particles=16, learn=other, progress=False))


def test_bad_checkpoint_arguments_are_named(tmp_path):
    with pytest.raises(ConfigError, match="`resume=True` needs `checkpoint=`"):
        bk.NUTS(resume=True)
    with pytest.raises(ConfigError, match="`resume=True` needs `checkpoint=`"):
        Learn(params=("A",), resume=True)
    with pytest.raises(ConfigError, match="`checkpoint` must be None or a file path"):
        bk.HMC(checkpoint=3)
    missing = str(tmp_path / "no" / "such" / "run.ckpt")
    with pytest.raises(ConfigError, match="`checkpoint` .* folder that does not exist"):
        bk.fit(scaled_normal, NORMAL_DATA, engine=bk.NUTS(**MCMC, checkpoint=missing))
    with pytest.raises(ConfigError, match="`checkpoint` .* folder that does not exist"):
        paris_learning(missing)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a bayeskit checkpoint"):
        nuts(str(garbage), resume=True)


def test_a_checkpoint_is_replaced_atomically(tmp_path):
    # a run killed while writing leaves its temporary file and the previous checkpoint whole
    path = str(tmp_path / "run.ckpt")
    checkpoint = Checkpoint(path, {"a": "1"}, resume=True)
    checkpoint.save({"x": np.arange(3)}, 5, [None])
    with open(path + ".tmp", "wb") as f:
        f.write(b"half a pick")
    saved = checkpoint.load()
    assert saved.done == 5 and saved.records == [None]
    np.testing.assert_array_equal(saved.state["x"], np.arange(3))


def test_fingerprints_ignore_addresses_but_not_values():
    def rate(step):
        return 0.1

    assert digest(optax.cosine_decay_schedule(0.05, 10)) == digest(optax.cosine_decay_schedule(0.05, 10))
    assert digest(optax.cosine_decay_schedule(0.05, 10)) != digest(optax.cosine_decay_schedule(0.02, 10))
    assert digest({"a": np.zeros(3)}) != digest({"a": np.zeros(3, np.float32)})
    assert digest(rate) == digest(rate) and "0x" not in fingerprint({"f": rate}, 0)["f"]


PFN_SCRIPT = """
import sys
import threading

sys.path.insert(0, {root!r})
import bayeskit  # noqa: F401
import jax

jax.config.update("jax_enable_x64", True)  # as in the tests: the prior's datasets are drawn alike
from bayeskit.engines.pfn import training
from tests.test_pfn_network import SMALL, gp_prior

save = training._atomic_save


def hold(obj, path):
    save(obj, path)
    if obj["step"] >= {stop_at}:  # written: wait here until the test kills us
        threading.Event().wait()


training._atomic_save = hold
training.train(gp_prior(), SMALL, seed=3, progress=False, checkpoint={path!r}, checkpoint_every=10)
"""


def test_killed_pfn_training_resumes_to_the_uninterrupted_run(tmp_path):
    """PFN training keeps its own torch checkpoint (network, optimiser, schedule, torch's RNG): killed
    with SIGKILL after step 30 of 60 in a subprocess and resumed here, the history and every weight
    equal the uninterrupted run's exactly."""
    torch = pytest.importorskip("torch")
    from bayeskit.engines.pfn import training
    from tests.test_pfn_network import SMALL, gp_prior

    path, log, script = tmp_path / "pfn.ckpt", tmp_path / "pfn.log", tmp_path / "pfn.py"
    script.write_text(PFN_SCRIPT.format(root=str(ROOT), stop_at=30, path=str(path)))
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(script)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + KILL_TIMEOUT
        while not (path.exists() and torch.load(path, weights_only=False)["step"] >= 30):
            if proc.poll() is not None:
                pytest.fail(f"training ended (code {proc.returncode}) before step 30:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint at step 30 after {KILL_TIMEOUT} s:\n{log.read_text()}")
            time.sleep(0.05)  # polling the file (replaced atomically), not waiting for the run
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    assert torch.load(path, weights_only=False)["step"] == 30
    resumed = training.train(gp_prior(), SMALL, seed=3, progress=False, checkpoint=str(path), resume=True)
    full = training.train(gp_prior(), SMALL, seed=3, progress=False)
    np.testing.assert_array_equal(resumed.history, full.history)
    for a, b in zip(resumed.network.state_dict().values(), full.network.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
