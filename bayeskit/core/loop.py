"""The one driver of long runs: compiled chunks of steps, a progress bar, interrupts, failures, checkpoints.

Every engine that iterates (MCMC warmup and sampling, VI and type-II ML optimisation, PFN training,
particle-method learning) hands `run` a function ``advance(state, start, stop) -> (state, record)``
that performs steps ``start … stop − 1`` (one compiled chunk, or a host loop for torch), and gets
back a `LoopResult`. Between chunks the host updates the bar and its postfix and, given a
`core.checkpoint.Checkpoint`, writes the state and the records so far; a resumed run passes
what it read back as ``state``, ``start`` and ``records``. Then:

* Ctrl-C returns what is done (``interrupted=True``, with a warning), or re-raises if nothing is
  (no chunk returned a record other than None);
* ``advance`` raising `Stop` (e.g. a non-finite objective) ends the run there, with its state;
* any other failure raises `SamplingError` whose ``partial`` is built from what was done.

Chunks are as long as `chunk_length` says: about `TARGET_CHUNKS` host round trips per run, every
chunk the same length where possible, so a compiled chunk is compiled once.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .errors import BayeskitError, SamplingError

TARGET_CHUNKS = 40  # host round trips per compiled run: enough for a smooth bar, negligible overhead


def chunk_length(total: int, target: int = TARGET_CHUNKS) -> int:
    """Steps per compiled chunk: a divisor of `total` near total/target if there is one
    (every chunk the same shape: one compilation), else total/target rounded up (the last
    chunk is shorter or padded)."""
    want = max(1, math.ceil(total / target))
    for length in range(want, 2 * want + 1):
        if total % length == 0:
            return length
    return want


class Stop(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by ``advance`` to end the run at step ``done`` with ``state`` (and a last ``record``)."""

    def __init__(self, state, done: int, record=None, reason: str = ""):
        super().__init__(reason)
        self.state, self.done, self.record, self.reason = state, done, record, reason


@dataclasses.dataclass
class LoopResult:
    state: Any
    records: list  # what each chunk returned, in order
    done: int  # steps completed, counting those before a resume
    interrupted: bool = False  # Ctrl-C
    stopped: Stop | None = None  # `advance` raised Stop


class Progress:
    """tqdm bars over consecutive phases (MCMC: warmup, then sampling); a no-op when disabled.

    ``phases`` is a list of (name, steps); ``update(done, postfix)`` takes the steps done over all phases.
    """

    def __init__(self, phases: Sequence[tuple[str, int]], enabled: bool = True, desc: str = "", initial: int = 0):
        self.phases = [(name, steps) for name, steps in phases if steps > 0] or [(phases[0][0], 0)]
        self.enabled, self.desc = enabled, desc
        self._bar, self._phase = None, -1
        self._initial = initial

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def update(self, done: int, postfix: str = "") -> None:
        if not self.enabled:
            return
        offset = 0
        for i, (name, steps) in enumerate(self.phases):
            last = i == len(self.phases) - 1
            if done < offset + steps or last:
                if i != self._phase:
                    self._open(i, name, steps)
                self._bar.n = min(done - offset, steps)
                if postfix:
                    self._bar.set_postfix_str(postfix, refresh=False)
                self._bar.refresh()
                return
            if i >= self._phase:  # a phase finished (at or between updates): show it complete
                if i != self._phase:
                    self._open(i, name, steps)
                self._bar.n = steps
                self._bar.refresh()
            offset += steps

    def _open(self, i: int, name: str, steps: int) -> None:
        from tqdm.auto import tqdm

        self.close()
        self._phase = i
        label = " ".join(s for s in (self.desc, name) if s)
        self._bar = tqdm(total=steps, desc=label, dynamic_ncols=True, leave=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def run(
    advance: Callable[[Any, int, int], tuple[Any, Any]],
    state,
    *,
    total: int,
    start: int = 0,
    records: Sequence = (),
    chunk: int | None = None,
    progress: bool = True,
    desc: str = "",
    phases: Sequence[tuple[str, int]] | None = None,
    postfix: Callable[[list, int], str] | None = None,
    on_chunk: Callable[[Any, int, list], None] | None = None,
    partial: Callable[[Any, list, int], Any] | None = None,
    what: str = "steps",
    checkpoint=None,
    snapshot: Callable[[Any], Any] | None = None,
) -> LoopResult:
    """Run steps ``start … total − 1`` of ``advance`` in chunks (see the module docstring).

    ``postfix(records, done)`` is shown beside the bar; ``on_chunk(state, done, records)`` runs after
    each chunk (checkpoints); ``partial(state, records, done)`` builds what a `SamplingError` carries
    when the run fails part-way (None: the error carries nothing). ``records`` are those of the
    chunks before a resume (from step ``start``). ``checkpoint`` (a `core.checkpoint.Checkpoint`)
    is written after each chunk with ``snapshot(state)`` (default: the state itself), the steps
    done and every record: chunk boundaries are the only points a run is saved at.
    """
    length = chunk or chunk_length(total)
    records: list = list(records)
    done = start
    result = LoopResult(state, records, done)
    with Progress(phases or [("", total)], progress, desc) as bar:
        bar.update(done)  # open the first bar now, so its clock includes compiling
        try:
            while done < total:
                stop = min(done + length, total)
                state, record = advance(state, done, stop)
                records.append(record)
                done = stop
                result.state, result.done = state, done
                bar.update(done, postfix(records, done) if postfix and progress else "")  # no bar: no postfix work
                if checkpoint is not None:
                    checkpoint.save(snapshot(state) if snapshot is not None else state, done, records)
                if on_chunk is not None:
                    on_chunk(state, done, records)
        except Stop as stop_signal:
            if stop_signal.record is not None:
                records.append(stop_signal.record)
            result.state, result.done, result.stopped = stop_signal.state, stop_signal.done, stop_signal
        except KeyboardInterrupt:
            if all(r is None for r in records):  # nothing kept yet (a record of None keeps nothing)
                raise
            result.interrupted = True
            warnings.warn(f"interrupted after {done - start} of {total - start} {what}; returning what was done",
                          stacklevel=3)
        except BayeskitError:
            raise
        except Exception as exc:
            if partial is None or not records:  # nothing done yet: the original error says most
                raise
            kept = partial(state, records, done)
            raise SamplingError(f"{desc or 'the run'} failed after {done} of {total} {what}: "
                                f"{type(exc).__name__}: {exc}", kept) from exc
    return result
