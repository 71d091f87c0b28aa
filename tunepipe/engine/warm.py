"""The warm path: `tunepipe up` keeps a local Ray running, `tunepipe down` stops it.

`up` starts a detached holder process (`python -m tunepipe.engine.warm`) that starts Ray the way
`tunepipe run` does (token auth from tunepipe's own 0600 file, the dashboard on 127.0.0.1,
workers that preload torch) and then waits. Its address and pid go to a state file
(TUNEPIPE_WARM_STATE, default ~/.tunepipe/warm.json). While that holder lives, `tunepipe run`
joins its Ray instead of starting one: Ray's start-up and the workers' torch imports are paid once.

Each study is its own Ray job, and Ray gives every job its own worker processes, so a study never
runs in a worker that imported an earlier study's code. `down` sends the holder SIGTERM; it shuts
its Ray down and removes the state file. Only that holder is signalled, never Ray processes by
name. Importable without Ray (validate and --help never load it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tunepipe.errors import TunepipeError

DEFAULT_STATE = Path("~/.tunepipe/warm.json")


class WarmRayError(TunepipeError):
    """`tunepipe up` could not start the warm Ray (its log's last lines say why)."""


@dataclass(frozen=True)
class WarmRay:
    pid: int  # the holder process
    address: str  # Ray's GCS address, as ray.init(address=...) takes it
    dashboard: str | None
    num_cpus: float
    helper: str | None = None  # the holder's torch helper (engine/warm_helper.py): its socket
    key: str | None = None  # ... and the key it takes (hex)


def state_path() -> Path:
    """TUNEPIPE_WARM_STATE, else ~/.tunepipe/warm.json (tests point it at a temporary file)."""
    return Path(os.environ.get("TUNEPIPE_WARM_STATE") or DEFAULT_STATE).expanduser()


def current() -> WarmRay | None:
    """The warm Ray that `tunepipe up` left running, or None (a stale state file is removed)."""
    path = state_path()
    try:
        raw = json.loads(path.read_text())
        warm = WarmRay(
            int(raw["pid"]),
            str(raw["address"]),
            raw.get("dashboard"),
            raw["num_cpus"],
            raw.get("helper"),
            raw.get("key"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(warm.pid):
        path.unlink(missing_ok=True)  # its holder died (a reboot, a kill -9): nothing is up
        return None
    return warm


def up(num_cpus: int | None = None, timeout_s: float = 180.0) -> tuple[WarmRay, bool]:
    """Start the warm Ray unless one is up; returns (it, whether this call started it)."""
    found = current()
    if found is not None:
        return found, False
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.with_suffix(".log")
    cmd = [sys.executable, "-m", "tunepipe.engine.warm", str(path)]
    cmd += [str(num_cpus)] if num_cpus else []
    with open(log, "wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own module, our own interpreter
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the terminal that ran `tunepipe up`
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        warm = current()
        if warm is not None and warm.pid == proc.pid:
            return warm, True
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    if proc.poll() is None:
        proc.terminate()
    tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
    raise WarmRayError([f"the warm Ray did not start within {timeout_s:.0f} s; see {log}"] + tail)


def down(timeout_s: float = 60.0) -> WarmRay | None:
    """Stop the warm Ray (its holder shuts it down); returns what was stopped, None if none."""
    warm = current()
    if warm is None:
        return None
    os.kill(warm.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(warm.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(warm.pid):
        raise WarmRayError(f"the warm Ray's holder (pid {warm.pid}) did not stop in {timeout_s} s")
    state_path().unlink(missing_ok=True)
    return warm


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process (up() in tests) is not alive
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def serve(path: Path, num_cpus: int | None) -> None:
    """The holder: start Ray, publish its address in `path`, wait for SIGTERM/SIGINT."""
    import ray

    from tunepipe.engine.session import init_ray

    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: stop.append(s))
    init_ray(None, num_cpus=num_cpus)
    settled(os.getpid())  # `up` returns once its workers have imported torch, not before
    from tunepipe.engine.warm_helper import Helper

    helper = Helper()  # imports torch here too, for the studies' sanity checks and tests
    ctx = ray.get_runtime_context()
    from ray._private.worker import get_dashboard_url  # no public accessor in 2.60

    dashboard = get_dashboard_url() or None
    state = {
        "pid": os.getpid(),
        "address": ctx.gcs_address,
        "dashboard": f"http://{dashboard}" if dashboard else None,
        "num_cpus": ray.cluster_resources().get("CPU", 0),
        "helper": helper.address,
        "key": helper.key.hex(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds the helper's key
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(state))
    tmp.replace(path)  # atomic: a reader sees all of it or nothing
    try:
        while not stop:
            time.sleep(0.5)
    finally:
        path.unlink(missing_ok=True)
        helper.close()
        ray.shutdown()


def settled(
    root: int, quiet: float = 0.05, window: float = 0.5, timeout_s: float = 60.0
) -> float | None:
    """Wait until the Ray workers under `root` (the ones ray.init prestarted) have gone quiet:
    at least one, and under `quiet` CPU-seconds a second spent by them all over `window`
    seconds. Returns the seconds waited, None where /proc cannot tell (not Linux) or when
    `timeout_s` passed first.

    ray.init() returns while the workers it prestarted still import torch (preload_python_modules,
    about 3 s of CPU each on 2 cores): a study run right after `up` shared the CPUs with them (the
    warm row of time_to_quality.py measured that). Only the workers are watched: Ray's own
    processes keep using a few percent of a core while idle (0.075 CPU-s a second measured).
    """
    if not Path("/proc/self/stat").exists():
        return None
    t0 = time.monotonic()
    before = _workers_cpu(root)
    while time.monotonic() - t0 < timeout_s:
        time.sleep(window)
        now = _workers_cpu(root)
        if now[1] > 0 and now[0] - before[0] < quiet * window:
            return time.monotonic() - t0
        before = now
    return None


def _workers_cpu(root: int) -> tuple[float, int]:
    """(CPU-seconds used so far by the Ray workers under `root`, how many there are)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, cpu seconds)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    cpu, workers, todo = 0.0, 0, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:  # a worker renames itself ray::IDLE once it has connected
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"ray::IDLE") or b"default_worker.py" in cmd:
            cpu, workers = cpu + stats[pid][1], workers + 1
    return cpu, workers


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)
