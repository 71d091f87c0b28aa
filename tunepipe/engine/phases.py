"""Where a `tunepipe run` spends its wall clock, phase by phase (summary.json's `phases`).

The clock starts when the process started (the interpreter and the imports before tunepipe's
own code ran are the first phase), not when `run_study` was called: what a user waits for is the
whole command. Importable without Ray or torch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# Phases in the order a run passes them; `interpreter` is what ran before the first mark.
PHASES = (
    "interpreter",
    "data",
    "ray_start",  # resume; `tunepipe run` starts Ray with the sanity stage beside it:
    "ray_start_and_sanity",
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
        self.beside: dict[str, float] = {}  # work run in a thread inside a phase, timed apart

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


def beside(fn: Callable[[], Any], name: str) -> Callable[[], tuple[Any, float]]:
    """Start fn() in a thread beside the caller; returns a join() that waits for it and gives
    (its result, its seconds), or raises its exception in the caller's thread (nothing is lost).
    """
    out: dict[str, Any] = {}

    def target() -> None:
        t0 = time.perf_counter()
        try:
            out["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised by join(), in the caller
            out["error"] = exc
        out["seconds"] = round(time.perf_counter() - t0, 3)

    thread = threading.Thread(target=target, name=f"tunepipe-{name}", daemon=True)
    thread.start()

    def join() -> tuple[Any, float]:
        thread.join()
        if "error" in out:
            raise out["error"]
        return out.get("result"), out["seconds"]

    return join
