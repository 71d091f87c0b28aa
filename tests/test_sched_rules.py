"""Three-line tests of the pure playbook rules, each for mode="min" and mode="max"."""

import math

import pytest

from tunepipe_schedulers.judge import CONTINUE, MetricKeys, PlaybookJudge
from tunepipe_schedulers.reasons import StopReason
from tunepipe_schedulers.rules import (
    DECAY_LR,
    STOP,
    DivergenceRule,
    OverfittingRule,
    PlateauRule,
)

MODES = ["min", "max"]


def sign(mode: str) -> float:
    return 1.0 if mode == "min" else -1.0


def judge(mode: str, **rules) -> PlaybookJudge:
    """A judge with only the given rules on (others None)."""
    kw = {"divergence": None, "overfitting": None, "plateau": None, **rules}
    return PlaybookJudge(mode=mode, **kw)


def feed(j: PlaybookJudge, mode: str, val: list[float], train: list[float] | None = None):
    """Report a loss curve (given in loss units) to trial "t"; returns the decisions."""
    out = []
    for i, v in enumerate(val):
        metrics = {"val_loss": sign(mode) * v, "lr": 0.1}
        if train is not None:
            metrics["train_loss"] = sign(mode) * train[i]
        out.append(j.on_report("t", i + 1, metrics))
    return out


def first_stop(decisions) -> tuple[int, object] | None:
    for i, d in enumerate(decisions):
        if d.action != CONTINUE:
            return i + 1, d
    return None


# --- divergence -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_divergence_fires_on_nan(mode):
    ds = feed(judge(mode, divergence=DivergenceRule()), mode, [2.3, 2.0, math.nan])
    assert first_stop(ds)[0] == 3 and ds[2].reason is StopReason.DIVERGED


@pytest.mark.parametrize("mode", MODES)
def test_divergence_adam_lr10_fires_within_three_reports_given_initial_loss(mode):
    j = PlaybookJudge(mode=mode, initial_loss=sign(mode) * math.log(10))
    ds = feed(j, mode, [8e4, 1.2e5, 9e4, 4e3, 50.0])
    assert first_stop(ds)[0] <= 3 and first_stop(ds)[1].reason is StopReason.DIVERGED


@pytest.mark.parametrize("mode", MODES)
def test_divergence_uses_population_when_initial_loss_unknown(mode):
    j = judge(mode, divergence=DivergenceRule())
    for t in "abc":
        j.on_report(t, 1, {"val_loss": sign(mode) * 2.3})
    assert j.on_report("d", 1, {"val_loss": sign(mode) * 8e4}).reason is StopReason.DIVERGED


@pytest.mark.parametrize("mode", MODES)
def test_divergence_k_boundary(mode):
    ok = feed(judge(mode, divergence=DivergenceRule(k=10)), mode, [2.0, 20.0])
    bad = feed(judge(mode, divergence=DivergenceRule(k=10)), mode, [2.0, 20.01])
    assert first_stop(ok) is None and first_stop(bad)[0] == 2


@pytest.mark.parametrize("mode", MODES)
def test_divergence_abs_limit(mode):
    ds = feed(judge(mode, divergence=DivergenceRule(abs_limit=5.0)), mode, [2.0, 4.9, 5.1])
    assert first_stop(ds)[0] == 3 and "abs_limit" in ds[2].detail


@pytest.mark.parametrize("mode", MODES)
def test_divergence_rising_needs_n_consecutive_steep_rises(mode):
    rule = DivergenceRule(k=1e9, rising_reports=3, steep_ratio=1.5)
    assert first_stop(feed(judge(mode, divergence=rule), mode, [1, 2, 4, 8]))[0] == 4
    assert first_stop(feed(judge(mode, divergence=rule), mode, [1, 2, 4, 3, 6, 12])) is None


@pytest.mark.parametrize("mode", MODES)
def test_divergence_quiet_on_healthy_curve(mode):
    ds = feed(judge(mode, divergence=DivergenceRule()), mode, [2.3, 1.5, 1.7, 1.1, 0.9])
    assert first_stop(ds) is None


# --- overfitting ------------------------------------------------------------------------------

VAL_U = [1.0, 0.8, 0.6, 0.65, 0.7, 0.75, 0.8]  # best at epoch 3, then rising
TRAIN_DOWN = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2]
TRAIN_UP = [1.0, 0.8, 0.6, 0.7, 0.8, 0.9, 1.0]


@pytest.mark.parametrize("mode", MODES)
def test_overfitting_fires_after_patience_with_best_epoch(mode):
    j = judge(mode, overfitting=OverfittingRule(patience=3, min_epochs=1))
    at, d = first_stop(feed(j, mode, VAL_U, TRAIN_DOWN))
    assert (at, d.reason, d.best_epoch) == (6, StopReason.OVERFITTING, 3)


@pytest.mark.parametrize("mode", MODES)
def test_overfitting_best_value_in_metric_units(mode):
    j = judge(mode, overfitting=OverfittingRule(patience=3, min_epochs=1))
    assert first_stop(feed(j, mode, VAL_U, TRAIN_DOWN))[1].best_value == sign(mode) * 0.6


@pytest.mark.parametrize("mode", MODES)
def test_overfitting_quiet_when_train_loss_rises_too(mode):
    j = judge(mode, overfitting=OverfittingRule(patience=3, min_epochs=1))
    assert first_stop(feed(j, mode, VAL_U, TRAIN_UP)) is None


@pytest.mark.parametrize("mode", MODES)
def test_overfitting_patience_boundary(mode):
    j = judge(mode, overfitting=OverfittingRule(patience=4, min_epochs=1))
    assert first_stop(feed(j, mode, VAL_U[:6], TRAIN_DOWN[:6])) is None


@pytest.mark.parametrize("mode", MODES)
def test_overfitting_min_epochs_holds_it_back(mode):
    j = judge(mode, overfitting=OverfittingRule(patience=3, min_epochs=7))
    assert first_stop(feed(j, mode, VAL_U, TRAIN_DOWN))[0] == 7


@pytest.mark.parametrize("mode", MODES)
def test_overfitting_gap(mode):
    j = judge(mode, overfitting=OverfittingRule(patience=99, max_gap=0.5, min_epochs=1))
    ds = feed(j, mode, [1.0, 0.9, 0.8], [1.0, 0.65, 0.5])
    assert first_stop(ds)[0] == 3 and "gap" in ds[2].detail


def test_overfitting_off_without_train_loss():
    j = PlaybookJudge(keys=MetricKeys(train_loss="loss_tr"))
    assert j.rule_status({"val_loss", "lr"})["overfitting"] == "off: no loss_tr reported"


# --- plateau ----------------------------------------------------------------------------------

FLAT = [1.0, 0.9] + [0.9] * 12


@pytest.mark.parametrize("mode", MODES)
def test_plateau_decays_with_new_lr(mode):
    j = judge(mode, plateau=PlateauRule(patience=3, factor=0.3, max_decays=2))
    at, d = first_stop(feed(j, mode, FLAT))
    assert (at, d.action, d.new_lr) == (5, DECAY_LR, pytest.approx(0.03))


@pytest.mark.parametrize("mode", MODES)
def test_plateau_restarts_patience_then_stops_after_max_decays(mode):
    ds = feed(judge(mode, plateau=PlateauRule(patience=3, max_decays=2)), mode, FLAT)
    acts = [(i + 1, d.action) for i, d in enumerate(ds) if d.action != CONTINUE]
    assert acts[:3] == [(5, DECAY_LR), (8, DECAY_LR), (11, STOP)]


@pytest.mark.parametrize("mode", MODES)
def test_plateau_min_delta_boundary(mode):
    rule = PlateauRule(patience=2, min_delta=0.1, relative=False)
    assert first_stop(feed(judge(mode, plateau=rule), mode, [1.0, 0.85, 0.7])) is None
    assert first_stop(feed(judge(mode, plateau=rule), mode, [1.0, 0.95, 0.91]))[0] == 3


@pytest.mark.parametrize("mode", MODES)
def test_plateau_quiet_while_improving(mode):
    j = judge(mode, plateau=PlateauRule(patience=2))
    assert first_stop(feed(j, mode, [1.0 / (i + 1) for i in range(20)])) is None


def test_plateau_factor_must_be_a_decay():
    with pytest.raises(ValueError, match="plateau.factor"):
        PlateauRule(factor=1.5)


# --- the judge --------------------------------------------------------------------------------


def test_judge_state_round_trips_through_a_dict():
    j = judge("min", plateau=PlateauRule(patience=2, max_decays=1))
    feed(j, "min", [1.0, 1.0, 1.0])
    k = judge("min", plateau=PlateauRule(patience=2, max_decays=1))
    k.load_dict(j.to_dict())
    assert feed(k, "min", [1.0, 1.0])[-1].reason is StopReason.PLATEAU


def test_judge_counts_decays():
    j = judge("min", plateau=PlateauRule(patience=1, max_decays=5))
    feed(j, "min", [1.0, 1.0, 1.0, 1.0])
    assert j.lr_decays("t") == 3


def test_judge_divergence_wins_over_plateau():
    j = PlaybookJudge(plateau=PlateauRule(patience=1), initial_loss=1.0)
    assert feed(j, "min", [1.0, 100.0])[1].reason is StopReason.DIVERGED


def test_invalid_mode_is_named():
    with pytest.raises(ValueError, match="mode='up'"):
        PlaybookJudge(mode="up")
