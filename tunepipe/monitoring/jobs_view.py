"""`tunepipe jobs status JOB`: the job's state, then the study view of its run folder.

`tunepipe submit` records in the job's metadata where the study's run folder is, as the cluster
sees it. When that folder is readable from here too (a URI, or a shared or same-host path), the
status view is read from it exactly as `tunepipe status` reads it.
"""

from __future__ import annotations

import os
from typing import Any

RUN_DIR_KEY = "tunepipe_run_dir"  # job metadata: the run folder as the cluster sees it


def job_metadata(study: Any, run_args: list[str]) -> dict[str, str]:
    """Metadata for a submitted study's job: its run folder, when a path outside the job's own
    temporary working directory names it (an absolute path or a URI)."""
    args = list(run_args)
    storage = args[args.index("--storage") + 1] if "--storage" in args[:-1] else study.storage
    if "://" not in storage and not os.path.isabs(os.path.expanduser(storage)):
        return {}  # relative: inside the job's unpacked working directory on some node
    return {RUN_DIR_KEY: f"{storage.rstrip('/')}/{study.name}"}


def job_view_lines(info: Any) -> list[str]:
    """The study view for a job (Ray's JobDetails), or a line saying why there is none."""
    from tunepipe.errors import TunepipeError
    from tunepipe.monitoring.status import read_status, status_lines

    run_dir = (getattr(info, "metadata", None) or {}).get(RUN_DIR_KEY)
    if not run_dir:
        return [
            "study view: not available (the job was submitted without an absolute --storage "
            "path or URI, so its run folder is inside the job's working directory)"
        ]
    try:
        import time

        return [f"run folder: {run_dir}", *status_lines(read_status(run_dir), time.time())]
    except (TunepipeError, OSError) as e:
        return [
            f"run folder: {run_dir} (not readable from here: {str(e)[:200]}); "
            f"run `tunepipe status {run_dir}` where it is"
        ]
