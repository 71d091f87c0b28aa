"""A second process beside `tunepipe run` and `resume`: it draws pictures and, when forked, does
the command's torch work too.

matplotlib holds the GIL while it draws, so a thread does not draw in parallel with anything
Python does: the sanity stage's two plots, drawn in a thread beside the search, took the
driver's GIL from Tune's loop, and the report's pictures were drawn one after the other at the
end of every study while the machine's other core waited for Ray's shutdown. A painter draws the
sanity plots during the search and half of the report while this process draws the other half.

**Forked, it also runs the sanity checks and the test evaluation** (`torch_work`). On a cold
study the command imported torch only for those two (with torch._dynamo, which the first
optimizer imports: 2 s of CPU), in a thread beside Ray's start: that thread took the GIL from
`ray.init` and the CPUs from Ray's processes and the workers importing torch, so the workers the
first trials run in started later. `tunepipe run` forks its painter first thing, before Ray,
torch or any other Python thread exists (`can_fork`): a copy of this process, so it costs no
interpreter start, and the command itself never imports torch. Its background work (imports,
checks, sanity plots) runs at a lower priority (`NICE`), so Ray's start and the trials take the
CPUs first; what the command waits for at the end (the test evaluation, its share of the report)
runs at the normal one. Digits, cold, seed 3, 3 interleaved runs each: the workers prestarted
at 4.6-5.7 s of the command instead of 6.5-6.9 s, the first epoch at 8.4-9.4 s instead of
10.0-10.4 s (docs/speed.md).

**Spawned** (a fresh interpreter) where a fork is not safe: only on MIN_CPUS or more, since its
start (an interpreter importing matplotlib: 1.7 s of CPU) falls in Ray's start and the sanity
stage, which keep two cores busy (a cold digits study took 18.64 s with one and 17.89 s without
on 2 cores, medians of 3 interleaved runs); it draws only, as importing torch there would cost
what it saves.

`painting()` makes one for the duration of a command; `current()` is what the sanity stage, the
test evaluation and the report use (None: everything here, as library callers and most tests
do). A painter that died is no loss: what it was to do is done here instead (`Painter.run`).
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
MIN_CPUS = 3  # a machine with fewer has no core to spare for a spawned painter (see above)
NICE = 10  # the background work's niceness: Ray's start and the trials first (docs/speed.md)


class Painter:
    """One process, started at once, that runs picklable functions: forked when `fork` (it then
    does the torch work too: `torch_work`), else spawned."""

    def __init__(self, fork: bool = False) -> None:
        self.torch_work = fork
        self._pool = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("fork" if fork else "spawn"),
            initializer=_start,
        )
        self._started = self._pool.submit(_pid)  # starts it now: it imports while we wait

    def pid(self) -> int:
        """The painter process's pid (once it has started)."""
        return self._started.result()

    def run(
        self, fn: Callable[..., Any], *args: Any, background: bool = False
    ) -> Callable[[], Any]:
        """Start fn(*args) in the painter; the returned wait() gives its result (or raises its
        error). `background`: at the lower priority (NICE), for work nothing waits on yet. A
        painter that died (killed, out of memory) costs only time: wait() then computes
        fn(*args) here."""
        try:
            future: Future | None = (
                self._pool.submit(_niced, fn, *args) if background else self._pool.submit(fn, *args)
            )
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
    """A painter for the block (current() inside it), closed after it: forked where that is safe
    (`can_fork`), else spawned. None, and everything is done in this process, when `enabled` is
    False: by default when it could only be spawned, on fewer than MIN_CPUS CPUs."""
    global _current
    fork = can_fork()
    if not (enabled if enabled is not None else fork or usable_cpus() >= MIN_CPUS):
        yield None
        return
    painter, before = Painter(fork=fork), _current
    _current = painter
    try:
        yield painter
    finally:
        _current = before
        painter.close()


def can_fork() -> bool:
    """Whether a fork of this process is safe: Linux, no Python thread but this one, and neither
    Ray (its threads, gRPC's) nor torch (its thread pools, CUDA) imported yet. Native threads of
    numpy's or pyarrow's pools are no obstacle: their libraries handle a fork."""
    if not sys.platform.startswith("linux") or {"ray", "torch", "grpc"} & set(sys.modules):
        return False
    return threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()


def lower_priority() -> None:
    """Lower the calling thread's priority to NICE (Linux schedules threads one by one; a thread
    started by it inherits it). Raising a niceness needs no privilege. Elsewhere a niceness is
    the whole process's, so nothing changes there."""
    if sys.platform.startswith("linux"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


def _niced(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in a thread at the lower priority; its result, or its error raised here."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            lower_priority()
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=target, name="tunepipe-painter-background")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _start() -> None:
    # Ctrl+C reaches the whole process group; the command handles it (a study stops gracefully,
    # its sanity plots still written), so the painter must not die of it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A command killed outright (SIGKILL) never closes its pool, and a pool's process waits for
    # work forever: the painter leaves with the process that started it.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    _niced(_imports)  # beside Ray's start: at the lower priority


def _imports() -> None:
    import tunepipe.playbook.output  # noqa: F401 - the sanity plots
    import tunepipe.report.html  # noqa: F401 - the report's pictures (matplotlib, numpy, pyarrow)


def import_torch_work() -> None:
    """Import what the sanity checks and the test evaluation need (run it in the background
    first: the test evaluation is waited for, and a study whose sanity result was reused runs no
    check that would import it earlier)."""
    import torch._dynamo  # noqa: F401 - what the first optimizer imports (1 s)

    import tunepipe.engine.outputs  # noqa: F401 - the test evaluation
    import tunepipe.playbook.sanity  # noqa: F401 - the checks
    import tunepipe.train.loop  # noqa: F401


def _exit_with(sentinel: int) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])
    os._exit(0)


def _pid() -> int:
    return os.getpid()
