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


def timed_numpyro_nuts(problem, args, seed, extra_fields=()):
    """A fresh NumPyro ``MCMC(NUTS(model))`` run as a user writes it, timed from construction to the
    samples on the host: ``(wall_s, peak_extra_mib, samples, extra_fields, warning messages)``.

    ``args`` holds ``chains``, ``warmup``, ``draws`` and ``numpyro_chain_method``; samples and extra
    fields are grouped by chain.
    """
    import time
    import warnings

    import jax
    from numpyro.infer import MCMC, NUTS

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            mcmc = MCMC(
                NUTS(problem.model),
                num_warmup=args.warmup,
                num_samples=args.draws,
                num_chains=args.chains,
                chain_method=args.numpyro_chain_method,
                progress_bar=False,
            )
            mcmc.run(jax.random.PRNGKey(seed), extra_fields=extra_fields, **problem.data)
            samples = jax.device_get(jax.block_until_ready(mcmc.get_samples(group_by_chain=True)))
            extra = jax.device_get(jax.block_until_ready(mcmc.get_extra_fields(group_by_chain=True)))
            wall = time.perf_counter() - t0
    return wall, mem.extra_mib, samples, extra, [str(w.message) for w in caught]
