"""W&B: one run per trial (Ray's WandbLoggerCallback), grouped by study; a study run beside them.

W&B has no parent runs: the trials share a group (WANDB_RUN_GROUP, default the study's name) and
a run of job type "study" in that group holds the summary and the report. Ray logs each trial
from a logging actor in a worker process, which may have started before the user set WANDB_MODE
or WANDB_DIR, so those are handed to wandb.init as arguments rather than left to the environment.
"""

from __future__ import annotations

import os
from typing import Any

from ray.air.integrations.wandb import WandbLoggerCallback, _QueueItem, _WandbLoggingActor

from tunepipe.config import StudyConfig
from tunepipe.engine.trackers import OUTCOME_KEY, Outcome, TrackerError, numeric_summary

# wandb.init arguments read from the driver's environment (wandb.init's own names).
INIT_FROM_ENV = {"mode": "WANDB_MODE", "dir": "WANDB_DIR", "entity": "WANDB_ENTITY"}


def init_kwargs(study: StudyConfig) -> dict[str, Any]:
    kwargs = {arg: os.environ[var] for arg, var in INIT_FROM_ENV.items() if os.environ.get(var)}
    kwargs["project"] = os.environ.get("WANDB_PROJECT") or study.name
    kwargs["group"] = os.environ.get("WANDB_RUN_GROUP") or study.name
    if kwargs.get("dir"):
        os.makedirs(kwargs["dir"], exist_ok=True)  # wandb falls back to a temp folder otherwise
    return kwargs


class _OutcomeActor(_WandbLoggingActor):
    """Ray's logging actor; a trial's outcome goes to its run summary, not to its history."""

    def _handle_result(self, result: dict) -> tuple[dict, dict]:
        outcome = result.get(OUTCOME_KEY)
        if outcome is None:
            return super()._handle_result(result)
        self._wandb.run.summary.update(outcome["summary"])
        # The actor logs what this returns at this step: the last report's, so no row is added.
        step = outcome["step"]
        return ({"training_iteration": step} if step else {}), {}


class StudyWandbCallback(WandbLoggerCallback):
    """Ray's W&B logger, plus each trial's stop reason and best checkpoint in its run summary."""

    _logger_actor_cls = _OutcomeActor

    def __init__(self, study: StudyConfig, outcome: Outcome) -> None:
        kwargs = init_kwargs(study)
        super().__init__(project=kwargs.pop("project"), group=kwargs.pop("group"), **kwargs)
        self._outcome = outcome

    def setup(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().setup(*args, **kwargs)
        except ValueError as exc:  # Ray's word for "no API key" / "no project"
            raise TrackerError(f"trackers: wandb cannot log: {exc}") from exc

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        if trial in self._trial_queues:
            last = trial.last_result or {}
            item = {"summary": self._outcome(trial, failed), "step": last.get("training_iteration")}
            self._trial_queues[trial].put((_QueueItem.RESULT, {OUTCOME_KEY: item}))
        super().log_trial_end(trial, failed)


def wandb_callback(study: StudyConfig, outcome: Outcome) -> Any:
    return StudyWandbCallback(study, outcome)


def study_run(study: StudyConfig, summary: dict[str, Any], files: list[str]) -> None:
    """A run of job type "study" in the trials' group: the summary and the output files."""
    import wandb

    kwargs = init_kwargs(study)
    run = wandb.init(
        **kwargs,
        name=f"{study.name} (study)",
        job_type="study",
        config={"best_config": summary.get("best_config") or {}},
        reinit="create_new",
    )
    try:
        run.summary.update(
            {**numeric_summary(summary), "best_trial_id": str(summary.get("best_trial_id"))}
        )
        for path in files:
            run.save(path, base_path=os.path.dirname(path), policy="now")
    finally:
        run.finish()
