"""`budget.time` and `target:`: ending a study early, truthfully.

- Time: when the search of this `tunepipe run` (or of each `tunepipe resume`) has run for the
  budget, Tune is asked to stop the way SIGINT asks it (SIGUSR1: one last experiment snapshot),
  so every running trial stays resumable; tunepipe then writes the results and the report, marks
  those trials `unfinished` and exits 0, and `tunepipe resume` continues them. Ray's own
  `time_budget_s` can't serve: it marks the search finished, so nothing could be resumed.
- Target: once any trial reports a value at or beyond a `target:` entry, Tune stops every trial
  (its Stopper's stop_all) and no new trial starts; trials that were still running end with the
  stop reason `target`.
"""

from __future__ import annotations

import math
import signal
import time
from typing import Any

from ray.tune import Callback, Stopper

from tunepipe.config.search_checks import target_is_met
from tunepipe_schedulers.ray_asha import StopRecord
from tunepipe_schedulers.reasons import StopReason

LIVE = ("PENDING", "RUNNING", "PAUSED")


class StudyLimits(Callback, Stopper):
    """A Tune callback (time, the target's detection) and Stopper (the target's stop) in one."""

    def __init__(
        self, time_budget: float | None, target: dict[str, float] | None, scheduler
    ) -> None:
        self.time_budget, self.started, self.target = time_budget, time.monotonic(), target or {}
        self.scheduler = scheduler
        self.timed_out = False
        self.reached: tuple[str, str, float] | None = None  # (trial_id, metric, value)
        self.unfinished: list[str] = []

    def setup(self, **info: Any) -> None:
        # Each run or resume gets the budget afresh, counted from the start of its search (Tune
        # restores this object from tuner.pkl on resume, with the first session's clock).
        self.started, self.timed_out, self.unfinished = time.monotonic(), False, []

    # -- time
    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self.timed_out or self.time_budget is None:
            return
        if time.monotonic() - self.started >= self.time_budget:
            self.timed_out = True
            self.unfinished = [t.trial_id for t in trials if t.status in LIVE]
            signal.raise_signal(signal.SIGUSR1)  # Tune's graceful stop, as after SIGINT

    # -- target
    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        if self.reached is not None:
            return
        for name, goal in self.target.items():
            value = result.get(name)
            if isinstance(value, (int, float)) and math.isfinite(value):
                if target_is_met(name, value, goal):
                    self.reached = (trial.trial_id, name, float(value))
                    self._record_target(trials)
                    return

    def _record_target(self, trials: list) -> None:
        tid, name, value = self.reached
        detail = f"the study's target {name} {self.target[name]:g} was reached ({value:.4g}, {tid})"
        decisions = getattr(self.scheduler, "decisions", None)
        for t in trials:
            if t.status in LIVE and decisions is not None and t.trial_id not in decisions:
                decisions[t.trial_id] = StopRecord(StopReason.TARGET, detail, None)

    def __call__(self, trial_id: str, result: dict) -> bool:
        return self.reached is not None

    def stop_all(self) -> bool:
        return self.reached is not None

    def ended_by(self) -> str | None:
        """How the study ended early, for summary.json and the console; None: it didn't."""
        if self.reached is not None:
            tid, name, value = self.reached
            return f"target {name} {self.target[name]:g} reached by trial {tid} ({value:.4g})"
        if self.timed_out:
            return f"time budget of {self.time_budget:g} s reached; `tunepipe resume` continues it"
        return None

    def extra_decisions(self) -> dict[str, dict[str, Any]]:
        """Stop reasons for the outputs only: `unfinished` trials are resumable, so they are
        never logged in decisions.json as decided."""
        if not self.timed_out:
            return {}
        detail = f"the study's time budget ({self.time_budget:g} s) ran out; resumable"
        return {t: {"reason": "unfinished", "detail": detail} for t in self.unfinished}
