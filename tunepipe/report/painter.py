"""A second process that draws pictures beside this one, for `tunepipe run` and `resume`.

matplotlib holds the GIL while it draws, so a thread does not draw in parallel with anything
Python does. The report's pictures took about 1.8 s one after the other at the end of every
study, with the machine's other core idle (Ray was shutting down, mostly waiting); the sanity
stage's two plots, drawn in a thread beside the search, took the driver's GIL from Tune's loop
while trials waited on it. A painter is one spawned process (a fresh interpreter: no fork of a
process running Ray's threads) that imports matplotlib as soon as it starts, then draws the
sanity plots during the search and half of the report while this process draws the other half.

`painting()` makes one for the duration of a command; `current()` is what the sanity stage and
the report draw with (None: draw here, as library callers and most tests do). A painter that
died is no loss: what it was to draw is drawn here instead (`Painter.run`).

A painter needs a core to spare. Its start (a fresh interpreter importing matplotlib: 1.7 s of
CPU) falls in Ray's start and the sanity stage, which keep two cores busy, and every core runs a
trial during the search. On the 2-core machine `benchmarks/time_to_quality.py` runs on, once the
pictures cost half as much (style.Margins), a cold digits study took 18.64 s with a painter and
17.89 s without (medians of 3 interleaved runs each, seed 3), so below MIN_CPUS `painting()`
makes none and everything is drawn in the command's process.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

_current: Painter | None = None
MIN_CPUS = 3  # a machine with fewer has no core to spare for a painter (see above)


class Painter:
    """One spawned process, started at once, that runs picklable drawing functions."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_start
        )
        self._started = self._pool.submit(_pid)  # starts it now: it imports while we wait

    def pid(self) -> int:
        """The painter process's pid (once it has started)."""
        return self._started.result()

    def run(self, fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        """Start fn(*args) in the painter; the returned wait() gives its result (or raises its
        error). A painter that died (killed, out of memory) costs only time: wait() then
        computes fn(*args) here."""
        try:
            future: Future | None = self._pool.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError):  # broken or shut down already
            future = None

        def wait() -> Any:
            if future is not None:
                try:
                    return future.result()
                except BrokenProcessPool as exc:
                    print(f"note: the painter process died ({exc}); drawing here", file=sys.stderr)
            return fn(*args)

        return wait

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def current() -> Painter | None:
    return _current


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's or taskset's share)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def painting(enabled: bool | None = None) -> Iterator[Painter | None]:
    """A painter for the block (current() inside it), closed after it. None, and everything is
    drawn in this process, when `enabled` is False: by default on fewer than MIN_CPUS CPUs."""
    global _current
    if not (enabled if enabled is not None else usable_cpus() >= MIN_CPUS):
        yield None
        return
    painter, before = Painter(), _current
    _current = painter
    try:
        yield painter
    finally:
        _current = before
        painter.close()


def _start() -> None:
    # Ctrl+C reaches the whole process group; the command handles it (a study stops gracefully,
    # its sanity plots still written), so the painter must not die of it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A command killed outright (SIGKILL) never closes its pool, and a pool's process waits for
    # work forever: the painter leaves with the process that started it.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    import tunepipe.playbook.output  # noqa: F401 - the sanity plots
    import tunepipe.report.html  # noqa: F401 - the report's pictures (matplotlib, numpy, pyarrow)


def _exit_with(sentinel: int) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])
    os._exit(0)


def _pid() -> int:
    return os.getpid()
