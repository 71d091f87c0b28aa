"""The checkpoint policy (pure): a checkpoint where a decision or a resume can need one."""

from __future__ import annotations

import pytest

from tests.conftest import study_dict
from tunepipe.study import parse_study
from tunepipe.train.ckpt_policy import AUTO_SECONDS, CheckpointPolicy
from tunepipe_schedulers.judge import PlaybookJudge
from tunepipe_schedulers.rules import DECAY_LR, PlateauRule


def policy(clock=lambda: 0.0, state=None, **over) -> CheckpointPolicy:
    return CheckpointPolicy(parse_study(study_dict(**over)), state=state, clock=clock)


FIFO = {"scheduler": {"kind": "fifo", "max_epochs": 20}}


def test_new_bests_and_the_last_epoch_by_default():
    p = policy(**FIFO)
    losses = [1.0, 0.9, 0.95, 0.8, 0.85, 0.86, 0.87]
    reasons = {e: p.due(e, v) for e, v in enumerate(losses, start=1)}
    assert reasons == {1: "best", 2: "best", 3: None, 4: "best", 5: None, 6: None, 7: None}
    assert p.due(20, 0.9) == "last"


def test_the_epoch_a_plateau_decay_pauses_the_trial_is_checkpointed_as_the_judge_decides():
    judge = PlaybookJudge(divergence=None, overfitting=None, plateau=PlateauRule())
    p = policy(**FIFO)
    losses = [1.0, 0.9] + [0.95] * 12  # no improvement: decays after 5 reports, twice
    for epoch, v in enumerate(losses, start=1):
        decided = judge.on_report("t", epoch, {"val_loss": v, "lr": 0.1}).action == DECAY_LR
        assert (p.due(epoch, v) == "pause") == decided, epoch
    assert p.plateau_state.decays == 2


def test_asha_rungs_are_not_checkpointed():
    # tunepipe's ASHA stops or continues a trial at a rung, never pauses it there: no reader.
    p = policy(
        scheduler={"kind": "asha", "max_epochs": 20, "grace_period": 1},
        stopping={"plateau": None},
    )
    p.due(1, 1.0)  # best
    assert [p.due(e, 2.0) for e in range(2, 20)] == [None] * 18
    assert p.due(20, 2.0) == "last"


def test_pbt_checkpoints_every_epoch_for_exploits():
    p = policy(scheduler={"kind": "pbt", "max_epochs": 10})
    p.due(1, 1.0)
    assert [p.due(e, 2.0) for e in range(2, 6)] == ["exploit"] * 4
    assert p.plateau is None  # PBT runs no plateau rule (engine.schedule.build_judge)


@pytest.mark.parametrize("every", [2, 3])
def test_every_n_epochs_bounds_the_gap(every):
    p = policy(train={"checkpoint_every": every}, stopping={"plateau": None}, **FIFO)
    p.due(1, 1.0)
    written = [e for e in range(2, 15) if p.due(e, 2.0)]
    gaps = [b - a for a, b in zip([1, *written], written, strict=False)]
    assert gaps and all(g == every for g in gaps)


def test_auto_checkpoints_after_its_time_interval():
    now = [0.0]
    p = policy(clock=lambda: now[0], **FIFO)
    p.due(1, 1.0)
    now[0] = AUTO_SECONDS - 1
    assert p.due(2, 2.0) is None
    now[0] = AUTO_SECONDS + 0.5
    assert p.due(3, 2.0) == "interval"
    now[0] = AUTO_SECONDS + 1
    assert p.due(4, 2.0) is None  # the interval restarts at each checkpoint


def test_a_resumed_trial_goes_on_from_the_checkpoints_policy_state():
    first = policy(**FIFO)
    for epoch, v in enumerate([1.0, 0.9, 0.95, 0.95, 0.95], start=1):
        first.due(epoch, v)
    resumed = policy(state=first.state(5), **FIFO)
    assert resumed.best == 0.9 and resumed.plateau_state == first.plateau_state
    assert resumed.due(6, 0.95) is None and resumed.due(7, 0.95) == "pause"  # 5 reports on


@pytest.mark.parametrize("bad", [0, -1, "often", True])
def test_checkpoint_every_is_epochs_or_auto(bad):
    from tunepipe.errors import StudyFileError

    with pytest.raises(StudyFileError, match="checkpoint_every"):
        parse_study(study_dict(train={"checkpoint_every": bad}))


def test_best_kept_apart_is_no_reason_to_report_a_checkpoint_and_survives_a_resume():
    def apart(state=None, **over):
        s = parse_study(study_dict(**{**FIFO, **over}))
        return CheckpointPolicy(s, state=state, clock=lambda: 0.0, best_apart=True)

    p = apart(metric="val_acc", mode="max")
    losses, accs = [1.0, 0.9, 0.95, 0.8], [0.5, 0.7, 0.75, 0.6]
    reasons = [p.due(e, v) for e, v in enumerate(losses, start=1)]
    kept = [p.improves({"val_acc": a}) for a in accs]
    assert reasons == [None] * 4 and kept == [True, True, True, False]  # the metric, its mode
    assert not p.improves({"val_acc": float("nan")}) and not p.improves({})
    resumed = apart(state=p.state(4), metric="val_acc", mode="max")
    assert not resumed.improves({"val_acc": 0.74}) and resumed.improves({"val_acc": 0.8})
    assert p.due(20, 0.9) == "last"
    # PBT clones weights between trials: its bests stay among the checkpoints it reports.
    pbt = apart(scheduler={"kind": "pbt", "max_epochs": 20})
    assert pbt.due(1, 1.0) == "best" and not pbt.improves({"val_loss": 1.0})  # as before
