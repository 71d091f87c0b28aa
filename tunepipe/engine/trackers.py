"""Experiment trackers (`trackers: [mlflow, wandb, tensorboard]`) through Ray's logger callbacks.

Each trial becomes one tracker run holding its config, every epoch's metrics, its stop reason and
its best checkpoint's path; the study's summary and report go to a parent run where the tracker
has one (MLflow), or to a run of its own in the study's group (W&B). Every tracker is configured by
its own environment variables, as its users expect (docs/trackers.md):

- MLflow: MLFLOW_TRACKING_URI (e.g. sqlite:///mlflow.db), MLFLOW_EXPERIMENT_NAME (default: the
  study's name), MLFLOW_TRACKING_TOKEN, ...
- W&B: WANDB_MODE (offline needs no account), WANDB_DIR, WANDB_PROJECT and WANDB_RUN_GROUP
  (default: the study's name), WANDB_ENTITY, WANDB_API_KEY.
- TensorBoard: event files in each trial's folder (`tensorboard --logdir RUN_DIR`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

from tunepipe.config import StudyConfig
from tunepipe.errors import TunepipeError
from tunepipe.storage import RunLocation

PACKAGES = {"mlflow": "mlflow", "wandb": "wandb", "tensorboard": "tensorboardX"}
STUDY_ROLE = "tunepipe.role"  # MLflow tag telling the study's parent run from trial runs
RUN_DIR_TAG = "tunepipe.run_dir"
OUTPUT_FILES = ("summary.json", "results.parquet", "history.parquet", "report.html")
# Tells tunepipe's W&B logging actor that a queue item is a trial's outcome, not a report.
OUTCOME_KEY = "__tunepipe_outcome__"

Outcome = Callable[[Any, bool], dict[str, Any]]  # (Ray Trial, failed) -> stop_reason, checkpoint


class TrackerError(TunepipeError):
    """A tracker the study names cannot be used as configured (package or credentials missing)."""


def check_trackers(study: StudyConfig) -> None:
    """Every tracker's package is installed and W&B can log (an account, or WANDB_MODE=offline)."""
    problems = [
        f"trackers: {name} needs the {package} package: pip install 'tunepipe[trackers]'"
        for name, package in PACKAGES.items()
        if name in study.active_trackers and importlib.util.find_spec(package) is None
    ]
    mode = os.environ.get("WANDB_MODE", "")
    if "wandb" in study.active_trackers and mode not in ("offline", "disabled", "dryrun"):
        if not os.environ.get("WANDB_API_KEY") and not _wandb_logged_in():
            problems.append(
                "trackers: wandb has no account to log to: set WANDB_API_KEY (or run "
                "`wandb login`), or WANDB_MODE=offline to write runs locally (`wandb sync` later)"
            )
    if problems:
        raise TrackerError(problems)


def _wandb_logged_in() -> bool:
    import netrc

    try:
        hosts = netrc.netrc().hosts
    except (OSError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)


def tracker_callbacks(study: StudyConfig, loc: RunLocation, outcome: Outcome) -> list[Any]:
    """Ray's JSON and CSV logs (the results tables are read from them) and the study's trackers.

    TensorBoard files are written only when asked: writing and flushing them on the driver at
    every report made the 32-trial digits search about 13% slower (7.6 s against 6.6 s, median
    of 3 runs of seed 1). Tune adds its own loggers unless TUNE_DISABLE_AUTO_CALLBACK_LOGGERS is
    set (tuner.fit sets it).
    """
    from tunepipe.engine.tune_logs import SessionCSVLogger, SessionJsonLogger

    check_trackers(study)
    callbacks: list[Any] = [SessionCSVLogger(), SessionJsonLogger()]
    for name in study.active_trackers:
        if name == "tensorboard":
            from ray.tune.logger import TBXLoggerCallback

            callbacks.append(TBXLoggerCallback())
        elif name == "mlflow":
            from tunepipe.engine.tracker_mlflow import mlflow_callback

            callbacks.append(mlflow_callback(study, loc, outcome))
        elif name == "wandb":
            from tunepipe.engine.tracker_wandb import wandb_callback

            callbacks.append(wandb_callback(study, outcome))
    return callbacks


def attach_study_outputs(study: StudyConfig, loc: RunLocation, summary: dict[str, Any]) -> None:
    """The study's summary and report onto its parent run (MLflow) or study run (W&B)."""
    if not loc.is_local:
        return  # the files live in remote storage; the trial runs already hold everything
    files = [f"{loc.path}/{name}" for name in OUTPUT_FILES if loc.exists(name)]
    if "mlflow" in study.active_trackers:
        from tunepipe.engine.tracker_mlflow import attach_to_parent

        attach_to_parent(study, loc, summary, files)
    if "wandb" in study.active_trackers:
        from tunepipe.engine.tracker_wandb import study_run

        study_run(study, summary, files)


def numeric_summary(summary: dict[str, Any]) -> dict[str, float]:
    """summary.json's numbers, for trackers whose metrics are numbers only."""
    out = {
        k: float(v)
        for k, v in summary.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    out.update({f"stop_reasons.{k}": float(v) for k, v in summary.get("stop_reasons", {}).items()})
    return out


class TrialOutcome:
    """How a trial ended, as results.parquet will say it: its stop reason (the rule of
    engine.results.decide_reason) and the path of its best checkpoint by the study's metric.
    A class, not a closure: Tune pickles the callbacks holding it into tuner.pkl for resume."""

    def __init__(self, study: StudyConfig, scheduler: Any) -> None:
        self.max_epochs = study.scheduler.max_epochs
        self.scheduler = scheduler

    def __call__(self, trial: Any, failed: bool) -> dict[str, Any]:
        from tunepipe.engine.results import decide_reason
        from tunepipe.engine.schedule import decision_dict

        last = trial.last_result or {}
        decisions = getattr(self.scheduler, "decisions", {})
        reason = decide_reason(  # the rule results.parquet uses: one stop reason everywhere
            last.get("stop_reason"),
            failed,
            decision_dict(decisions.get(trial.trial_id)),
            int(last.get("training_iteration") or 0) >= self.max_epochs,
        )
        return {"stop_reason": reason, "best_checkpoint": best_checkpoint_path(trial)}


def best_checkpoint_path(trial: Any) -> str | None:
    """The trial's best weights, as results.parquet names them: those tunepipe's trainable kept
    apart (best/), else the best checkpoint as Tune ranks them (CheckpointConfig's score), else
    its last."""
    from tunepipe.train.checkpoint import best_in

    storage = getattr(trial, "storage", None)
    if storage is not None:
        kept = best_in(storage.trial_fs_path, storage.storage_filesystem)
        if kept is not None:
            return kept
    manager = trial.run_metadata.checkpoint_manager
    best = manager.best_checkpoint_result or manager.latest_checkpoint_result
    return best.checkpoint.path if best is not None else None
