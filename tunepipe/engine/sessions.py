"""The sessions a study ran in (a run, then each resume), so wall_seconds adds them all up.

Recorded in the run folder's sessions.json when a session ends or is interrupted by a signal; a
driver killed outright (SIGKILL, a lost machine) cannot record its own, and is missing from the
sum.
"""

from __future__ import annotations

import time
from typing import Any

SESSIONS_FILE = "sessions.json"


def read_sessions(loc: Any) -> list[dict[str, Any]]:
    return (
        list(loc.read_json(SESSIONS_FILE).get("sessions", [])) if loc.exists(SESSIONS_FILE) else []
    )


def record_session(loc: Any, kind: str, seconds: float, ended: str) -> float:
    """Add one session (kind: run or resume; ended: finished or the signal's name); returns the
    study's wall seconds over every recorded session."""
    sessions = read_sessions(loc) + [
        {
            "kind": kind,
            "ended": ended,
            "seconds": round(seconds, 2),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    ]
    loc.write_json(SESSIONS_FILE, {"sessions": sessions})
    return sum(float(s["seconds"]) for s in sessions)


def finished_note(loc: Any) -> str | None:
    """What `resume` says of a study that ended (summary.json) with no errored trial to retry;
    None when there is something to resume."""
    if not loc.exists("summary.json"):
        return None
    if loc.read_json("summary.json").get("stop_reasons", {}).get("error"):
        return None  # resume retries the errored trials
    return (
        f"{loc.display} holds a finished study; nothing was resumed or changed "
        f"(`tunepipe report {loc.display}` rewrites its report)"
    )
