"""Ray integration: a study whose `trainable:` is a plain Ray Tune function (as in Ray's docs)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tunepipe.engine.runner import run_study
from tunepipe.study import parse_study

pytestmark = pytest.mark.ray
HERE = Path(__file__).parent


def test_plain_ray_tune_function_runs_as_a_study(ray_session, tmp_path, capfd):
    study = parse_study(
        {
            "name": "own",
            "seed": 1,
            "trainable": "ray_example:objective",
            "code_dir": "user_code",
            "metric": "score",
            "mode": "min",
            "num_samples": 6,
            "search_space": {
                "a": {"type": "uniform", "low": 0, "high": 1},
                "b": {"type": "choice", "values": [0.1, 0.5, 1.0]},
            },
            "scheduler": {"kind": "asha", "max_epochs": 10, "grace_period": 2},
        }
    )
    out = run_study(study, study_dir=HERE, storage=str(tmp_path), progress=False)
    rows = pq.read_table(Path(out.run_dir) / "results.parquet").to_pylist()
    assert len(rows) == 6
    assert {"trial_id", "config.a", "config.b", "score", "epochs", "stop_reason"} <= set(rows[0])
    assert {r["stop_reason"] for r in rows} <= {"completed", "pruned"}
    assert any(r["epochs"] == 10 for r in rows)
    best = min(rows, key=lambda r: r["score"])
    summary = json.loads((Path(out.run_dir) / "summary.json").read_text())
    assert summary["metric"] == "score" and summary["best_trial_id"] == best["trial_id"]
    assert summary["best_score"] == pytest.approx(best["score"])
    # The rules read losses (P3): the trainable reports none, and the run says so once.
    err = capfd.readouterr().err
    assert err.count("playbook rule overfitting is off: no val_loss, train_loss reported") == 1
