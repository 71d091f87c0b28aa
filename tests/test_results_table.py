"""results.parquet and summary.json from trial records (no Ray): best epoch, val_rmse, version."""

from __future__ import annotations

import tunepipe
from tests.conftest import study_dict
from tunepipe.engine.results import TrialRecord, results_table, summary
from tunepipe.study import parse_study


def own_trainable_record(tid: str, scores: list[float]) -> TrialRecord:
    steps = [float(i) for i in range(1, len(scores) + 1)]
    history = {"training_iteration": steps, "score": scores}
    return TrialRecord(tid, {"a": 1}, history, "completed", None)


def test_an_own_trainables_best_epoch_is_its_reported_iteration():
    study = parse_study(
        {"name": "own", "trainable": "m:f", "metric": "score", "mode": "min", "num_samples": 2}
    )
    records = [own_trainable_record("t1", [3, 1, 2]), own_trainable_record("t2", [5, 4, 0.5, 6])]
    rows = results_table(records, study).to_pylist()
    assert [r["best_epoch"] for r in rows] == [2, 3]
    assert [r["epochs"] for r in rows] == [3, 4]
    out = summary(records, study, wall_seconds=1.0)
    assert out["best_trial_id"] == "t2" and out["best_epoch"] == 3 and out["best_score"] == 0.5
    assert out["tunepipe_version"] == tunepipe.__version__


def test_regression_carries_val_rmse_at_the_best_epoch():
    study = parse_study(study_dict(task="regression", metric="val_loss"))
    history = {
        "epoch": [1.0, 2.0, 3.0],
        "val_loss": [0.9, 0.2, 0.4],
        "val_rmse": [30.0, 14.0, 20.0],
        "train_loss": [1.0, 0.5, 0.3],
    }
    records = [TrialRecord("r1", {}, history, "completed", None)]
    (row,) = results_table(records, study).to_pylist()
    assert row["val_rmse"] == 14.0 and row["best_epoch"] == 2 and row["train_loss"] == 0.5
    out = summary(records, study, wall_seconds=2.0)
    assert out["best_val_rmse"] == 14.0 and out["best_val_loss"] == 0.2


def test_a_resumed_trials_ragged_progress_csv_loses_no_epoch(tmp_path):
    # Ray appends a resumed trial's rows under the old header even when its first new report
    # lacks a key: a row one column short. That row is skipped in progress.csv and found whole
    # in result.json, so every epoch is still read (a `tunepipe resume` after a time budget).
    import json
    from types import SimpleNamespace

    import pyarrow.fs as pafs

    from tunepipe.engine.results import _read_log, _reported_rows

    header = "epoch,val_loss,should_checkpoint,done,training_iteration"
    lines = [header, "1,0.9,True,False,1", "2,0.8,True,False,2", "3,0.7,False,3"]  # short
    (tmp_path / "progress.csv").write_text("\n".join(lines) + "\n")
    reports = [{"epoch": e, "val_loss": v, "training_iteration": e} for e, v in
               [(1, 0.9), (2, 0.8), (3, 0.7)]]  # fmt: skip
    (tmp_path / "result.json").write_text("".join(json.dumps(r) + "\n" for r in reports))
    result = SimpleNamespace(filesystem=pafs.LocalFileSystem(), path=str(tmp_path))
    assert [r["epoch"] for r in _read_log(result, "progress.csv")] == [1, 2]
    assert [r["epoch"] for r in _reported_rows(result)] == [1, 2, 3]
