"""Measurement helpers shared by the benchmarks."""

from __future__ import annotations

import gc
import os
import threading

MIB = 2**20


class PeakRSS:
    """Peak host RSS above the value at entry, sampled from /proc/self/statm every `interval` s."""

    PAGE = os.sysconf("SC_PAGE_SIZE")

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self._stop = threading.Event()
        self._fd = -1
        self.baseline = self.peak = 0

    def rss(self) -> int:
        return int(os.pread(self._fd, 256, 0).split()[1]) * self.PAGE

    def _watch(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.rss())

    def __enter__(self):
        gc.collect()
        self._fd = os.open("/proc/self/statm", os.O_RDONLY)
        self.baseline = self.peak = self.rss()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())
        os.close(self._fd)
        return False

    @property
    def extra_mib(self) -> float:
        return (self.peak - self.baseline) / MIB
