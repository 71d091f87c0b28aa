"""Replay learning curves through the playbook rules and ASHA's promotions, without Ray running.

Curves are synthetic (`synthetic_curves`: good, bad, diverging, overfitting and plateauing trials
from a seeded generator) or recorded (`read_history`: a run's history.parquet). `simulate` feeds
them, epoch by epoch, to a `PlaybookASHA` through fake trials, `concurrency` trials at a time, and
returns each trial's outcome and the epochs spent: what a scheduler setting would have cost and
which trials it would have kept. A decayed trial's recorded curve cannot change, so a replay
counts decays but keeps reading the same curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunepipe_schedulers.reasons import StopReason

KINDS = ("good", "bad", "diverging", "overfitting", "plateauing")
Curve = dict[str, list[float]]  # train_loss, val_loss, lr: one value per epoch


def _curve(kind: str, epochs: int, rng: np.random.Generator) -> Curve:
    t = np.arange(1, epochs + 1, dtype=float)
    start, floor, rate = math.log(10), rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.2)
    train = floor + (start - floor) * np.exp(-rate * t)
    val = train * rng.uniform(1.05, 1.2)
    if kind == "bad":
        train = train + rng.uniform(0.8, 1.5)
        val = train * 1.1
    elif kind == "diverging":  # Adam at lr 10: finite losses near 1e5 that later fall
        val = train = 1e5 * np.exp(-0.3 * t) + 1.0
    elif kind == "overfitting":
        turn = rng.integers(epochs // 5, epochs // 2)
        val = val + np.where(t > turn, 0.02 * (t - turn), 0.0)
    elif kind == "plateauing":
        stall = rng.integers(3, 8)
        train = np.where(t > stall, train[stall - 1], train)
        val = train * 1.1
    val = val * np.exp(rng.normal(0, 0.01, epochs))  # measurement noise
    return {"train_loss": train.tolist(), "val_loss": val.tolist(), "lr": [0.01] * epochs}


def synthetic_curves(
    n: int, epochs: int, seed: int, mix: Mapping[str, float] | None = None
) -> dict[str, Curve]:
    """`n` seeded curves of `epochs` reports, kinds drawn with weights `mix` (default equal)."""
    mix = dict(mix or {k: 1.0 for k in KINDS})
    unknown = set(mix) - set(KINDS)
    if unknown:
        raise ValueError(f"mix has unknown kinds {sorted(unknown)}: use {KINDS}")
    rng = np.random.default_rng(seed)
    kinds = list(mix)
    p = np.array([mix[k] for k in kinds], dtype=float)
    drawn = rng.choice(len(kinds), size=n, p=p / p.sum())
    return {f"{kinds[k]}-{i}": _curve(kinds[k], epochs, rng) for i, k in enumerate(drawn)}


def read_history(path: str) -> dict[str, Curve]:
    """Curves recorded by a run: history.parquet (trial_id, epoch, train_loss, val_loss, lr)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["trial_id", "epoch", "train_loss", "val_loss", "lr"])
    rows = sorted(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True),
                  key=lambda r: (str(r[0]), r[1]))  # fmt: skip
    curves: dict[str, Curve] = {}
    for trial_id, _epoch, train, val, lr in rows:
        curve = curves.setdefault(str(trial_id), {"train_loss": [], "val_loss": [], "lr": []})
        nan = math.nan
        curve["train_loss"].append(nan if train is None else train)
        curve["val_loss"].append(nan if val is None else val)
        curve["lr"].append(nan if lr is None else lr)
    return curves


class FakeTrial:
    """The few Trial attributes the schedulers use."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id, self.config, self.status = trial_id, {"lr": 0.01}, "RUNNING"

    def set_config(self, config: dict) -> None:
        self.config = config


@dataclass
class Outcome:
    """How one trial ended in the replay."""

    reason: StopReason
    epochs: int
    detail: str = ""
    lr_decays: int = 0


@dataclass
class SimResult:
    """Per-trial outcomes and the epochs the whole study spent."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)

    @property
    def total_epochs(self) -> int:
        return sum(o.epochs for o in self.outcomes.values())

    def count(self, reason: StopReason) -> int:
        """How many trials ended for `reason`."""
        return sum(o.reason is reason for o in self.outcomes.values())


def simulate(
    curves: Mapping[str, Curve], make_scheduler: Callable[[], Any], concurrency: int = 4
) -> SimResult:
    """Replay `curves` through a fresh scheduler (e.g. ``lambda: PlaybookASHA(...)``)."""
    sched, result = make_scheduler(), SimResult()
    pending, running = list(curves), {}
    while pending or running:
        while pending and len(running) < concurrency:
            trial = FakeTrial(pending.pop(0))
            sched.on_trial_add(None, trial)
            running[trial.trial_id] = (trial, 0)
        for trial_id, (trial, done) in list(running.items()):
            outcome = _step(sched, trial, curves[trial_id], done)
            running[trial_id] = (trial, done + 1)
            if outcome is not None:
                result.outcomes[trial_id] = outcome
                del running[trial_id]
    return result


def _step(sched: Any, trial: FakeTrial, curve: Curve, done: int) -> Outcome | None:
    """Report epoch `done + 1`; return the outcome if the trial ends."""
    epoch, n = done + 1, len(curve["val_loss"])
    report = {"training_iteration": epoch, **{k: v[done] for k, v in curve.items()}}
    action = sched.on_trial_result(None, trial, report)
    decays = sched.judge.lr_decays(trial.trial_id) if hasattr(sched, "judge") else 0
    if action == "STOP":
        record = getattr(sched, "decisions", {}).get(trial.trial_id)
        reason = record.reason if record else StopReason.PRUNED
        return Outcome(reason, epoch, record.detail if record else "", decays)
    if epoch >= n:
        return Outcome(StopReason.COMPLETED, epoch, "curve ended", decays)
    trial.status = "RUNNING"  # a PAUSE for an LR decay resumes at once in a replay
    return None
