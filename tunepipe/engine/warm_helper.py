"""The warm Ray's torch helper: a study that joins `tunepipe up`'s Ray runs its sanity checks and
its test evaluation in the holder process, which imported torch once, at `up`.

Why: on a warm Ray, the driver imported torch (with torch._dynamo, which the first optimizer
imports) only for those two steps: 2.2 s of the 2.5 s the sanity stage took, before the first
trial. Other places were measured worse: a Ray task on the warm workers ran the checks in 0.2 s,
but the worker that ran it was not given to a trial actor afterwards (checked by pid), so one
trial booted a fresh worker and the search took 4 s longer; the painter process imports torch at
the same 2 s cost. The holder pays it once for every study.

The holder listens on a Unix socket in a 0700 folder of its own, with a random key that only the
0600 state file holds (`multiprocessing.connection`: authenticated, pickled calls). Only the two
named functions can be called, one at a time (torch's thread count is process-wide). Studies
with code of the user's never come here (the holder imports none of their folders), nor GPU
studies, nor data too large to send (`usable`); a helper that cannot be reached costs only
time: the caller runs the step itself (`call` raises HelperGone).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
import threading
from typing import Any

CALLS = {
    "sanity": ("tunepipe.playbook.sanity", "run_sanity"),
    "test": ("tunepipe.engine.outputs", "evaluate_test"),
}
DATA_LIMIT = 256 * 2**20  # bytes of prepared data worth sending to the holder


class HelperGone(Exception):
    """The holder's helper could not be reached (stopped, or from an older tunepipe)."""


class Helper:
    """In the holder: import torch and the callable steps, then answer calls in threads."""

    def __init__(self) -> None:
        from multiprocessing.connection import Listener

        for module, _ in CALLS.values():
            importlib.import_module(module)
        import torch._dynamo  # noqa: F401 - what the first optimizer imports (1 s)

        import tunepipe.train.loop  # noqa: F401 - torch, and the trainable's loop

        self.key = os.urandom(32)
        self.folder = tempfile.mkdtemp(prefix="tunepipe-warm-")  # 0700
        self.address = os.path.join(self.folder, "helper.sock")
        self._listener = Listener(self.address, family="AF_UNIX", authkey=self.key)
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="tunepipe-helper", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
            except OSError:  # closed: the holder is stopping
                return
            except Exception as exc:  # noqa: BLE001 - a caller with a wrong key, say; keep serving
                print(f"helper: refused a connection: {exc!r}", file=sys.stderr, flush=True)
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Any) -> None:
        with conn:
            try:
                name, args = conn.recv()
                module, attr = CALLS[name]
                fn = getattr(importlib.import_module(module), attr)
                with self._lock:
                    reply = ("ok", fn(*args))
            except Exception as exc:  # noqa: BLE001 - sent back and raised in the caller
                reply = ("error", exc)
            try:
                conn.send(reply)
            except Exception as exc:  # noqa: BLE001 - e.g. an exception that does not pickle
                conn.send(("error", RuntimeError(f"{reply[1]!r} (could not be sent: {exc!r})")))

    def close(self) -> None:
        self._listener.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def usable(warm: Any, study: Any, data: Any, paths: list[str]) -> bool:
    """Whether this study's sanity checks and test evaluation can run in the warm Ray's
    holder: it joins one that has a helper, runs no code of the user's, no GPU, and its data is
    small enough to send."""
    if warm is None or not getattr(warm, "helper", None):
        return False
    return local(study, data, paths)


def local(study: Any, data: Any, paths: list[str]) -> bool:
    """Whether another process that imports none of the user's folders can do this study's
    torch work: no code of the user's, no GPU, data small enough to send."""
    if paths or data is None or study.resources.gpu:
        return False
    splits = [s for s in (data.train, data.val, data.test) if s is not None]
    return sum(s.x.nbytes + s.y.nbytes for s in splits) <= DATA_LIMIT


def call(warm: Any, name: str, *args: Any) -> Any:
    """CALLS[name](*args) in the holder; its errors are raised here. HelperGone when the
    holder cannot be reached, so the caller runs the step itself."""
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Client

    try:
        conn = Client(warm.helper, family="AF_UNIX", authkey=bytes.fromhex(warm.key))
    except (OSError, EOFError, ValueError, AuthenticationError) as exc:
        raise HelperGone(str(exc) or type(exc).__name__) from exc
    with conn:
        try:
            conn.send((name, args))
            status, value = conn.recv()
        except (OSError, EOFError) as exc:
            raise HelperGone(str(exc)) from exc
    if status == "error":
        raise value
    return value


def calling(warm: Any, name: str, local: Any) -> Any:
    """A function that runs CALLS[name] in the holder, or `local` here if it is gone."""

    def run(*args: Any) -> Any:
        try:
            return call(warm, name, *args)
        except HelperGone as exc:
            print(f"note: the warm Ray's helper is gone ({exc}); running here", file=sys.stderr)
            return local(*args)

    return run
