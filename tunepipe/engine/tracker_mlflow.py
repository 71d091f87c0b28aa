"""MLflow: one run per trial (Ray's MLflowLoggerCallback), nested under one parent run per study.

The parent run is found again by its tags (the run folder), so `tunepipe resume` keeps adding to
the same one. Where runs go is MLflow's own business: MLFLOW_TRACKING_URI, else MLflow's default.
"""

from __future__ import annotations

import os
from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback

from tunepipe.config import StudyConfig
from tunepipe.engine.trackers import (
    RUN_DIR_TAG,
    STUDY_ROLE,
    Outcome,
    TrackerError,
    numeric_summary,
)
from tunepipe.storage import RunLocation

PARENT_TAG = "mlflow.parentRunId"  # what MLflow's UI nests runs by


def experiment_name(study: StudyConfig) -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or study.name


class StudyMLflowCallback(MLflowLoggerCallback):
    """Ray's MLflow logger, plus the parent run, the stop reason and the best checkpoint."""

    def __init__(self, study: StudyConfig, loc: RunLocation, outcome: Outcome) -> None:
        self._study_tags = {"tunepipe.study": study.name, RUN_DIR_TAG: loc.display}
        super().__init__(experiment_name=experiment_name(study), tags=dict(self._study_tags))
        self._outcome = outcome
        self._study_name = study.name

    def setup(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().setup(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds; all mean "cannot log"
            raise TrackerError(
                f"trackers: mlflow cannot open its tracking store "
                f"({os.environ.get('MLFLOW_TRACKING_URI') or 'the default'}): "
                f"{type(exc).__name__}: {exc}. Set MLFLOW_TRACKING_URI, e.g. sqlite:///mlflow.db"
            ) from exc
        experiment = self.mlflow_util.experiment_id
        parent = parent_run_id(experiment, self._study_tags[RUN_DIR_TAG])
        if parent is None:
            client = self.mlflow_util._get_client()
            parent = client.create_run(
                experiment,
                run_name=self._study_name,
                tags={**self._study_tags, STUDY_ROLE: "study"},
            ).info.run_id
        self.tags[PARENT_TAG] = parent

    def log_trial_start(self, trial: Any) -> None:
        # Ray logs the config at every start, but a trial restarts after each pause (an LR decay,
        # a PBT exploit) with a changed config, and MLflow refuses a param's second value: the
        # params stay the sampled config, the lr actually used is the `lr` metric.
        if trial in self._trial_runs:
            return
        earlier = trial_run_id(self.tags[PARENT_TAG], trial.trial_id)
        if earlier is not None:  # `tunepipe resume`: the trial goes on in its own run
            self._trial_runs[trial] = earlier
            return
        super().log_trial_start(trial)
        run_id = self._trial_runs[trial]
        self.mlflow_util._get_client().set_tag(run_id, "trial_id", trial.trial_id)

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        # Ray's logger writes each metric in its own request (a transaction each, for a sqlite
        # store); one batch per report is the same data, about 20x faster (docs/trackers.md).
        import time

        from mlflow.entities import Metric
        from ray.air.constants import TRAINING_ITERATION
        from ray.tune.result import TIMESTEPS_TOTAL
        from ray.tune.utils import flatten_dict

        step = result.get(TIMESTEPS_TOTAL) or result[TRAINING_ITERATION]
        values = self.mlflow_util._parse_dict(flatten_dict(result))
        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in values.items()]
        self.mlflow_util._get_client().log_batch(self._trial_runs[trial], metrics=metrics)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        if trial in self._trial_runs:
            client = self.mlflow_util._get_client()
            for key, value in self._outcome(trial, failed).items():
                client.set_tag(self._trial_runs[trial], key, "" if value is None else str(value))
        super().log_trial_end(trial, failed)


def mlflow_callback(study: StudyConfig, loc: RunLocation, outcome: Outcome) -> Any:
    return StudyMLflowCallback(study, loc, outcome)


def parent_run_id(experiment_id: str, run_dir: str) -> str | None:
    """The study's parent run in `experiment_id`, found by its run folder tag; None if absent."""
    import mlflow

    runs = mlflow.MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"tags.`{STUDY_ROLE}` = 'study' and tags.`{RUN_DIR_TAG}` = '{run_dir}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def trial_run_id(parent_id: str, trial_id: str) -> str | None:
    """The run a trial logged to before (under the same parent run), or None."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.get_run(parent_id).info.experiment_id
    runs = client.search_runs(
        [experiment],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.trial_id = '{trial_id}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def attach_to_parent(
    study: StudyConfig, loc: RunLocation, summary: dict[str, Any], files: list[str]
) -> None:
    """The summary's numbers as the parent run's metrics, the best config as its tags (tags, not
    params: a resumed study may find another best, and params never change), and the output
    files (summary.json, tables, report.html) as its artifacts; then the run ends."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(experiment_name(study))
    parent = parent_run_id(experiment.experiment_id, loc.display) if experiment else None
    if parent is None:
        raise TrackerError(
            f"trackers: mlflow holds no parent run for {loc.display} in experiment "
            f"{experiment_name(study)!r}; was MLFLOW_TRACKING_URI changed during the study?"
        )
    client = mlflow.MlflowClient()
    for key, value in numeric_summary(summary).items():
        client.log_metric(parent, key, value)
    best = summary.get("best_config") or {}
    for key, value in best.items():
        client.set_tag(parent, f"best.{key}", str(value))
    client.set_tag(parent, "best_trial_id", str(summary.get("best_trial_id")))
    for path in files:
        client.log_artifact(parent, path)
    client.set_terminated(parent, "FINISHED")
