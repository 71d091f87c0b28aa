"""The simulator replays curves through PlaybookASHA: outcomes follow the curves' kinds."""

import pyarrow as pa
import pyarrow.parquet as pq

from tunepipe_schedulers.judge import PlaybookJudge
from tunepipe_schedulers.ray_asha import PlaybookASHA
from tunepipe_schedulers.reasons import StopReason
from tunepipe_schedulers.simulate import read_history, simulate, synthetic_curves


def asha(judge=None, max_t=30):
    return lambda: PlaybookASHA(judge=judge, metric="val_loss", mode="min", max_t=max_t,
                                grace_period=max_t, reduction_factor=3)  # fmt: skip


def test_diverging_curves_stop_within_three_reports():
    res = simulate(synthetic_curves(6, 30, seed=1, mix={"diverging": 1}), asha(PlaybookJudge(
        initial_loss=2.3)))  # fmt: skip
    assert {(o.reason, o.epochs <= 3) for o in res.outcomes.values()} == {(StopReason.DIVERGED,
                                                                             True)}  # fmt: skip


def test_overfitting_and_plateau_curves_stop_for_their_reason():
    curves = synthetic_curves(10, 60, seed=2, mix={"overfitting": 1, "plateauing": 1})
    res = simulate(curves, asha(max_t=60))
    kinds = {tid.split("-")[0]: o.reason for tid, o in res.outcomes.items()}
    assert kinds == {"overfitting": StopReason.OVERFITTING, "plateauing": StopReason.PLATEAU}


def test_rules_save_epochs_against_rules_off():
    curves = synthetic_curves(20, 30, seed=3)
    on, off = simulate(curves, asha()), simulate(curves, asha(PlaybookJudge(None, None, None)))
    assert on.total_epochs < off.total_epochs == 20 * 30


def test_replays_a_recorded_history(tmp_path):
    rows = {"trial_id": ["a", "a", "b", "b"], "epoch": [2, 1, 1, 2], "train_loss": [1.0] * 4,
            "val_loss": [1.0, 2.0, float("nan"), 1.0], "lr": [0.1] * 4}  # fmt: skip
    pq.write_table(pa.table(rows), tmp_path / "history.parquet")
    res = simulate(read_history(str(tmp_path / "history.parquet")), asha(max_t=2))
    assert res.outcomes["a"].epochs == 2 and res.outcomes["b"].reason is StopReason.DIVERGED
