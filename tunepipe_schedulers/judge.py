"""One decision per report for one trial, from the three playbook rules (no Ray, no torch).

`PlaybookJudge` holds every trial's rule state and answers `on_report` with a `Decision`:
continue, stop (with a `StopReason`), or decay the learning rate. Ray schedulers
(`tunepipe_schedulers.ray_asha`, `tunepipe_schedulers.ray_pbt`) translate that into
CONTINUE/STOP/PAUSE.

Priority when several rules object at once: divergence, then overfitting, then plateau; a
diverged trial's other numbers mean nothing.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tunepipe_schedulers.reasons import StopReason
from tunepipe_schedulers.rules import (
    DECAY_LR,
    DivergenceRule,
    DivergenceState,
    OverfittingRule,
    OverfittingState,
    PlateauRule,
    PlateauState,
    Verdict,
    as_loss,
    check_mode,
)

CONTINUE = "continue"
_MIN_POPULATION = 3  # first reports needed before their median serves as a reference loss


@dataclass(frozen=True)
class MetricKeys:
    """Where the judge finds its inputs in a result dict; users' trainables name them freely."""

    val_loss: str = "val_loss"
    train_loss: str = "train_loss"
    lr: str = "lr"


@dataclass(frozen=True)
class Decision:
    """The judge's answer for one report. `best_value` is in the metric's own units."""

    action: str = CONTINUE  # CONTINUE, STOP or DECAY_LR
    reason: StopReason | None = None
    detail: str = ""
    new_lr: float | None = None  # DECAY_LR: lr x factor, when the current lr is known
    factor: float | None = None
    best_epoch: int | None = None
    best_value: float | None = None


@dataclass
class TrialState:
    """Everything the judge remembers about one trial; `asdict` gives a plain dict."""

    divergence: DivergenceState = field(default_factory=DivergenceState)
    overfitting: OverfittingState = field(default_factory=OverfittingState)
    plateau: PlateauState = field(default_factory=PlateauState)
    best: float = math.inf  # loss units
    best_epoch: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # decays and the stop

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialState:
        """Rebuild a state written by `dataclasses.asdict` (e.g. read back from a result)."""
        return cls(
            divergence=DivergenceState(**data["divergence"]),
            overfitting=OverfittingState(**data["overfitting"]),
            plateau=PlateauState(**data["plateau"]),
            best=data["best"],
            best_epoch=data["best_epoch"],
            events=[dict(e) for e in data["events"]],
        )


class PlaybookJudge:
    """Per-trial playbook rules: divergence (P5), overfitting (P6, E1), plateau decay (P5, L1).

    Args:
        divergence, overfitting, plateau: the rules; `None` turns one off.
        keys: metric names in the trainable's result dict.
        mode: "min" when `keys.val_loss` is a loss (the default), "max" for a score.
        initial_loss: the loss before training (ln C for a classifier), in the metric's units;
            when unknown, the median of the trials' first reports serves, then the trial's own.
    """

    def __init__(
        self,
        divergence: DivergenceRule | None = DivergenceRule(),
        overfitting: OverfittingRule | None = OverfittingRule(),
        plateau: PlateauRule | None = PlateauRule(),
        keys: MetricKeys = MetricKeys(),
        mode: str = "min",
        initial_loss: float | None = None,
    ) -> None:
        check_mode(mode)
        self.divergence, self.overfitting, self.plateau = divergence, overfitting, plateau
        self.keys, self.mode = keys, mode
        self.lr_key = "lr"  # the config entry a decay scales (the scheduler's lr_config_key)
        self.initial_loss = None if initial_loss is None else as_loss(initial_loss, mode)
        self.states: dict[str, TrialState] = {}
        self._first_losses: list[float] = []  # sorted; finite first reports of all trials

    def rule_status(
        self, metric_names: Iterable[str], config: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """Which rules run given the metrics a trainable reports and, when given, a trial's
        config (a plateau decay scales its lr entry): {rule: "on" | "off: why"}."""
        names = set(metric_names)
        need = {
            "divergence": (self.divergence, [self.keys.val_loss]),
            "overfitting": (self.overfitting, [self.keys.val_loss, self.keys.train_loss]),
            "plateau": (self.plateau, [self.keys.val_loss]),
        }
        status = {}
        for rule, (obj, keys) in need.items():
            missing = [k for k in keys if k not in names]
            if obj is None:
                status[rule] = "off: disabled in the study"
            elif missing:
                status[rule] = f"off: no {', '.join(missing)} reported"
            else:
                status[rule] = "on"
        if status["plateau"] == "on" and config is not None and self.lr_key not in config:
            status["plateau"] = f"off: the trial config has no {self.lr_key!r} to decay"
        return status

    def reference_loss(self, state: TrialState) -> float | None:
        """The loss before training: given, else the population's median first report."""
        if self.initial_loss is not None:
            return self.initial_loss
        n = len(self._first_losses)
        if n >= _MIN_POPULATION:
            return self._first_losses[n // 2]
        return state.divergence.first

    def on_report(
        self,
        trial_id: str,
        epoch: int,
        metrics: Mapping[str, Any],
        lr: float | None = None,
        can_decay: bool = True,
    ) -> Decision:
        """Feed one report; returns the one decision for it. `lr` overrides `metrics[keys.lr]`;
        `can_decay` False (no lr in the trial's config) turns the plateau rule off: it counts
        and stops on decays, so it must never count one that was not applied."""
        state = self.states.get(trial_id)
        if state is None:
            state = self.states[trial_id] = TrialState()
        if self.keys.val_loss not in metrics:
            return Decision(best_epoch=state.best_epoch)
        val = as_loss(metrics[self.keys.val_loss], self.mode)
        if state.divergence.first is None and math.isfinite(val):
            bisect.insort(self._first_losses, val)
        verdict = self._verdict(state, epoch, val, metrics, can_decay)
        if val < state.best:
            state.best, state.best_epoch = val, epoch
        if verdict is None:
            return Decision(best_epoch=state.best_epoch)
        lr = metrics.get(self.keys.lr) if lr is None else lr
        return self._record(state, epoch, verdict, lr)

    def _verdict(
        self,
        state: TrialState,
        epoch: int,
        val: float,
        metrics: Mapping[str, Any],
        can_decay: bool = True,
    ) -> Verdict | None:
        verdict = None
        train = metrics.get(self.keys.train_loss)
        if self.divergence is not None:
            ref, ratio = self.reference_loss(state), metrics.get("update_ratio")
            raw_train = float(train) if isinstance(train, (int, float)) else None
            verdict = self.divergence.check(
                state.divergence, val, ref, self.initial_loss, ratio, train_loss=raw_train
            )
            dead = metrics.get("dead_relu")
            if verdict is not None and dead is not None and math.isfinite(dead) and dead > 0:
                detail = f"{verdict.detail}; {float(dead):.0%} of ReLU units dead"
                verdict = Verdict(verdict.action, verdict.reason, detail)
        if verdict is None and self.overfitting is not None and train is not None:
            train = as_loss(train, self.mode)
            verdict = self.overfitting.check(state.overfitting, epoch, val, train)
        if verdict is None and self.plateau is not None and can_decay:
            verdict = self.plateau.check(state.plateau, val)
        return verdict

    def _record(
        self, state: TrialState, epoch: int, verdict: Verdict, lr: float | None
    ) -> Decision:
        new_lr = lr * verdict.factor if verdict.action == DECAY_LR and lr is not None else None
        best_value = None if state.best_epoch is None else as_loss(state.best, self.mode)
        decision = Decision(
            action=verdict.action,
            reason=verdict.reason,
            detail=verdict.detail,
            new_lr=new_lr,
            factor=verdict.factor,
            best_epoch=state.best_epoch,
            best_value=best_value,
        )
        state.events.append(
            {
                "epoch": epoch,
                "action": verdict.action,
                "reason": None if verdict.reason is None else verdict.reason.value,
                "detail": verdict.detail,
                "new_lr": new_lr,
            }
        )
        return decision

    def lr_decays(self, trial_id: str) -> int:
        """How many times this trial's LR was decayed (results.parquet `lr_decays`)."""
        state = self.states.get(trial_id)
        return 0 if state is None else sum(e["action"] == DECAY_LR for e in state.events)

    def state_dict(self, trial_id: str) -> dict[str, Any]:
        """One trial's state as a plain dict, JSON-ready, to write into its results."""
        return asdict(self.states.get(trial_id) or TrialState())

    def load_state(self, trial_id: str, data: Mapping[str, Any]) -> None:
        """Restore one trial's state from `state_dict` output (resume, PBT exploit)."""
        self.states[trial_id] = TrialState.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Every trial's state plus the population of first reports."""
        return {
            "states": {t: asdict(s) for t, s in self.states.items()},
            "first_losses": list(self._first_losses),
        }

    def load_dict(self, data: Mapping[str, Any]) -> None:
        """Restore what `to_dict` wrote (rules and keys come from the constructor)."""
        self.states = {t: TrialState.from_dict(s) for t, s in data["states"].items()}
        self._first_losses = sorted(data["first_losses"])
