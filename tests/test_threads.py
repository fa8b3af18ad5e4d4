"""`core.threads`: thread pools sized to the cores other processes leave idle."""

import os
import subprocess
import sys
import time

import pytest

from bayeskit.core import threads


def test_idle_cores_is_the_cores_left_at_least_one():
    assert threads.idle_cores(0.0, 2) == 2
    assert threads.idle_cores(0.9, 2) == 1
    assert threads.idle_cores(1.7, 2) == 1  # never fewer than one
    assert threads.idle_cores(2.2, 8) == 6
    assert threads.idle_cores(None, 4) == 4  # unknown load: every core


def test_load_meter_subtracts_this_process(monkeypatch):
    # the machine was busy 3.0 core-seconds over 2 s of wall time, 1.0 of them ours: others kept 1 core busy
    clock = iter([0.0, 2.0])
    machine = iter([100.0, 103.0])
    own = iter([10.0, 11.0])
    monkeypatch.setattr(threads.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(threads, "_machine_busy_seconds", lambda: next(machine))
    monkeypatch.setattr(threads, "_own_busy_seconds", lambda: next(own))
    meter = threads.LoadMeter()
    assert meter.others() == pytest.approx(1.0)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc/stat (Linux)")
def test_load_meter_sees_a_busy_process():
    # a spinning child process keeps one core busy: the meter sees at least most of it (other test workers
    # may add to it, never subtract: the bound is one-sided)
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 3: pass"])
    try:
        time.sleep(0.3)
        meter = threads.LoadMeter()
        time.sleep(1.0)
        assert meter.others() > 0.6
    finally:
        child.kill()


def test_adaptive_threads_follow_the_load(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 0.5, 0.5))  # an idle machine to start with
    readings = iter([1.2, 1.1, 0.1])
    monkeypatch.setattr(threads.LoadMeter, "others", lambda self: next(readings))
    calls = []
    pool = threads.AdaptiveThreads(calls.append, "auto", every=0.0)
    for _ in range(3):
        pool.update()
    assert calls == [2, 1, 2] and pool.history == [2, 1, 2]  # set again only when the size changes
    fixed = threads.AdaptiveThreads(calls.append, 3)
    fixed.update()
    assert calls[-1] == 3 and fixed.history == [3]


def test_training_settings_take_auto_an_int_or_none():
    pytest.importorskip("torch")
    import bayeskit as bk
    from bayeskit.core.errors import ConfigError

    assert bk.pfn.Training().threads == "auto" and bk.pfn.Training(threads=1).threads == 1
    with pytest.raises(ConfigError, match="`threads`"):
        bk.pfn.Training(threads="many")
