"""The study metrics tunepipe exports, with their labels (docs/monitoring.md lists them too).

Ray exports a metric created as `ray.util.metrics.Gauge("tunepipe_trial_val_loss", ...)` as
`ray_tunepipe_trial_val_loss` on each node's metrics port, with its own labels added (SessionName,
NodeAddress, ...). Everything here is plain data so the dashboards and docs never drift from the
callback that sets the values.
"""

from __future__ import annotations

from dataclasses import dataclass

RAY_PREFIX = "ray_"  # what Ray puts before every application metric it exports


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as given to ray.util.metrics (Prometheus sees RAY_PREFIX + name)
    description: str
    labels: tuple[str, ...]

    @property
    def prom_name(self) -> str:
        return RAY_PREFIX + self.name


TRIAL_LABELS = ("study", "trial")

# Per-trial values from each trial's latest report: key in the report -> metric.
TRIAL_METRICS: dict[str, MetricSpec] = {
    "val_loss": MetricSpec(
        "tunepipe_trial_val_loss", "the trial's latest validation loss", TRIAL_LABELS
    ),
    "train_loss": MetricSpec(
        "tunepipe_trial_train_loss", "the trial's latest training loss", TRIAL_LABELS
    ),
    "lr": MetricSpec("tunepipe_trial_lr", "the trial's current learning rate", TRIAL_LABELS),
    "epoch": MetricSpec("tunepipe_trial_epoch", "epochs the trial has finished", TRIAL_LABELS),
}
TRIALS = MetricSpec(
    "tunepipe_trials",
    "trials in each Tune state (PENDING, RUNNING, PAUSED, TERMINATED, ERROR)",
    ("study", "state"),
)
STOPS = MetricSpec(
    "tunepipe_stops",
    "trials ended so far, by stop reason (the closed set of docs/stop-reasons.md; 0 until one)",
    ("study", "reason"),
)
BEST = MetricSpec(
    "tunepipe_best",
    "the best value of the study's metric reported so far (label metric: its name)",
    ("study", "metric"),
)
EPOCHS_PER_SECOND = MetricSpec(
    "tunepipe_epochs_per_second",
    "epochs reported per second by all trials together, over the last minute",
    ("study",),
)
EPOCHS_DONE = MetricSpec(
    "tunepipe_epochs_done", "epochs reported so far by all trials together", ("study",)
)

ALL_METRICS: tuple[MetricSpec, ...] = (
    *TRIAL_METRICS.values(),
    TRIALS,
    STOPS,
    BEST,
    EPOCHS_PER_SECOND,
    EPOCHS_DONE,
)
TRIAL_STATES = ("PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR")
