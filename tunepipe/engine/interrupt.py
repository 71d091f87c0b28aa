"""Stopping a study gracefully on SIGINT or SIGTERM, leaving it resumable.

Ray Tune 2.60 catches SIGINT itself (unless TUNE_DISABLE_SIGINT_HANDLER=1) and SIGUSR1 always:
either sets an event that ends the tuning loop after one last experiment snapshot, and `fit()`
then *returns* as if the study had ended. SIGTERM, which `ray job stop`, Kubernetes and most
schedulers send, it leaves to Python's default: the driver dies at once, between snapshots.

So tunepipe takes over SIGINT and SIGTERM while Tune runs: the first one is recorded and passed
on to Tune as SIGUSR1 (its own graceful stop), and the caller learns afterwards that the run was
interrupted, and by which signal. A second signal stops at once (KeyboardInterrupt), skipping
Tune's last snapshot, as Tune's own handler does.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tunepipe.errors import TunepipeError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(TunepipeError):
    """The study was stopped by a signal; its run folder can be resumed. Exit 128 + signal."""

    def __init__(self, signum: int, run_dir: str) -> None:
        self.signum = signum
        self.exit_code = 128 + signum  # the shell's convention: 130 SIGINT, 143 SIGTERM
        name = signal.Signals(signum).name
        super().__init__(
            f"interrupted by {name}; the study is saved and resumable: tunepipe resume {run_dir}"
        )


@contextmanager
def graceful_signals() -> Iterator[list[int]]:
    """While inside, SIGINT/SIGTERM stop Tune gracefully; yields the list of signals received.

    Outside the main thread (a driver in a thread, as in tests) Python cannot install handlers;
    then nothing changes and the list stays empty.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: object) -> None:
        if received or not callable(signal.getsignal(signal.SIGUSR1)):
            # A second signal, or Tune's loop has not started: stop now.
            received.append(signum)
            raise KeyboardInterrupt
        received.append(signum)
        signal.raise_signal(signal.SIGUSR1)  # Tune's handler: end after a last snapshot

    saved = {s: signal.getsignal(s) for s in (*SIGNALS, signal.SIGUSR1)}
    saved_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    # Tune's SIGINT handler would swallow the signal without telling us it came.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    for s in SIGNALS:
        signal.signal(s, handler)
    try:
        yield received
    finally:
        for s, h in saved.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        if saved_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = saved_env
