"""The playbook's stopping and decay rules, over plain floats (house style 1: no Ray, no torch).

Every rule reads a *loss* (playbook P3: the loss moves smoothly where accuracy jumps). A rule's
``mode`` says which way its input is better: ``"min"`` for a loss, ``"max"`` for a score whose
negation is a loss (a log-likelihood, ``-val_loss``). The sign is flipped once, by `as_loss`, so
that each rule is written once, in loss units; thresholds (``abs_limit``, ``min_delta``) are in
those loss units too.

A rule is a frozen dataclass of parameters; the per-trial memory it needs is a separate small
dataclass (`DivergenceState`, ...) so that a judge can keep thousands of them, write them into
trial results as plain dicts, and restore them on resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tunepipe_schedulers.reasons import StopReason

MODES = ("min", "max")
STOP = "stop"
DECAY_LR = "decay_lr"


def as_loss(value: float, mode: str) -> float:
    """The value in loss units: unchanged for ``mode="min"``, negated for ``"max"``."""
    return float(value) if mode == "min" else -float(value)


def check_mode(mode: str) -> None:
    """Raise a ValueError naming the accepted modes when `mode` is neither."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not valid: use 'min' (a loss) or 'max' (a score)")


@dataclass(frozen=True)
class Verdict:
    """What one rule says about one report; `None` from a rule means "no objection"."""

    action: str  # STOP or DECAY_LR
    reason: StopReason | None
    detail: str
    factor: float | None = None  # the LR multiplier of a DECAY_LR verdict


def _positive(name: str, value: float | int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or not value > 0:
        raise ValueError(f"{name}={value!r} is not valid: it must be > 0")


# --- divergence (P5) --------------------------------------------------------------------------


@dataclass
class DivergenceState:
    """Per-trial memory of `DivergenceRule`."""

    first: float | None = None  # first finite loss reported: the fallback reference
    prev: float | None = None
    rising: int = 0  # consecutive steep rises
    reports: int = 0
    lowest: float = math.inf
    lowest_train: float = math.inf  # a net lowering its training loss is learning (or overfitting)
    peak_update_ratio: float | None = None  # the largest ||dw|| / ||w|| reported (L1)


@dataclass(frozen=True)
class DivergenceRule:
    """Stop a trial whose loss explodes (playbook P5: too large a learning rate).

    Fires on a non-finite loss; on a loss above ``k`` × the reference loss (the loss before
    training, e.g. ln C for a C-class classifier at a sane init, else the first report); above
    ``abs_limit``; or after ``rising_reports`` consecutive reports each at least ``steep_ratio``
    times the one before. The k × reference test is why Adam at lr 10 (finite losses near 1e5 that
    later fall) counts as divergence at its first report.

    A net that learned nothing diverged too: when the chance-level loss (the loss before
    training) is known and the loss never fell below it in ``stall_reports`` reports, or in two
    reports while the update ratio ``||dw|| / ||w||`` went above ``stall_update_ratio`` (L1:
    healthy is near 1e-3), the learning rate killed it (SGD at lr 10 leaves dead ReLUs and a
    val loss at chance for every later epoch).
    """

    k: float = 10.0  # a sane net never sits 10x above its untrained loss
    abs_limit: float | None = None  # off: loss scales differ between tasks
    rising_reports: int = 3  # one noisy rise is normal; three steep ones in a row are not
    steep_ratio: float = 1.5
    stall_reports: int | None = 3  # a sane net at chance falls below it in its first epoch
    stall_update_ratio: float = 0.1  # 100x the healthy 1e-3 (L1)

    def __post_init__(self) -> None:
        if not self.k > 1:
            raise ValueError(f"divergence.k={self.k!r} is not valid: it must be > 1")
        _positive("divergence.abs_limit", self.abs_limit, allow_none=True)
        _positive("divergence.rising_reports", self.rising_reports)
        _positive("divergence.stall_reports", self.stall_reports, allow_none=True)
        _positive("divergence.stall_update_ratio", self.stall_update_ratio)
        if not self.steep_ratio > 1:
            raise ValueError(f"divergence.steep_ratio={self.steep_ratio!r}: it must be > 1")

    def check(
        self,
        state: DivergenceState,
        loss: float,
        reference: float | None = None,
        chance: float | None = None,
        update_ratio: float | None = None,
        train_loss: float | None = None,
    ) -> Verdict | None:
        """Update `state` with `loss` (loss units) and say whether the trial diverged.

        `chance` is the loss before training when it is known (not a population's guess);
        `update_ratio` the trial's ||dw|| / ||w|| when it reports one; `train_loss` its training
        loss: a net whose training loss falls below `chance` is not dead, even when its
        validation loss never does (that is overfitting, the overfitting rule's business).
        """
        if not math.isfinite(loss):
            return Verdict(STOP, StopReason.DIVERGED, f"loss is {loss} (P5: lower the LR)")
        if state.first is None:
            state.first = loss
        if train_loss is not None and math.isfinite(train_loss):
            state.lowest_train = min(state.lowest_train, train_loss)
        stalled = self._stalled(state, loss, chance, update_ratio)
        if stalled is not None:
            return stalled
        ref = reference if reference is not None else state.first
        if ref > 0 and loss > self.k * ref:
            return Verdict(
                STOP, StopReason.DIVERGED, f"loss {loss:.4g} > {self.k:g} x initial {ref:.4g}"
            )
        if self.abs_limit is not None and loss > self.abs_limit:
            return Verdict(
                STOP, StopReason.DIVERGED, f"loss {loss:.4g} > abs_limit {self.abs_limit:g}"
            )
        steep = state.prev is not None and loss - state.prev > (self.steep_ratio - 1) * abs(
            state.prev
        )
        state.rising = state.rising + 1 if steep else 0
        state.prev = loss
        if state.rising >= self.rising_reports:
            return Verdict(
                STOP,
                StopReason.DIVERGED,
                f"loss rose >{self.steep_ratio:g}x for {state.rising} reports in a row",
            )
        return None

    def _stalled(
        self, state: DivergenceState, loss: float, chance: float | None, ratio: float | None
    ) -> Verdict | None:
        state.reports += 1
        state.lowest = min(state.lowest, loss)
        if ratio is not None and math.isfinite(ratio):
            state.peak_update_ratio = max(state.peak_update_ratio or 0.0, ratio)
        if chance is None or self.stall_reports is None or state.lowest < chance:
            return None
        if state.lowest_train < chance:  # it learns the training set: not a dead net
            return None
        wild = (state.peak_update_ratio or 0.0) > self.stall_update_ratio
        if state.peak_update_ratio is not None and not wild:
            # Updates of a healthy or tiny size: a rate too low (the plateau rule's business)
            # or a hard problem, not a rate that blew the net up.
            return None
        if state.reports < self.stall_reports and not (wild and state.reports >= 2):
            return None
        detail = (
            f"nothing learned: loss never fell below the loss before training {chance:.4g} "
            f"in {state.reports} reports (lowest {state.lowest:.4g})"
        )
        if wild:
            detail += (
                f"; update ratio reached {state.peak_update_ratio:.3g}, far above the "
                "healthy 1e-3 (L1)"
            )
        return Verdict(STOP, StopReason.DIVERGED, detail + " (P5: lower the LR)")


# --- overfitting (P6, E1) ---------------------------------------------------------------------


@dataclass
class OverfittingState:
    """Per-trial memory of `OverfittingRule`."""

    best: float = math.inf
    best_epoch: int | None = None
    train_at_best: float | None = None
    since_best: int = 0
    seen: int = 0


@dataclass(frozen=True)
class OverfittingRule:
    """Stop a trial that has started to overfit (playbook P6, E1: stop early).

    Fires, once ``min_epochs`` reports have been seen, when the validation loss has made no new
    best for ``patience`` reports while the training loss kept falling (below its value at the best
    epoch), or when the relative gap ``(val - train) / train`` exceeds ``max_gap``. The best epoch
    is remembered so the engine keeps that checkpoint.
    """

    patience: int = 10  # epochs; the case study used 200 over thousands of epochs
    max_gap: float | None = None  # off: dropout makes train loss > val loss legitimately
    min_epochs: int = 5  # early curves are noisy

    def __post_init__(self) -> None:
        _positive("overfitting.patience", self.patience)
        _positive("overfitting.max_gap", self.max_gap, allow_none=True)
        if self.min_epochs < 0:
            raise ValueError(f"overfitting.min_epochs={self.min_epochs!r}: it must be >= 0")

    def check(
        self, state: OverfittingState, epoch: int, val: float, train: float
    ) -> Verdict | None:
        """Update `state` with one report (loss units) and say whether the trial overfits."""
        state.seen += 1
        if val < state.best:
            state.best, state.best_epoch, state.train_at_best = val, epoch, train
            state.since_best = 0
        else:
            state.since_best += 1
        if state.seen < self.min_epochs:
            return None
        falling = state.train_at_best is not None and train < state.train_at_best
        if state.since_best >= self.patience and falling:
            return Verdict(
                STOP,
                StopReason.OVERFITTING,
                f"val loss no better than {state.best:.4g} (epoch {state.best_epoch}) for "
                f"{state.since_best} reports while train loss fell to {train:.4g}",
            )
        if self.max_gap is not None and train > 0 and (val - train) / train > self.max_gap:
            return Verdict(
                STOP,
                StopReason.OVERFITTING,
                f"val/train gap {(val - train) / train:.3g} > max_gap {self.max_gap:g}",
            )
        return None


# --- plateau: decay, then stop (P5, L1) -------------------------------------------------------


@dataclass
class PlateauState:
    """Per-trial memory of `PlateauRule`."""

    best: float = math.inf
    since_best: int = 0
    decays: int = 0


@dataclass(frozen=True)
class PlateauRule:
    """Decay the learning rate when the loss stops falling; stop after ``max_decays`` decays.

    Playbook P5 ("when the loss stops falling at the current rate, lower it") and L1 (decay by
    0.1, 0.3 or 0.5 when validation stops improving). An improvement must beat the best loss by
    ``min_delta`` (relative to the best when ``relative``, as torch's ReduceLROnPlateau does, so
    that one default suits losses of 2.3 and of 0.001). The patience counter restarts after a decay.
    """

    patience: int = 5
    min_delta: float = 1e-3
    relative: bool = True
    factor: float = 0.5  # L1: 0.5, 0.3 or 0.1; the gentlest by default
    max_decays: int = 3

    def __post_init__(self) -> None:
        _positive("plateau.patience", self.patience)
        if not 0 < self.factor < 1:
            raise ValueError(f"plateau.factor={self.factor!r}: it must lie in (0, 1), e.g. 0.5")
        if self.min_delta < 0 or self.max_decays < 0:
            raise ValueError("plateau.min_delta and plateau.max_decays must be >= 0")

    def improved(self, best: float, loss: float) -> bool:
        """Whether `loss` beats `best` by the required margin (loss units)."""
        if math.isinf(best):
            return loss < best
        margin = self.min_delta * abs(best) if self.relative else self.min_delta
        return loss < best - margin

    def check(self, state: PlateauState, loss: float) -> Verdict | None:
        """Update `state` with `loss` and say decay, stop, or nothing."""
        if self.improved(state.best, loss):
            state.best, state.since_best = loss, 0
            return None
        state.since_best += 1
        if state.since_best < self.patience:
            return None
        if state.decays < self.max_decays:
            state.decays += 1
            state.since_best = 0  # give the new rate a full patience window
            return Verdict(
                DECAY_LR,
                None,
                f"no improvement for {self.patience} reports: LR x {self.factor:g} "
                f"(decay {state.decays}/{self.max_decays})",
                factor=self.factor,
            )
        return Verdict(
            STOP,
            StopReason.PLATEAU,
            f"no improvement for {self.patience} reports after {state.decays} LR decays",
        )
