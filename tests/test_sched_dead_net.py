"""A net that learned nothing (a dead net at chance loss) is stopped as diverged (issue 9.1)."""

import math

import pytest

from tunepipe_schedulers.judge import CONTINUE, PlaybookJudge
from tunepipe_schedulers.reasons import StopReason
from tunepipe_schedulers.rules import DivergenceRule, DivergenceState

MODES = ["min", "max"]
LN10 = math.log(10)


def sign(mode: str) -> float:
    return 1.0 if mode == "min" else -1.0


def stop_at(mode: str, val, ratio=None, dead=None, initial=LN10, rule=DivergenceRule()):
    """(report number, decision) of the first stop of a curve given in loss units, or None."""
    initial = None if initial is None else sign(mode) * initial
    j = PlaybookJudge(rule, None, None, mode=mode, initial_loss=initial)
    for i, v in enumerate(val):
        metrics = {"val_loss": sign(mode) * v}
        if ratio is not None:
            metrics["update_ratio"] = ratio[i]
        if dead is not None:
            metrics["dead_relu"] = dead
        d = j.on_report("t", i + 1, metrics)
        if d.action != CONTINUE:
            return i + 1, d
    return None


@pytest.mark.parametrize("mode", MODES)
def test_a_net_stuck_at_chance_loss_is_diverged_by_its_third_report(mode):
    n, d = stop_at(mode, [2.41, 2.40, 2.42, 2.41, 2.40])  # SGD lr 10 on digits: val_acc 0.10
    assert n == 3 and d.reason is StopReason.DIVERGED
    assert "nothing learned" in d.detail and "2.303" in d.detail


@pytest.mark.parametrize("mode", MODES)
def test_a_wild_update_ratio_and_dead_relus_stop_it_at_the_second_report(mode):
    n, d = stop_at(mode, [3.18, 2.98, 2.99], ratio=[0.74, 0.0007, 0.008], dead=0.5)
    assert n == 2 and d.reason is StopReason.DIVERGED
    assert "update ratio reached 0.74" in d.detail and "50% of ReLU units dead" in d.detail


@pytest.mark.parametrize("mode", MODES)
def test_nets_that_learn_even_slowly_or_late_are_not_stopped(mode):
    assert stop_at(mode, [2.30, 2.29, 2.28, 2.27, 2.26]) is None  # slow but below chance
    assert stop_at(mode, [2.50, 2.40, 2.10, 1.50, 0.90]) is None  # the third report learned
    assert stop_at(mode, [2.50, 1.20, 0.90], ratio=[0.5, 0.01, 0.003]) is None
    # A healthy update ratio does not hasten the verdict on a slow start.
    assert stop_at(mode, [2.50, 2.40, 2.20], ratio=[0.002, 0.001, 0.001]) is None


@pytest.mark.parametrize("mode", MODES)
def test_without_a_known_chance_loss_or_with_the_check_off_nothing_stalls(mode):
    assert stop_at(mode, [2.41, 2.40, 2.42, 2.41], initial=None) is None
    off = DivergenceRule(stall_reports=None)
    assert stop_at(mode, [2.41, 2.40, 2.42, 2.41], ratio=[1, 1, 1, 1], rule=off) is None
    assert stop_at(mode, [2.41] * 6, rule=DivergenceRule(stall_reports=5))[0] == 5


def test_an_overfitting_net_whose_training_loss_falls_is_not_called_dead():
    # Noisy labels: validation loss stays above chance from the first epoch while the training
    # loss falls well below it; that is overfitting (P6), not a dead net (P5).
    rule, state = DivergenceRule(), DivergenceState()
    for val, train in [(0.72, 0.60), (0.74, 0.45), (0.77, 0.30), (0.80, 0.20)]:
        assert rule.check(state, val, chance=math.log(2), train_loss=train) is None
    dead = DivergenceState()
    verdicts = [rule.check(dead, 2.41, chance=math.log(10), train_loss=2.40) for _ in range(3)]
    assert verdicts[-1] is not None and verdicts[-1].reason == "diverged"
