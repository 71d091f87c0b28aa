"""Where a `tunepipe run` spends its wall clock, phase by phase (summary.json's `phases`).

The clock starts when the process started (the interpreter and the imports before tunepipe's
own code ran are the first phase), not when `run_study` was called: what a user waits for is the
whole command. Importable without Ray or torch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

# Phases in the order a run passes them; `interpreter` is what ran before the first mark.
PHASES = (
    "interpreter",
    "data",
    "ray_start",
    "sanity",
    "search",
    "outputs",
    "test",
    "report",
    "shutdown",
    "other",
)


def process_start() -> float:
    """This process's start as a time.time() value (psutil reads /proc); now if unknown."""
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # noqa: BLE001 - a platform psutil cannot read: count from now
        return time.time()


class PhaseClock:
    """Seconds per phase, measured with time.time() from the process's start.

    `phase(name)` times a block. The time before the first block is `interpreter` (Python,
    imports, reading the study file); time between later blocks is `other`, so the phases add up
    to the wall. `elapsed()` is the whole wall so far.
    """

    def __init__(self, start: float | None = None) -> None:
        self.start = process_start() if start is None else start
        self._last = self.start
        self.seconds: dict[str, float] = {}

    def _add(self, name: str) -> None:
        now = time.time()
        self.seconds[name] = self.seconds.get(name, 0.0) + max(now - self._last, 0.0)
        self._last = now

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._add("other" if self.seconds else "interpreter")
        try:
            yield
        finally:
            self._add(name)

    def elapsed(self) -> float:
        return max(time.time() - self.start, 0.0)

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.seconds.items()}
