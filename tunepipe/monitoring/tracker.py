"""What a running study looks like: a pure record the Tune callback feeds (no Ray, no torch).

The same snapshot becomes the study's Prometheus gauges and the run folder's status.json, which
`tunepipe status` reads.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from tunepipe_schedulers.reasons import STOP_REASONS

STATUS_FILE = "status.json"  # in the run folder; `tunepipe status` reads it
RATE_WINDOW_S = 60.0  # epochs per second are counted over the last minute
LIVE_STATES = ("PENDING", "RUNNING", "PAUSED")


@dataclass
class TrialView:
    state: str = "PENDING"
    epochs: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)  # latest reported values
    best: float | None = None  # best value of the study's metric
    reason: str | None = None  # set when it ended


class StudyTracker:
    """Trials, their latest values, stop reasons, the best so far and the epoch rate."""

    def __init__(self, study: str, metric: str, mode: str, max_epochs: int, n_trials: int) -> None:
        self.study, self.metric, self.mode = study, metric, mode
        self.max_epochs, self.n_trials = max_epochs, n_trials
        self.trials: dict[str, TrialView] = {}
        self.reasons: Counter[str] = Counter({r: 0 for r in STOP_REASONS})
        self.best: tuple[float, str, int] | None = None  # value, trial, epoch
        self.epochs_done = 0
        self._recent: deque[float] = deque()
        self.started = time.time()
        self.finished = False

    def trial(self, trial_id: str) -> TrialView:
        return self.trials.setdefault(trial_id, TrialView())

    def on_result(self, trial_id: str, config: dict, result: dict, now: float) -> None:
        view = self.trial(trial_id)
        view.state, view.config = "RUNNING", dict(config)
        for key, value in result.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                view.last[key] = float(value)
        if "epoch" in result:
            view.epochs = int(result["epoch"])
            self.epochs_done += 1
            self._recent.append(now)
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            if view.best is None or self._better(value, view.best):
                view.best = float(value)
            if self.best is None or self._better(value, self.best[0]):
                self.best = (float(value), trial_id, view.epochs)

    def on_end(self, trial_id: str, reason: str) -> None:
        view = self.trial(trial_id)
        if view.reason is None:
            self.reasons[reason] += 1
        view.reason = reason
        view.state = "ERROR" if reason == "error" else "TERMINATED"

    def on_states(self, states: dict[str, str]) -> None:
        for trial_id, state in states.items():
            view = self.trial(trial_id)
            if view.reason is None:  # an ended trial keeps its end
                view.state = state

    def epochs_per_second(self, now: float) -> float:
        while self._recent and self._recent[0] < now - RATE_WINDOW_S:
            self._recent.popleft()
        span = min(RATE_WINDOW_S, now - self.started)
        return len(self._recent) / span if span > 0 else 0.0

    def state_counts(self) -> dict[str, int]:
        counts = Counter(v.state for v in self.trials.values())
        return {
            s: counts.get(s, 0) for s in ("PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR")
        }

    def snapshot(self, now: float) -> dict[str, Any]:
        """status.json: everything `tunepipe status` shows (docs/monitoring.md)."""
        best = None
        if self.best is not None:
            value, trial_id, epoch = self.best
            config = self.trials[trial_id].config
            best = {"trial_id": trial_id, "value": value, "epoch": epoch, "config": config}
        return {
            "study": self.study,
            "metric": self.metric,
            "mode": self.mode,
            "max_epochs": self.max_epochs,
            "n_trials": self.n_trials,
            "started": self.started,
            "updated": now,
            "finished": self.finished,
            "states": self.state_counts(),
            "stop_reasons": {k: v for k, v in self.reasons.items() if v},
            "best": best,
            "epochs_done": self.epochs_done,
            "epochs_per_second": self.epochs_per_second(now),
            "trials": {
                tid: {"state": v.state, "epochs": v.epochs, "best": v.best, "reason": v.reason}
                for tid, v in self.trials.items()
            },
        }

    def _better(self, value: float, than: float) -> bool:
        return value < than if self.mode == "min" else value > than
