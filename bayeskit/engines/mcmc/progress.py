"""Progress bars for warmup and sampling, driven from the host between compiled chunks.

All chains advance in lockstep inside one compiled chunk, so one bar per phase is exact
whatever the number of chains or devices; the sampling bar also counts divergences.
"""

from __future__ import annotations


class Progress:
    """Two tqdm bars (warmup, then sampling); a no-op when ``enabled`` is False."""

    def __init__(self, warmup: int, draws: int, chains: int, enabled: bool, desc: str = ""):
        self.warmup, self.draws, self.chains, self.enabled = warmup, draws, chains, enabled
        self.desc = desc
        self._bar = None
        self._phase = None
        self.divergences = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _open(self, phase: str, total: int):
        from tqdm.auto import tqdm

        self.close()
        self._phase = phase
        label = f"{self.desc} {phase}".strip()
        self._bar = tqdm(total=total, desc=label, unit="it", dynamic_ncols=True, leave=True)
        self._bar.set_postfix_str(f"{self.chains} chains", refresh=False)

    def update(self, done: int, divergences: int = 0) -> None:
        """`done`: steps completed by every chain so far (warmup and sampling together)."""
        if not self.enabled:
            return
        if self.warmup and done <= self.warmup and self._phase in (None, "warmup"):
            if self._phase is None:
                self._open("warmup", self.warmup)
            self._bar.n = done
            self._bar.refresh()
            if done < self.warmup:
                return
            done = self.warmup  # warmup complete: start the sampling bar's clock now
        if self._phase != "sampling":
            self._open("sampling", self.draws)
        self._bar.n = done - self.warmup
        self.divergences = divergences
        self._bar.set_postfix_str(f"{self.chains} chains, {divergences} divergences", refresh=False)
        self._bar.refresh()

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
