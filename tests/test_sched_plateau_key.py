"""A plateau stop counts only decays that were applied: no lr in the config, no plateau rule."""

import pytest

from tunepipe_schedulers.judge import CONTINUE, PlaybookJudge
from tunepipe_schedulers.reasons import StopReason
from tunepipe_schedulers.rules import DECAY_LR, PlateauRule

FLAT = [1.0] * 30  # never improves: decay every 2 reports, then stop


def actions(can_decay: bool, mode: str) -> list:
    j = PlaybookJudge(None, None, PlateauRule(patience=2, max_decays=2), mode=mode)
    sign = 1 if mode == "min" else -1
    return [
        j.on_report("t", i + 1, {"val_loss": sign * v, "lr": 0.1}, can_decay=can_decay)
        for i, v in enumerate(FLAT)
    ]


@pytest.mark.parametrize("mode", ["min", "max"])
def test_plateau_decays_then_stops_only_when_the_config_has_an_lr(mode):
    done = [d for d in actions(True, mode) if d.action != CONTINUE]
    assert [d.action for d in done[:2]] == [DECAY_LR, DECAY_LR]
    assert done[2].reason is StopReason.PLATEAU and "after 2 LR decays" in done[2].detail
    assert all(d.action == CONTINUE for d in actions(False, mode))


def test_rule_status_says_the_plateau_rule_is_off_without_an_lr_in_the_config():
    j = PlaybookJudge()
    reported = ["val_loss", "train_loss"]
    assert j.rule_status(reported, {"lr": 0.1, "width": 8})["plateau"] == "on"
    off = j.rule_status(reported, {"learning_rate": 0.1})
    assert off["plateau"] == "off: the trial config has no 'lr' to decay"
    assert off["divergence"] == off["overfitting"] == "on"
    j.lr_key = "learning_rate"  # PlaybookASHA(lr_config_key=...) sets it
    assert j.rule_status(reported, {"learning_rate": 0.1})["plateau"] == "on"
