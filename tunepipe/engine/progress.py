"""A compact rich progress view instead of Ray's log wall, driven from the main thread.

Tune calls a Callback's hooks from its control loop, which runs in the thread that called
`Tuner.fit()` (the main thread), so the Live view refreshes there; no extra thread.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

from ray.tune import Callback
from rich.console import Console
from rich.live import Live
from rich.table import Table


class ProgressView(Callback):
    """Trials finished/running, best metric so far, elapsed time, stop reasons."""

    def __init__(
        self,
        metric: str,
        mode: str,
        total: int,
        reasons: Any = None,
        console: Console | None = None,
    ) -> None:
        self.metric, self.mode, self.total = metric, mode, total
        self.reasons = reasons  # callable(trial) -> its stop reason, the one results.parquet holds
        self.console = console or Console(stderr=True)
        self.best: float | None = None
        self.best_trial: str | None = None
        self.done: Counter[str] = Counter()
        self.counted: set[str] = set()  # trials in `done`: each once, across a resume too
        self.running = 0
        self.start = time.monotonic()
        self._live: Live | None = None
        self._last = 0.0

    def __getstate__(self) -> dict:
        # Tune pickles the run config (tuner.pkl) for resume; a console and a live view are
        # process-local, and a restored run starts a fresh view.
        # `done` is recounted from the restored trials (a snapshot's count is stale).
        skip = ("console", "_live", "reasons", "done", "counted")
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.console, self._live, self.reasons = Console(stderr=True), None, None
        self.done, self.counted, self.start = Counter(), set(), time.monotonic()

    def setup(self, **info: Any) -> None:
        if self.console.is_terminal:
            self._live = Live(
                self._table(), console=self.console, auto_refresh=False, transient=False
            )
            self._live.start()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        value = result.get(self.metric)
        if (
            isinstance(value, (int, float))
            and math.isfinite(value)
            and (
                self.best is None
                or (value < self.best if self.mode == "min" else value > self.best)
            )
        ):
            self.best, self.best_trial = float(value), trial.trial_id

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._count(trial)
        if not self.console.is_terminal:  # logs and CI: one line per finished trial
            self.console.print(self._line(trial))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._count(trial)
        if not self.console.is_terminal:
            self.console.print(self._line(trial) + " (its traceback is in its folder)")

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        # A resumed study: the trials that ended before count too, so the counter reaches N/N.
        for t in trials:
            if t.status in ("TERMINATED", "ERROR") and t.trial_id not in self.counted:
                self._count(t)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.running = sum(1 for t in trials if t.status == "RUNNING")
        now = time.monotonic()
        if self._live is not None and now - self._last > 0.25:
            self._last = now
            self._live.update(self._table(), refresh=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._live is not None:
            self._live.update(self._table(), refresh=True)
            self._live.stop()

    def _count(self, trial: Any) -> None:
        if trial.trial_id not in self.counted:
            self.counted.add(trial.trial_id)
            self.done[self._reason(trial)] += 1

    def _reason(self, trial: Any) -> str:
        return self.reasons(trial) if self.reasons else "completed"

    def _line(self, trial: Any) -> str:
        best = f"{self.best:.4g}" if self.best is not None else "—"
        return (
            f"[{sum(self.done.values())}/{self.total}] trial {trial.trial_id} "
            f"{self._reason(trial)}; best {self.metric} so far {best}"
        )

    def _table(self) -> Table:
        finished = sum(self.done.values())
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_row("trials", f"{finished}/{self.total} finished, {self.running} running")
        best = f"{self.best:.4g} ({self.best_trial})" if self.best is not None else "—"
        table.add_row(f"best {self.metric}", best)
        table.add_row(
            "stop reasons", ", ".join(f"{k} {v}" for k, v in sorted(self.done.items())) or "—"
        )
        table.add_row("elapsed", f"{time.monotonic() - self.start:.0f} s")
        return table


class RuleNotice(Callback):
    """Says once, at the first report, which playbook rules are off and why (a rule whose input
    metric the trainable does not report cannot run; silence would look like protection)."""

    def __init__(self, judge: Any, console: Console | None = None) -> None:
        self.judge = judge
        self.console = console or Console(stderr=True)
        self.said = False

    def __getstate__(self) -> dict:
        return {"judge": None, "said": self.said}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.console = Console(stderr=True)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if self.said or self.judge is None:
            return
        self.said = True
        for rule, status in self.judge.rule_status(result, result.get("config", {})).items():
            if status != "on":
                self.console.print(f"note: playbook rule {rule} is {status}")


def live_reason(scheduler: Any, trial: Any) -> str:
    """The reason the progress line prints: decided as results.parquet's (one truth)."""
    from tunepipe.engine.results import decide_reason
    from tunepipe.engine.schedule import decision_dict

    reported = (trial.last_result or {}).get("stop_reason")
    decision = decision_dict(scheduler.decisions.get(trial.trial_id))
    return decide_reason(reported, trial.status == "ERROR", decision)


def reconnect_progress(callbacks: list | None, scheduler: Any) -> None:
    """A progress view restored from tuner.pkl asks the restored scheduler, as a new one does."""
    for cb in callbacks or []:
        if isinstance(cb, ProgressView):
            cb.reasons = lambda trial: live_reason(scheduler, trial)
