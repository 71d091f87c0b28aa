"""Ray's JSON and CSV trial logs, restored from storage only when this session has none.

Ray's loggers copy a trial's log back from storage whenever a trial with a checkpoint starts, for
a trial resumed by a new driver. A trial restarted in the same session (paused for a plateau
decay, then resumed) has its log here already, current, while storage holds it only as of the
last sync: with checkpoints written only where needed (docs/checkpoints.md), often not yet, and
Ray printed "Remote file not found" for every such trial; where storage had an older copy, Ray's
copy would replace the current local log (tests/test_ray_internals.py shows both). The local log
is kept as it is then; a new driver (`tunepipe resume`) has a new staging folder and restores
from storage as before.
Module-level classes: Tune pickles the callbacks into tuner.pkl for a resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback


class _InSession:
    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        if trial.local_path and Path(trial.local_path, file_name).exists():
            return  # restarted in this session: the local log is the current one
        super()._restore_from_remote(file_name, trial)  # type: ignore[misc]


class SessionCSVLogger(_InSession, CSVLoggerCallback):
    """Ray's progress.csv logger (see the module's text)."""


class SessionJsonLogger(_InSession, JsonLoggerCallback):
    """Ray's result.json logger (see the module's text)."""
