"""`import bayeskit` sets XLA:CPU's small-loop threshold and its serial scheduler in XLA_FLAGS
(core/xla_flags.py): only when they can still take effect, never over the user's own choice, and
they do take effect."""

import os
import subprocess
import sys
import textwrap

import pytest

from bayeskit.core import xla_flags
from bayeskit.core.xla_flags import OPTION, SCHEDULER, SMALL_LOOP_BYTES, tune_xla_cpu

SETTING = f"{OPTION}={SMALL_LOOP_BYTES}"
SERIAL = f"--{SCHEDULER}=false"


def _tune(env, started=False, monkeypatch=None):
    monkeypatch.setattr(xla_flags, "backend_started", lambda: started)
    added = tune_xla_cpu(env)
    return added, env.get("XLA_FLAGS")


def test_added_to_empty_or_other_flags(monkeypatch):
    assert _tune({}, monkeypatch=monkeypatch) == (True, f"{SERIAL} --xla_backend_extra_options={SETTING}")
    flags = "--xla_force_host_platform_device_count=4"
    assert _tune({"XLA_FLAGS": flags}, monkeypatch=monkeypatch) == (
        True, f"{flags} {SERIAL} --xla_backend_extra_options={SETTING}")


def test_merged_into_the_users_extra_options(monkeypatch):
    flags = "--xla_backend_extra_options=foo=1 --xla_dump_to=/tmp/x"
    added, out = _tune({"XLA_FLAGS": flags}, monkeypatch=monkeypatch)
    assert added and out == f"--xla_backend_extra_options=foo=1,{SETTING} --xla_dump_to=/tmp/x {SERIAL}"


def test_left_alone_when_user_chose_or_too_late_or_off(monkeypatch):
    own = f"--xla_backend_extra_options={OPTION}=0 --{SCHEDULER}=true"
    assert _tune({"XLA_FLAGS": own}, monkeypatch=monkeypatch) == (False, own)
    assert _tune({}, started=True, monkeypatch=monkeypatch) == (False, None)
    assert _tune({xla_flags.ENV: "off"}, monkeypatch=monkeypatch) == (False, None)
    # a user's own threshold keeps the scheduler setting, and a user's own scheduler the threshold
    added, out = _tune({"XLA_FLAGS": f"--xla_backend_extra_options={OPTION}=0"}, monkeypatch=monkeypatch)
    assert not added and out == f"--xla_backend_extra_options={OPTION}=0 {SERIAL}"
    added, out = _tune({"XLA_FLAGS": f"--{SCHEDULER}=true"}, monkeypatch=monkeypatch)
    assert added and out == f"--{SCHEDULER}=true --xla_backend_extra_options={SETTING}"


def test_batched_lapack_kernels_do_not_hang_after_import_bayeskit():
    # benchmarks/repro_lapack_hang.py's program (two vmapped solves in one jitted function), with the flags
    # `import bayeskit` sets: with XLA's default scheduler it hung within seconds in every run on this
    # 2-core machine: 200 calls hung in 3 of 3 runs (and longer runs in 5 of 5; native stacks in
    # core/xla_flags.py); with them, 200 calls take ~10 s and 4,000 finished. 20 s without progress fails it.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_flags.ENV)}
    script = ("import bayeskit, os, runpy, sys; assert '--" + SCHEDULER + "=false' in os.environ['XLA_FLAGS']; "
              "sys.argv = ['repro', '--child', '--calls', '200']; "
              "runpy.run_path('benchmarks/repro_lapack_hang.py', run_name='__main__')")
    try:
        out = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True,
                             timeout=200)
    except subprocess.TimeoutExpired:
        pytest.fail("the batched-solve program hung")
    assert out.returncode == 0, out.stderr[-3000:]


SCRIPT = textwrap.dedent(
    """
    import jax
    {before}
    import bayeskit
    import jax.numpy as jnp
    import warnings
    def f(x):
        return jax.lax.while_loop(lambda c: c[0] < 10, lambda c: (c[0] + 1, jnp.sin(c[1]) + c[1][::-1]), (0, x))[1]
    text = jax.jit(f).lower(jnp.ones(400)).compile().as_text()
    from bayeskit.core.xla_flags import warn_if_inactive
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_if_inactive()
    print("hoisted" if "xla_cpu_small_call" in text else "thunks", len(caught))
    """
)


def test_takes_effect_unless_jax_started_first():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_flags.ENV)}
    for before, expected in (("", "hoisted 0"), ("jax.numpy.ones(1).block_until_ready()", "thunks 1")):
        out = subprocess.run([sys.executable, "-c", SCRIPT.format(before=before)], cwd=root, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split("\n")[-2] == expected, out.stdout
