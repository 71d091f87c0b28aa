"""The end of a run, off its critical path: the report is drawn while Ray shuts down.

Drawing the report (matplotlib, a few seconds) and stopping an embedded Ray (waiting for its
processes to exit) used to run one after the other, the report inside the study's wall and the
shutdown at interpreter exit, after it. Ray's shutdown is mostly waiting, so the two overlap.
"""

from __future__ import annotations

import time
from typing import Any

from tunepipe.engine.phases import beside


def finish_overlapped(run_dir: Any, started_ray: bool, warm: bool = False) -> dict[str, float]:
    """Write run_dir's report (None: no report, e.g. a URI run folder) in a thread while this
    process disconnects from the Ray it started (`started_ray`); returns each one's seconds.
    On the warm Ray of `tunepipe up` (`warm`), idle workers are then started for the next study
    (ray_private.worker_prestarter): after the report, so their imports do not slow it down.

    An error in the report is raised here, after the shutdown, not lost in the thread.
    """
    seconds: dict[str, float] = {}
    join = beside(lambda: _report(run_dir), "report") if run_dir is not None else None
    prestart = None
    if warm:
        from tunepipe.engine.ray_private import worker_prestarter

        prestart = worker_prestarter()
    if started_ray:
        t0 = time.perf_counter()
        from tunepipe.engine.ray_private import shutdown_embedded

        shutdown_embedded()
        seconds["shutdown"] = round(time.perf_counter() - t0, 3)
    if join is not None:
        seconds["report"] = join()[1]
    if prestart is not None:
        prestart()
    return seconds


def _report(run_dir: Any) -> None:
    from tunepipe.report import write_report

    write_report(run_dir)
