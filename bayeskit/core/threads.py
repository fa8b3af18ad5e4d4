"""CPU threads that degrade gracefully when other processes share the cores.

A thread pool sized to the machine (torch's OpenMP pool, by default one thread per core) loses badly
when the cores are busy: its threads spin at every barrier while the thread they wait for is
descheduled, so each parallel region costs a scheduler time slice. Measured on a 2-core machine
(`benchmarks/threads_under_load.py`), a small PFN's training step took 49 ms alone with 2 threads
but 151 ms beside one busy process and 219 ms beside two; with one thread, 65 / 60 / 102 ms.

So the pool follows the load: `AdaptiveThreads` measures, every few seconds, how many cores other
processes kept busy (`LoadMeter`: the machine's busy CPU time from ``/proc/stat`` minus this
process's own) and sets the pool to the cores left idle, at least one. An idle machine keeps every
core; a busy one gets one thread, the layout that does not fight the other processes.
"""

from __future__ import annotations

import os
import time

MEASURE_EVERY = 2.0  # seconds between load measurements of an `AdaptiveThreads`


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _machine_busy_seconds() -> float | None:
    """CPU seconds all cores spent busy since boot (``/proc/stat``), or None where it is not readable."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user .. steal; guest is inside user


def _own_busy_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _others_by_load_average() -> float | None:
    """Busy cores of other processes by the 1-minute load average, less this process (None: unknown)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return None if load is None else max(load - 1.0, 0.0)


class LoadMeter:
    """How many cores other processes kept busy since the last reading (`others`)."""

    def __init__(self):
        self._last = self._read()

    @staticmethod
    def _read():
        return time.monotonic(), _machine_busy_seconds(), _own_busy_seconds()

    def others(self) -> float | None:
        """Busy cores of other processes, averaged since the previous call (None: unknown)."""
        now = self._read()
        (t0, m0, o0), (t1, m1, o1) = self._last, now
        self._last = now
        if m0 is None or m1 is None or t1 - t0 <= 0:
            return _others_by_load_average()
        return max((m1 - m0) - (o1 - o0), 0.0) / (t1 - t0)


def idle_cores(others: float | None, cores: int | None = None) -> int:
    """Threads to use: the usable cores less those other processes keep busy, at least one."""
    cores = usable_cores() if cores is None else cores
    if others is None:
        return cores
    return max(1, min(cores, int(round(cores - others))))


class AdaptiveThreads:
    """Keeps a thread pool at the idle cores while a loop runs: call `update()` once per step; every
    `MEASURE_EVERY` seconds it measures the load and calls ``set_threads(n)`` when n changed.

    ``threads="auto"`` adapts; an int fixes the pool at that size (and `update` does nothing)."""

    def __init__(self, set_threads, threads="auto", every: float = MEASURE_EVERY):
        self._set, self.every = set_threads, every
        self.adaptive = threads == "auto"
        self.history: list[int] = []  # the sizes used, in order
        if self.adaptive:
            self._meter = LoadMeter()
            self._next = time.monotonic() + every
            # before any measurement: the 1-minute load average says whether the machine is busy already
            self._apply(idle_cores(_others_by_load_average()))
        else:
            self._apply(int(threads))

    def _apply(self, n: int) -> None:
        if not self.history or self.history[-1] != n:
            self._set(n)
            self.history.append(n)

    def update(self) -> None:
        if not self.adaptive or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every
        self._apply(idle_cores(self._meter.others()))
