"""One report per epoch of a trial's final line of training (tunepipe.engine.lineage)."""

from __future__ import annotations

from tunepipe.engine.lineage import final_lineage, merge_logs
from tunepipe.engine.results import decide_reason


def rows(*segments: tuple[int, int]) -> list[dict]:
    """Reports of consecutive segments: (first epoch, last epoch), each restarted by a restore."""
    out = []
    for first, last in segments:
        for i, epoch in enumerate(range(first, last + 1), start=1):
            out.append({"epoch": epoch, "iterations_since_restore": i, "val_loss": 1 / epoch})
    return out


def epochs(merged: list[dict]) -> list[int]:
    return [r["epoch"] for r in merged]


def test_an_epoch_whose_report_was_lost_comes_from_the_trials_own_record():
    # Reported 1..7; checkpoint 8 saved, its report lost; resumed from 8: reports 9, 10.
    log = rows((1, 7), (9, 10))
    record = [{"epoch": e, "val_loss": 1 / e} for e in range(1, 9)]
    assert epochs(merge_logs([log], record)) == list(range(1, 11))
    assert epochs(merge_logs([log])) == [1, 2, 3, 4, 5, 6, 7, 9, 10]  # the gap without it


def test_the_last_epoch_lost_with_its_checkpoint_kept_is_counted_and_can_be_best():
    log = rows((1, 9))
    record = [{"epoch": e, "val_loss": 1 / e} for e in range(1, 11)]
    merged = merge_logs([log], record)
    assert epochs(merged) == list(range(1, 11))
    assert min(r["val_loss"] for r in merged) == 0.1


def test_epochs_retrained_after_a_restore_appear_once_with_the_retrained_values():
    # checkpoint_every=3: reported 1..8, restored from 6, re-trained 7, 8, then on to 10.
    log = rows((1, 8), (7, 10))
    log[-4]["val_loss"] = 0.5  # the re-trained epoch 7 differs from the lost one
    kept = final_lineage(log, "epoch")
    assert sorted(kept) == list(range(1, 11))
    assert kept[7]["val_loss"] == 0.5


def test_an_abandoned_future_is_dropped_when_the_trial_ends_earlier_after_a_restore():
    # Reported 1..9; restored from 6, stopped by a rule at 7: epochs 8 and 9 never happened.
    log = rows((1, 9), (7, 7))
    assert sorted(final_lineage(log, "epoch")) == list(range(1, 8))


def test_a_restore_is_seen_even_when_its_first_report_is_missing_from_one_log():
    log = rows((1, 9), (7, 10))
    del log[9]  # the re-trained epoch 7, missing from result.json
    csv = rows((1, 9), (7, 10))
    for r in csv:
        r["val_loss"] = -1.0
    json_only = final_lineage(log, "epoch")
    assert 7 not in json_only  # the stale pre-restore 7 is gone ...
    merged = merge_logs([csv, log])
    assert epochs(merged) == list(range(1, 11))  # ... and the other log has the new one
    assert merged[6]["val_loss"] == -1.0


def test_own_trainables_step_by_training_iteration():
    log = [
        {"training_iteration": i, "iterations_since_restore": i, "score": i} for i in (1, 2, 3)
    ] + [{"training_iteration": 3, "iterations_since_restore": 1, "score": 30}]
    merged = merge_logs([log])
    assert [r["training_iteration"] for r in merged] == [1, 2, 3]
    assert merged[-1]["score"] == 30


def test_one_stop_reason_the_trials_word_then_the_rule_then_an_error():
    assert decide_reason("diverged", None, {"reason": "overfitting"}) == "diverged"
    # A rule that stopped the trial at its last epoch is the reason, not "completed".
    assert decide_reason(None, None, {"reason": "overfitting"}) == "overfitting"
    assert decide_reason(None, "boom", {"reason": "error"}) == "error"
    assert decide_reason(None, "boom", None) == "error"
    # Retried after a lost node and then finished: no longer an error.
    assert decide_reason(None, None, {"reason": "error"}) == "completed"
    assert decide_reason(None, None, None) == "completed"
    # Left unfinished by a time budget, then trained to its end by a resume: completed.
    assert decide_reason(None, None, {"reason": "unfinished"}, ran_to_end=True) == "completed"
