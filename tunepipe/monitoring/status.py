"""`tunepipe status RUN_DIR`: a study's live view from the status.json its driver keeps writing.

The view is plain lines from pure functions over the snapshot (`status_lines`), so `tunepipe jobs
status` shows the same for a submitted study.
"""

from __future__ import annotations

import time
from typing import Any

from tunepipe.errors import RunDirError
from tunepipe.monitoring.tracker import LIVE_STATES, STATUS_FILE

STALE_S = 120.0  # a running study rewrites status.json every few seconds


def read_status(run_dir: str) -> dict[str, Any] | None:
    """The run folder's status snapshot; None while the study is still starting (sanity stage).

    Raises RunDirError when `run_dir` is not a tunepipe run folder.
    """
    from tunepipe.storage import locate_run_dir

    loc = locate_run_dir(run_dir)
    if loc.exists(STATUS_FILE):
        return loc.read_json(STATUS_FILE)
    if loc.exists("study.yaml") or loc.exists("sanity.json"):
        return None
    raise RunDirError(
        f"{loc.display} holds no {STATUS_FILE} or study.yaml, so it is not a tunepipe run folder "
        "(or its study has not started); give the run folder itself, <storage>/<study name>"
    )


def remaining_epochs(snap: dict[str, Any]) -> int:
    """Epochs the study may still run: each unfinished trial to its budget, and every trial not
    yet started in full. An upper bound: the scheduler stops most trials early."""
    budget = int(snap["max_epochs"])
    trials = snap["trials"].values()
    left = sum(max(0, budget - t["epochs"]) for t in trials if t["state"] in LIVE_STATES)
    return left + max(0, int(snap["n_trials"]) - len(snap["trials"])) * budget


def status_lines(snap: dict[str, Any] | None, now: float) -> list[str]:
    """The live view as lines of text."""
    if snap is None:
        return ["study starting: sanity checks run before the first trial"]
    states, ended = snap["states"], snap["states"]["TERMINATED"] + snap["states"]["ERROR"]
    age = now - snap["updated"]
    lines = [f"study {snap['study']}: {_phase(snap, age)}"]
    lines.append(
        f"trials: {states['RUNNING']} running, {states['PENDING']} pending, "
        f"{states['PAUSED']} paused, {ended} ended (of {snap['n_trials']})"
    )
    lines += _best_lines(snap)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(snap["stop_reasons"].items()))
    lines.append(f"stop reasons: {reasons or '—'}")
    lines.append(_epochs_line(snap))
    return lines


def _phase(snap: dict[str, Any], age: float) -> str:
    elapsed = _duration(snap["updated"] - snap["started"])
    if snap["finished"]:
        return f"finished after {elapsed}"
    if age > STALE_S:
        return (
            f"no update for {_duration(age)}: its driver may have stopped "
            "(`tunepipe resume RUN_DIR` continues it)"
        )
    return f"running for {elapsed}"


def _best_lines(snap: dict[str, Any]) -> list[str]:
    best = snap.get("best")
    if best is None:
        return [f"best {snap['metric']}: — (no trial has reported yet)"]
    config = ", ".join(f"{k}={_fmt(v)}" for k, v in best["config"].items())
    return [
        f"best {snap['metric']}: {best['value']:.4g} (trial {best['trial_id']}, "
        f"epoch {best['epoch']})",
        f"best config: {config or '—'}",
    ]


def _epochs_line(snap: dict[str, Any]) -> str:
    left, rate = remaining_epochs(snap), snap["epochs_per_second"]
    line = f"epochs: {snap['epochs_done']} done, at most {left} remaining"
    if snap["finished"]:
        return f"epochs: {snap['epochs_done']} done"
    if rate > 0:
        return line + f" at {rate:.2f}/s; ETA at most {_duration(left / rate)}"
    return line + "; ETA — (no epoch in the last minute)"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def show_status(run_dir: str, watch: bool = False, interval: float = 2.0) -> None:
    """Print the view once, or with `watch` redraw it every `interval` s until the study ends."""
    if not watch:
        print("\n".join(status_lines(read_status(run_dir), time.time())))
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console()
    with Live(console=console, auto_refresh=False) as live:
        while True:
            snap = read_status(run_dir)
            live.update(Text("\n".join(status_lines(snap, time.time()))), refresh=True)
            if snap is not None and snap["finished"]:
                return
            time.sleep(interval)
