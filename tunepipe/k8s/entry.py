"""The RayJob's entrypoint: start the study, or continue it when a retried job finds it begun."""

from __future__ import annotations

from pathlib import Path

from tunepipe.engine.runner import STUDY_FILE, RunOutcome, resume_study, run_study
from tunepipe.storage import locate
from tunepipe.study import load_study


def run_or_resume(study_path: Path, storage: str, shared_storage: bool = False) -> RunOutcome:
    """Run the study into `storage`, or resume it if `<storage>/<name>` already holds it.

    A RayJob retried after a failure (backoffLimit) gets a fresh Ray cluster but the same shared
    storage: resuming keeps the finished trials and continues the rest from their checkpoints.
    """
    study = load_study(study_path)
    loc = locate(storage, study.name)
    if loc.exists(STUDY_FILE):
        return resume_study(loc.display, study_dir=study_path.parent, shared_storage=shared_storage)
    return run_study(
        study, study_dir=study_path.parent, storage=storage, shared_storage=shared_storage
    )
