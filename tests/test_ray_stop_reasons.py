"""One stop reason everywhere: the progress line, decisions.json, results.parquet, summary.json
and the report agree for a study with a trial ended by each reason."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tunepipe.engine.runner import run_study
from tunepipe.study import parse_study

pytestmark = pytest.mark.ray
HERE = Path(__file__).parent
EXPECTED = {
    "complete": "completed",
    "diverge": "diverged",
    "overfit": "overfitting",  # on the last epoch, where the budget also ran out
    "plateau": "plateau",
    "error": "error",
    "prune": "pruned",
}


def test_every_output_tells_the_same_stop_reason(ray_session, tmp_path, capfd):
    study = parse_study(
        {
            "name": "reasons",
            "seed": 0,
            "trainable": "scripted:trial",
            "code_dir": "user_code",
            "num_samples": 1,
            "max_failures": 0,
            "search_space": {
                "script": {"type": "grid", "values": list(EXPECTED)},
                "lr": {"type": "choice", "values": [0.1]},
            },
            "scheduler": {
                "kind": "asha",
                "max_epochs": 8,
                "grace_period": 4,
                "reduction_factor": 2,
            },
            "stopping": {
                "overfitting": {"patience": 3, "min_epochs": 2},
                "plateau": {"patience": 2, "max_decays": 1},
            },
        }
    )
    capfd.readouterr()
    out = run_study(study, study_dir=HERE, storage=str(tmp_path), progress=True)
    run = Path(out.run_dir)
    err = capfd.readouterr().err
    rows = pq.read_table(run / "results.parquet").to_pylist()
    results = {r["trial_id"]: r["stop_reason"] for r in rows}
    assert {r["config.script"]: r["stop_reason"] for r in rows} == EXPECTED
    progress = dict(re.findall(r"\] trial (\S+) (\w+);", err))
    decisions = {
        t: d["reason"] for t, d in json.loads((run / "decisions.json").read_text()).items()
    }
    html = (run / "report.html").read_text()
    report = dict(re.findall(r'<tr><td>([^<]+)</td><td><span class="badge"[^>]*>(\w+)<', html))
    summary = json.loads((run / "summary.json").read_text())["stop_reasons"]
    assert progress == results, err[-3000:]
    assert decisions == results
    assert report == results
    assert summary == dict(Counter(results.values()))
    assert re.search(r"\[6/6\] trial", err)
