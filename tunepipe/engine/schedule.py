"""The study's Ray scheduler, recording why it stopped each trial (stop reasons)."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from tunepipe.config import StudyConfig


class RecordingASHA(AsyncHyperBandScheduler):
    """Ray's ASHA, unchanged, plus a record of the trials it stopped (stop reason `pruned`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decisions: dict[str, dict[str, Any]] = {}

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and trial.trial_id not in self.decisions:
            self.decisions[trial.trial_id] = {
                "reason": "pruned",
                "epoch": result.get("training_iteration"),
            }
        return action


class RecordingFIFO(FIFOScheduler):
    def __init__(self) -> None:
        super().__init__()
        self.decisions: dict[str, dict[str, Any]] = {}


def build_scheduler(study: StudyConfig) -> TrialScheduler:
    """ASHA (default) or FIFO, over `training_iteration` (one per epoch) up to max_epochs."""
    s = study.scheduler
    if s.kind == "fifo":
        return RecordingFIFO()
    return RecordingASHA(
        time_attr="training_iteration",
        max_t=s.max_epochs,
        grace_period=s.grace_period,
        reduction_factor=s.reduction_factor,
    )
