"""The study's Tune callback on the driver: Prometheus gauges through `ray.util.metrics`, and
the run folder's status.json for `tunepipe status`.

Ray drops a gauge series it has not seen set for two export intervals, so every live series is
set again at every step of Tune's loop, not only when its value changes.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from ray.tune import Callback

from tunepipe.monitoring import names
from tunepipe.monitoring.tracker import LIVE_STATES, STATUS_FILE, StudyTracker
from tunepipe_schedulers.reasons import STOP_REASONS

WRITE_EVERY_S = {True: 2.0, False: 15.0}  # status.json: local folder, remote URI


class StudyMonitor(Callback):
    """Feeds a StudyTracker from Tune's events; exports gauges (when `metrics`) and status.json."""

    def __init__(
        self, study: Any, loc: Any, n_trials: int, reasons: Any = None, metrics: bool = True
    ) -> None:
        self.tracker = StudyTracker(
            study.name, study.metric, study.mode, study.scheduler.max_epochs, n_trials
        )
        self.loc, self.reasons, self.metrics = loc, reasons, metrics
        self._gauges: dict[str, Any] | None = None
        self._written = 0.0
        self._logged: dict[str, dict] | None = None  # decisions.json, read once after a resume
        self._warned = False

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks into tuner.pkl; gauges and the engine's lookup stay behind.
        return {k: v for k, v in self.__dict__.items() if k not in ("_gauges", "reasons")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._gauges, self.reasons = None, None

    def setup(self, **info: Any) -> None:
        announce_dashboard()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.tracker.on_result(trial.trial_id, trial.config, result, time.time())

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.on_end(trial.trial_id, self._reason(trial))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.on_end(trial.trial_id, "error")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._sync(trials)
        now = time.time()
        if self.metrics:
            self._export(now)
        if now - self._written >= WRITE_EVERY_S[self.loc.is_local]:
            self._write(now)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._sync(trials)
        self.tracker.finished = True
        now = time.time()
        if self.metrics:
            self._export(now)
        self._write(now)

    def _sync(self, trials: list) -> None:
        """Tune's states; a trial that ended before a resume gets its reason here."""
        for t in trials:
            view = self.tracker.trials.get(t.trial_id)
            if t.status in ("TERMINATED", "ERROR") and (view is None or view.reason is None):
                self.tracker.on_end(t.trial_id, "error" if t.status == "ERROR" else self._reason(t))
        self.tracker.on_states({t.trial_id: t.status for t in trials})

    def _reason(self, trial: Any) -> str:
        """The trial's own stop_reason, else the scheduler's decision (this run's, or one logged
        in decisions.json before a resume), else "completed"."""
        reported = (trial.last_result or {}).get("stop_reason")
        if reported in STOP_REASONS:
            return reported
        if self.reasons is not None:
            return self.reasons(trial.trial_id)
        if self._logged is None:
            from tunepipe.engine.schedule import read_decisions

            self._logged = read_decisions(self.loc)
        reason = self._logged.get(trial.trial_id, {}).get("reason")
        return reason if reason in STOP_REASONS else "completed"

    def _write(self, now: float) -> None:
        """status.json; a storage hiccup costs the live view an update, not the study itself."""
        self._written = now
        try:
            self.loc.write_json(STATUS_FILE, self.tracker.snapshot(now))
        except OSError as e:
            if not self._warned:
                self._warned = True
                print(
                    f"warning: cannot write {STATUS_FILE} ({e}); `tunepipe status` lags",
                    file=sys.stderr,
                )

    def _export(self, now: float) -> None:
        gauges = self._gauges or self._make_gauges()
        t, study = self.tracker, self.tracker.study
        for trial_id, view in t.trials.items():
            if view.state not in LIVE_STATES:
                continue  # an ended trial's series ages out; Prometheus keeps its history
            tags = {"study": study, "trial": trial_id}
            for key, spec in names.TRIAL_METRICS.items():
                if key in view.last:
                    gauges[spec.name].set(view.last[key], tags=tags)
        for state, n in t.state_counts().items():
            gauges[names.TRIALS.name].set(n, tags={"study": study, "state": state})
        for reason, n in t.reasons.items():
            gauges[names.STOPS.name].set(n, tags={"study": study, "reason": reason})
        if t.best is not None:
            gauges[names.BEST.name].set(t.best[0], tags={"study": study, "metric": t.metric})
        rate = t.epochs_per_second(now)
        gauges[names.EPOCHS_PER_SECOND.name].set(rate, tags={"study": study})
        gauges[names.EPOCHS_DONE.name].set(t.epochs_done, tags={"study": study})

    def _make_gauges(self) -> dict[str, Any]:
        from ray.util.metrics import Gauge

        self._gauges = {
            m.name: Gauge(m.name, description=m.description, tag_keys=m.labels)
            for m in names.ALL_METRICS
        }
        return self._gauges


def study_monitor(study: Any, loc: Any, n_trials: int, reasons: Any) -> StudyMonitor:
    """The callback `tunepipe run` adds: metrics as the study's `monitoring:` section says."""
    return StudyMonitor(study, loc, n_trials, reasons=reasons, metrics=study.monitoring.metrics)


def announce_dashboard() -> None:
    """Say where the Ray dashboard is and how to log in (Ray's own line is silenced), and put the
    study dashboard beside Ray's Grafana dashboards in the session folder."""
    from tunepipe.monitoring.ray_dashboard import (
        dashboard_url,
        install_study_dashboard,
        login_hint,
        session_dir,
    )

    url = dashboard_url()
    if url:
        print(login_hint(url), file=sys.stderr, flush=True)
    try:
        install_study_dashboard(session_dir())
    except OSError as e:  # a read-only session folder: only the provisioned copy is missing
        print(f"warning: study dashboard not added to Ray's session folder: {e}", file=sys.stderr)
