"""XLA:CPU settings made when bayeskit is imported, before JAX starts its CPU backend.

XLA:CPU runs a compiled program as a sequence of "thunks" (one per fused kernel, copy or loop),
with a dispatch cost of roughly 0.05-0.2 µs each. A sampler's loop body is hundreds of tiny
kernels on arrays of a few numbers, so on small models that dispatch, not the arithmetic, is the
time per gradient. XLA's `SmallWhileLoopHoistingPass` compiles a while loop that touches few bytes
into one kernel instead, control flow included; its threshold is 1 KB by default, which no
sampler loop is under. bayeskit raises it to `SMALL_LOOP_BYTES`, through ``XLA_FLAGS`` (the
option lives in a map that JAX's per-program compiler options cannot set). Measured on the
posteriordb models of `benchmarks/nuts_vs_nutpie.py`: 2.5-3x less time per gradient for eight
schools and kid IQ (issue 16). Loops over large arrays stay above the threshold and keep XLA's
multi-threaded kernels.

A second setting avoids a deadlock. XLA:CPU's default scheduler orders a program so that independent
kernels can run at once on its intra-op thread pool (one thread per core). jaxlib's batched LAPACK
kernels (a vmapped ``solve``, ``cholesky``, triangular solve) split their batch over that same pool
and wait for the pieces; when two of them run at once on a 2-core machine, both pool threads wait
for work that no thread is left to run, and the process hangs with no CPU use (JAX 0.10.2; native
stacks: two ``tf_XLAEigen`` workers in ``jax::ParallelBatchMap`` → ``BlockingCounter::Wait`` under
``lapack_dtrsm_ffi``). A jitted GP predictive mixture with two vmapped solves hung within seconds in
every run (`benchmarks/repro_lapack_hang.py`); with ``xla_cpu_enable_concurrency_optimized_scheduler``
off, XLA's memory-ordered schedule runs such kernels one after the other and 3 × 4,000 calls finished.
Neither ``--xla_cpu_multi_thread_eigen=false``, synchronous dispatch, nor the legacy runtime helps.

``XLA_FLAGS`` is read once, when JAX starts its backend (the first array operation, not
``import jax``). So the settings are made at ``import bayeskit`` and each only if:

* the backend has not started yet (else it cannot take effect; `hoisting_active` then says so);
* the user's ``XLA_FLAGS`` do not set that option themselves;
* ``BAYESKIT_XLA_FLAGS`` is not ``off``.

bayeskit's own programs also get the scheduler setting per program (`engines.mcmc.program`), so
they are safe even when JAX started first.
"""

from __future__ import annotations

import os
import sys

ENV = "BAYESKIT_XLA_FLAGS"
OPTION = "xla_cpu_small_while_loop_byte_threshold"
SMALL_LOOP_BYTES = 4 << 20  # 4 MiB: a NUTS loop over ~20k data values (4 lanes) is under it
SCHEDULER = "xla_cpu_enable_concurrency_optimized_scheduler"  # off: no concurrent batched LAPACK kernels
_OFF = ("off", "0", "false", "no", "none")

_state = {"set": False}


def tune_xla_cpu(environ=None) -> bool:
    """Add the small-loop threshold and the serial scheduler to ``XLA_FLAGS`` when they can still take
    effect and the user has not chosen otherwise. Returns whether the threshold was added."""
    environ = os.environ if environ is None else environ
    if _opted_out(environ) or backend_started():
        return False
    flags = environ.get("XLA_FLAGS", "")
    if SCHEDULER not in flags:
        flags = f"{flags} --{SCHEDULER}=false".strip()
        environ["XLA_FLAGS"] = flags
    if OPTION in flags:
        return False
    setting = f"{OPTION}={SMALL_LOOP_BYTES}"
    key = "--xla_backend_extra_options="
    if key in flags:  # the flag takes a comma-separated list: add ours to the user's
        head, _, tail = flags.partition(key)
        value, space, rest = tail.partition(" ")
        flags = f"{head}{key}{value},{setting}{space}{rest}"
    else:
        flags = f"{flags} {key}{setting}".strip()
    environ["XLA_FLAGS"] = flags
    _state["set"] = environ is os.environ
    return True


def _opted_out(environ) -> bool:
    return environ.get(ENV, "").strip().lower() in _OFF


def backend_started() -> bool:
    """Whether JAX has started a backend (and so has read ``XLA_FLAGS`` already)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # private API moved: assume the worst, touch nothing
        return True


def hoisting_active() -> bool:
    """Whether the running backend compiles small loops into single kernels (our setting, or the
    user's own ``XLA_FLAGS``)."""
    return _state["set"] or OPTION in os.environ.get("XLA_FLAGS", "")


def warn_if_inactive() -> None:
    """Once per process, on CPU: say that sampling runs slower because the backend started
    before bayeskit could set `OPTION`, and how to fix it."""
    if _state.get("warned") or hoisting_active() or _opted_out(os.environ):
        return
    import warnings

    import jax

    if jax.default_backend() != "cpu":
        return
    _state["warned"] = True
    warnings.warn(
        "JAX started its CPU backend before bayeskit was imported, so XLA compiles samplers' loops as "
        "hundreds of separately dispatched kernels: NUTS on small models runs 2-3x slower. Import bayeskit "
        f"before running JAX code, or set XLA_FLAGS=--xla_backend_extra_options={OPTION}={SMALL_LOOP_BYTES} "
        f"yourself (or {ENV}=off to silence this)",
        RuntimeWarning,
        stacklevel=4,
    )
