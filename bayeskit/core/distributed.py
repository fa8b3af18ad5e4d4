"""Several processes, one fit: the facts about the processes, and the one collective bayeskit uses.

bayeskit spreads work that is embarrassingly parallel (NUTS chains, SMC runs) over the processes of
JAX's distributed runtime. There is no global mesh: each process computes its contiguous `block` of
the items on its own devices (`local_devices`), with the same compiled programs as a single process,
and `gather_rows` then joins the blocks, in item order, on every process. Seeds are drawn for all
items from the fit's seed on every process, so an item's numbers do not depend on where it ran.

Starting the runtime
--------------------
``bayeskit launch -n N script.py`` (`bayeskit.cli`) sets `ENV_COORDINATOR`, `ENV_NUM_PROCESSES` and
`ENV_PROCESS_ID`; ``import bayeskit`` then calls `initialize`, which starts JAX's distributed
runtime (CPU collectives: gloo). It happens at import, not at the first fit, because the runtime must
start before any JAX computation, and a script usually computes something (``jnp.asarray(data)``)
before it fits; without those variables nothing is imported (``import bayeskit`` stays fast). A script
that starts the runtime itself (``jax.distributed.initialize()`` under SLURM, or on a TPU/GPU pod)
needs nothing from bayeskit: every helper here reads JAX's own `jax.process_count`.
"""

from __future__ import annotations

import os
import pickle
import sys

from .errors import ConfigError

ENV_COORDINATOR = "BAYESKIT_COORDINATOR"  # host:port of process 0's coordination service
ENV_NUM_PROCESSES = "BAYESKIT_NUM_PROCESSES"
ENV_PROCESS_ID = "BAYESKIT_PROCESS_ID"
ENV_TIMEOUT = "BAYESKIT_DIST_TIMEOUT"  # seconds to wait for the other processes at start (default 300)
HEARTBEAT_SECONDS = 30  # a process that stops answering for this long ends the others' runs


def requested(environ=None) -> bool:
    """Whether this process was started by ``bayeskit launch`` (the runtime's variables are set)."""
    environ = os.environ if environ is None else environ
    return bool(environ.get(ENV_COORDINATOR)) and int(environ.get(ENV_NUM_PROCESSES, "1") or 1) > 1


def initialize(environ=None) -> bool:
    """Start JAX's distributed runtime from the launcher's variables, once. Returns whether it runs.

    Raises `ConfigError` when JAX has already computed something in this process (the runtime can
    only start before the backend does)."""
    environ = os.environ if environ is None else environ
    if not requested(environ):
        return False
    import jax

    if jax.distributed.is_initialized():
        return True
    from .xla_flags import backend_started

    if backend_started():
        raise ConfigError(
            "this process was started by `bayeskit launch` (its distributed runtime must start before JAX "
            "computes anything), but JAX's backend is already running: import bayeskit before any JAX "
            "computation (before jnp.asarray, jax.random.*, jax.devices()), or call "
            "bayeskit.core.distributed.initialize() first")
    jax.distributed.initialize(
        coordinator_address=environ[ENV_COORDINATOR],
        num_processes=int(environ[ENV_NUM_PROCESSES]),
        process_id=int(environ[ENV_PROCESS_ID]),
        initialization_timeout=int(environ.get(ENV_TIMEOUT, "300")),
        heartbeat_timeout_seconds=HEARTBEAT_SECONDS,
    )
    _exit_at_once_on_error()
    return True


def _exit_at_once_on_error() -> None:
    """An uncaught exception ends this process at once (status 1), after its traceback: a normal exit
    would first wait in JAX's shutdown barrier for the other processes, which may themselves be waiting
    in a collective for this one, so nobody would exit until a timeout (minutes); the launcher stops
    the others when one fails."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        try:
            previous(kind, value, tb)
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # noqa: BLE001, S110 (a closed stream: nothing left to flush)
                    pass
            os._exit(1)

    sys.excepthook = hook


def process_count() -> int:
    """Processes of JAX's distributed runtime (1 without it; never starts JAX when it is not imported)."""
    if "jax" not in sys.modules:
        return 1
    import jax

    return jax.process_count()


def process_index() -> int:
    """This process's index, 0 … `process_count` − 1."""
    if "jax" not in sys.modules:
        return 0
    import jax

    return jax.process_index()


def is_root() -> bool:
    """Whether this is process 0: the one that shows progress, warns and writes checkpoints."""
    return process_index() == 0


def local_devices() -> list:
    """This process's own devices: where its block of items runs (``jax.devices()`` lists every
    process's after the runtime starts, and arrays on another process's device cannot be read here)."""
    import jax

    return jax.local_devices()


def block(n: int, index: int | None = None, count: int | None = None) -> range:
    """This process's contiguous share of ``n`` items: process p of P gets items ``⌊p n / P⌋ … ⌊(p+1) n / P⌋ − 1``
    (sizes differ by at most one; a process gets none when n < P)."""
    index = process_index() if index is None else index
    count = process_count() if count is None else count
    return range(index * n // count, (index + 1) * n // count)


def all_gather_objects(obj) -> list:
    """Every process's ``obj`` (any picklable value: NumPy arrays of any shape, dicts, None), in process
    order, on every process; ``[obj]`` with one process. Collective: every process must call it, in the
    same order as its other collectives.

    The values travel as pickled bytes padded to one length (a power of two, so a run compiles few gather
    programs), because JAX's ``process_allgather`` needs the same shape on every process and silently
    returns garbage otherwise."""
    if process_count() == 1:
        return [obj]
    import numpy as np
    from jax.experimental import multihost_utils

    payload = np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.array([payload.size], np.int64))).ravel()
    width = 1 << max(int(sizes.max()) - 1, 1).bit_length()
    padded = np.zeros(width, np.uint8)
    padded[: payload.size] = payload
    rows = np.asarray(multihost_utils.process_allgather(padded))  # (processes, width)
    return [pickle.loads(rows[p, : int(s)].tobytes()) for p, s in enumerate(sizes)]


def gather_rows(tree):
    """Join every process's `block` of rows: ``tree`` is a pytree of arrays whose leading axis is this
    process's items (or None where it has none); returns the same tree over all items, in item order,
    on every process. One process: ``tree`` itself."""
    if process_count() == 1:
        return tree
    import jax
    import numpy as np

    parts = [p for p in all_gather_objects(None if tree is None else jax.device_get(tree)) if p is not None]
    return jax.tree.map(lambda *a: np.concatenate([np.asarray(x) for x in a]), *parts)


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier called ``name`` (a no-op with one process)."""
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
