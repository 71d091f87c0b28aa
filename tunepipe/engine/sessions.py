"""What a run folder records about how its study ran: where it came from (run.json), and the
sessions it ran in (a run, then each resume), so wall_seconds adds them all up.

Sessions are recorded in sessions.json when a session ends or is interrupted by a signal; a driver
killed outright (SIGKILL, a lost machine) cannot record its own, and is missing from the sum.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
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
    reasons = loc.read_json("summary.json").get("stop_reasons", {})
    if reasons.get("error") or reasons.get("unfinished"):
        return None  # resume retries errored trials, and goes on where a time budget ended
    return (
        f"{loc.display} holds a finished study; nothing was resumed or changed "
        f"(`tunepipe report {loc.display}` rewrites its report)"
    )


def run_record(study_dir: Path) -> dict[str, str]:
    """run.json: where the study's code and data are. A submitted job runs in a temporary copy
    of its folder on the head; the folder it was submitted from is the one to record."""
    from tunepipe.engine.jobs import SUBMITTED_FROM

    submitted = os.environ.get(SUBMITTED_FROM)
    if not submitted:
        return {"study_dir": str(study_dir)}
    return {"study_dir": submitted, "job_working_dir": str(study_dir)}


def recorded_study_dir(loc: Any, run_file: str) -> Path:
    """The folder run.json records, refused clearly when it is gone (never a silent fallback
    to the current folder, where the study's relative paths would mean something else)."""
    from tunepipe.errors import RunDirError

    recorded = loc.read_json(run_file).get("study_dir") if loc.exists(run_file) else None
    if not recorded:
        return Path.cwd()  # a run folder from before run.json: relative to where resume runs
    if Path(recorded).is_dir():
        return Path(recorded)
    raise RunDirError(
        f"{loc.display}: the study's folder {recorded} (from {run_file}) is not on this "
        "machine, and the study's data and code are read from it; pass --study-dir FOLDER "
        "holding the study's files"
    )
