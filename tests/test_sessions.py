"""Resume accounting without Ray: sessions add up, a finished study is left alone, Ray's own
hints are filtered out of tunepipe's output."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import tunepipe_cli

from tunepipe.engine.quiet import quiet_ray
from tunepipe.engine.sessions import finished_note, read_sessions, record_session
from tunepipe.storage import locate


def test_wall_seconds_add_up_every_recorded_session(tmp_path):
    loc = locate(str(tmp_path), "s")
    assert record_session(loc, "run", 12.5, "SIGINT") == 12.5
    assert record_session(loc, "resume", 30.0, "finished") == 42.5
    assert [(s["kind"], s["ended"]) for s in read_sessions(loc)] == [
        ("run", "SIGINT"),
        ("resume", "finished"),
    ]


def finished_run(tmp_path, reasons):
    run = tmp_path / "runs" / "done"
    run.mkdir(parents=True)
    study = "name: done\ndata: {source: digits, label: label}\nmodel: {kind: mlp}\n"
    (run / "study.yaml").write_text(study)
    summary = {
        "study": "done",
        "metric": "val_loss",
        "n_trials": sum(reasons.values()),
        "stop_reasons": reasons,
        "wall_seconds": 16.0,
        "best_trial_id": "a_00001",
        "best_config": {"lr": 0.01},
        "best_val_loss": 0.25,
        "best_epoch": 3,
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_resuming_a_finished_study_says_so_and_changes_nothing(tmp_path):
    run = finished_run(tmp_path, {"completed": 3, "pruned": 1})
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir()}
    done = tunepipe_cli("resume", str(run))
    assert done.returncode == 0, done.stderr
    assert "holds a finished study; nothing was resumed or changed" in " ".join(done.stdout.split())
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir()} == before


def test_a_study_with_errored_trials_is_resumable(tmp_path):
    assert finished_note(locate(str(tmp_path / "runs"), "x")) is None  # nothing there yet
    run = finished_run(tmp_path, {"completed": 2, "error": 1})
    assert finished_note(locate(str(run.parent), run.name)) is None
    # A time budget that ran out leaves trials `unfinished` (issue 16): resume goes on.
    (run / "summary.json").write_text(json.dumps({"stop_reasons": {"unfinished": 2}}))
    assert finished_note(locate(str(run.parent), run.name)) is None


def test_rays_resume_hint_and_metric_warnings_are_dropped_and_nothing_else(caplog):
    quiet_ray()
    quiet_ray()  # idempotent
    tune_log = logging.getLogger("ray.tune.tune")
    analysis = logging.getLogger("ray.tune.analysis.experiment_analysis")
    with caplog.at_level(logging.INFO):
        tune_log.warning(
            "Experiment has been interrupted...\nResume experiment with: Tuner.restore"
        )
        analysis.warning("Failed to fetch metrics for 2 trial(s): FileNotFoundError('Could not')")
        tune_log.warning("a warning the user needs")
    assert [r.getMessage() for r in caplog.records] == ["a warning the user needs"]
    assert len(tune_log.filters) == 1


def test_run_json_records_where_a_submitted_study_came_from(tmp_path, monkeypatch):
    from tunepipe.engine.jobs import SUBMITTED_FROM
    from tunepipe.engine.sessions import run_record

    monkeypatch.delenv(SUBMITTED_FROM, raising=False)
    assert run_record(tmp_path) == {"study_dir": str(tmp_path)}
    monkeypatch.setenv(SUBMITTED_FROM, "/home/me/study")
    assert run_record(tmp_path) == {"study_dir": "/home/me/study", "job_working_dir": str(tmp_path)}


def test_resume_refuses_clearly_when_the_recorded_study_folder_is_gone(tmp_path):
    run = finished_run(tmp_path, {"error": 1})  # resumable: an errored trial to retry
    gone = tmp_path / "head-temp" / "_ray_pkg_abc"
    (run / "run.json").write_text(json.dumps({"study_dir": str(gone)}))
    done = tunepipe_cli("resume", str(run))
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.split())
    assert f"the study's folder {gone} (from run.json) is not on this machine" in said
    assert "--study-dir" in said


@pytest.mark.parametrize("address", ["127.0.0.1:6379", "ray://127.0.0.1:10001"])
def test_jobs_given_a_gcs_address_say_they_need_the_dashboards(address, tmp_path):
    done = tunepipe_cli("jobs", "list", "--address", address, "--token-file", str(tmp_path / "t"))
    assert done.returncode == 2
    said = " ".join(done.stderr.split())
    assert "not a dashboard address" in said and "http://HOST:PORT" in said
    assert "token" not in said.split("not a dashboard address")[0]  # no false token error
