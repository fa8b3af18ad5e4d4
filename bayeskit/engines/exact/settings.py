"""Settings of the matrix-free solver (importing this module imports no torch)."""

from __future__ import annotations

import os

import numpy as np

from ...core.checks import check_choice, check_int, check_positive
from ...core.module import Module

CACHE_FRACTION = 0.5  # "auto" stores K when it takes at most this share of physical memory


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


class MatrixFree(Module, pytree=False):
    """GPyTorch's matrix-free linear algebra for a process: ``bk.Exact(solver=bk.MatrixFree(...))``.

    The marginal likelihood needs q = yᵀA⁻¹y and log|A| (A = K + εI). Here q comes from
    preconditioned conjugate gradients (relative residual ``tolerance`` while fitting and
    ``eval_tolerance`` for the posterior's A⁻¹y, at most ``max_iterations``; GPyTorch's defaults are 1 and 0.01),
    log|A| from stochastic Lanczos quadrature with ``probes`` random probe vectors and
    ``lanczos_iterations`` Lanczos steps, both preconditioned by a rank-``preconditioner_rank``
    pivoted Cholesky factor (Gardner et al. 2018). Predictive variances use LOVE, a rank-``love_rank``
    Lanczos approximation A⁻¹ ≈ R Rᵀ (Pleiss et al. 2018). log|A| and its gradient are unbiased
    stochastic estimates; ``seed``-for-seed the run is deterministic.

    ``cache``: "auto" keeps K in memory (float64, else float32) when it fits in half the
    machine's memory, otherwise recomputes it block by block for every product; "float64",
    "float32" or None force a choice.

    Precision: whatever the data's dtype (float32 under JAX's default), the kernel is evaluated
    and CG, Lanczos and the preconditioner run in float64; a float32 K is summed in float64.
    float32 arithmetic there gave NaN log-determinants and wrong gradients once the noise was
    small against N·k̄ (issue 17), and costs about the same on a CPU.
    """

    tolerance: float = 0.01
    eval_tolerance: float = 0.01
    max_iterations: int = 1000
    probes: int = 10
    lanczos_iterations: int = 20
    preconditioner_rank: int = 15
    love_rank: int = 100
    cache: str | None = "auto"

    def __check_init__(self):
        check_positive("tolerance", self.tolerance)
        check_positive("eval_tolerance", self.eval_tolerance)
        for name in ("max_iterations", "probes", "lanczos_iterations", "love_rank"):
            check_int(name, getattr(self, name))
        check_int("preconditioner_rank", self.preconditioner_rank, 0)
        if self.cache is not None:
            check_choice("cache", self.cache, ("auto", "float64", "float32"))

    def cache_dtype(self, n: int) -> np.dtype | None:
        """The dtype K is stored in for `n` points, or None (recompute). The kernel itself is
        evaluated in float64 whatever the data's dtype (`torch_operator.KernelSource`)."""
        if self.cache != "auto":
            return None if self.cache is None else np.dtype(self.cache)
        budget = CACHE_FRACTION * _physical_memory()
        for candidate in (np.dtype(np.float64), np.dtype(np.float32)):
            if n * n * candidate.itemsize <= budget:
                return candidate
        return None
