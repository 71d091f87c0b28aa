"""The study tracker, status.json and the `tunepipe status` view (pure, no Ray started)."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
from conftest import study_dict, tunepipe_cli

from tunepipe.config import StudyConfig
from tunepipe.monitoring.metrics import StudyMonitor
from tunepipe.monitoring.status import remaining_epochs, status_lines
from tunepipe.monitoring.tracker import STATUS_FILE, StudyTracker
from tunepipe.storage import locate


def _report(tracker, tid, epoch, loss, now, lr=0.1):
    tracker.on_result(tid, {"lr": lr}, {"epoch": epoch, "val_loss": loss, "lr": lr}, now)


@pytest.mark.parametrize("mode,best", [("min", 0.5), ("max", 0.9)])
def test_best_so_far_follows_the_mode(mode, best):
    t = StudyTracker("s", "val_loss", mode, max_epochs=10, n_trials=3)
    _report(t, "a", 1, 0.9, t.started + 1)
    _report(t, "b", 1, 0.5, t.started + 2, lr=0.01)
    snap = t.snapshot(t.started + 3)
    assert snap["best"]["value"] == best
    assert snap["best"]["config"] == {"lr": 0.1 if best == 0.9 else 0.01}


def test_a_nan_is_never_the_best():
    t = StudyTracker("s", "val_loss", "min", 10, 1)
    _report(t, "a", 1, float("nan"), t.started + 1)
    assert t.snapshot(t.started + 2)["best"] is None


def test_stop_reasons_states_and_remaining_epochs():
    t = StudyTracker("s", "val_loss", "min", max_epochs=10, n_trials=4)
    for epoch in (1, 2, 3):
        _report(t, "a", epoch, 1.0 / epoch, t.started + epoch)
    _report(t, "b", 1, 2.0, t.started + 4)
    t.on_end("b", "pruned")
    t.on_states({"a": "RUNNING", "b": "TERMINATED", "c": "PENDING"})
    snap = t.snapshot(t.started + 5)
    assert snap["states"] == {
        "PENDING": 1, "RUNNING": 1, "PAUSED": 0, "TERMINATED": 1, "ERROR": 0
    }  # fmt: skip
    assert snap["stop_reasons"] == {"pruned": 1}
    # a: 7 left, c: 10, one trial not yet created: 10; b ended
    assert remaining_epochs(snap) == 27
    assert snap["epochs_done"] == 4 and snap["epochs_per_second"] == pytest.approx(4 / 5)


def test_an_ended_trial_keeps_its_reason():
    t = StudyTracker("s", "val_loss", "min", 10, 1)
    t.on_end("a", "diverged")
    t.on_states({"a": "RUNNING"})  # Tune's status may lag the scheduler's decision
    assert t.snapshot(t.started)["trials"]["a"]["state"] == "TERMINATED"


def test_status_lines_show_progress_and_eta():
    t = StudyTracker("digits", "val_loss", "min", max_epochs=10, n_trials=2)
    for epoch in range(1, 6):
        _report(t, "a", epoch, 1.0 / epoch, t.started + epoch)
    t.on_states({"a": "RUNNING"})
    lines = status_lines(t.snapshot(t.started + 5), now=t.started + 6)
    text = "\n".join(lines)
    assert "study digits: running for 5s" in text
    assert "1 running, 0 pending" in text and "(of 2)" in text
    assert "best val_loss: 0.2 (trial a, epoch 5)" in text and "best config: lr=0.1" in text
    assert "epochs: 5 done, at most 15 remaining at 1.00/s; ETA at most 15s" in text


def test_a_silent_driver_is_called_out():
    t = StudyTracker("s", "val_loss", "min", 10, 1)
    text = "\n".join(status_lines(t.snapshot(t.started), now=t.started + 3600))
    assert "no update for 1h00m" in text and "tunepipe resume" in text


def _trial(tid, status, result=None):
    return SimpleNamespace(trial_id=tid, status=status, config={"lr": 0.1}, last_result=result)


def test_monitor_with_metrics_off_writes_status_and_no_gauges(tmp_path):
    study = StudyConfig.model_validate(study_dict(monitoring={"metrics": False}))
    loc = locate(str(tmp_path), study.name)
    monitor = StudyMonitor(study, loc, n_trials=2, reasons=lambda tid: "pruned", metrics=False)
    a, b = _trial("a", "RUNNING"), _trial("b", "RUNNING")
    monitor.on_trial_result(1, [a, b], a, {"epoch": 1, "val_loss": 0.7})
    monitor.on_trial_result(1, [a, b], b, {"epoch": 1, "val_loss": 0.9})
    monitor.on_trial_complete(2, [a, b], b)
    monitor.on_step_end(2, [a, _trial("b", "TERMINATED")])
    snap = json.loads((tmp_path / study.name / STATUS_FILE).read_text())
    assert snap["stop_reasons"] == {"pruned": 1} and snap["best"]["value"] == 0.7
    assert monitor._gauges is None  # nothing exported
    monitor.on_experiment_end([a, b])
    out = tunepipe_cli("status", str(tmp_path / study.name))
    assert out.returncode == 0 and "finished" in out.stdout and "pruned 1" in out.stdout
    watched = tunepipe_cli("status", str(tmp_path / study.name), "--watch")  # ends: finished
    assert watched.returncode == 0 and "finished" in watched.stdout


def test_monitoring_section_is_validated():
    assert StudyConfig.model_validate(study_dict()).monitoring.metrics is True
    with pytest.raises(ValueError, match="metric"):
        StudyConfig.model_validate(study_dict(monitoring={"metric": False}))


def test_status_of_a_folder_that_is_no_run_exits_2(tmp_path):
    out = tunepipe_cli("status", str(tmp_path))
    assert out.returncode == 2 and "not a tunepipe run folder" in out.stderr
    assert "Traceback" not in out.stderr


def test_jobs_status_finds_the_run_folder_from_the_job_metadata(tmp_path):
    from tunepipe.monitoring.jobs_view import job_metadata, job_view_lines

    study = StudyConfig.model_validate(study_dict(name="digits"))
    assert job_metadata(study, []) == {}  # "runs": relative to the job's own working dir
    assert job_metadata(study, ["--storage", "s3://b/runs/"]) == {
        "tunepipe_run_dir": "s3://b/runs/digits"
    }
    meta = job_metadata(study, ["--storage", str(tmp_path)])
    assert "not available" in job_view_lines(SimpleNamespace(metadata={}))[0]
    missing = job_view_lines(SimpleNamespace(metadata=meta))
    assert "not readable from here" in missing[0] and "tunepipe status" in missing[0]
    tracker = StudyTracker("digits", "val_loss", "min", 10, 1)
    locate(str(tmp_path), "digits").write_json(STATUS_FILE, tracker.snapshot(tracker.started))
    lines = job_view_lines(SimpleNamespace(metadata=meta))
    assert lines[0] == f"run folder: {tmp_path}/digits" and lines[1].startswith("study digits:")


def test_wire_metrics_sets_what_rays_dashboard_reads(monkeypatch):
    from tunepipe.errors import TunepipeError
    from tunepipe.monitoring.ray_dashboard import login_hint, wire_metrics

    for name in ("RAY_GRAFANA_HOST", "RAY_GRAFANA_IFRAME_HOST", "RAY_PROMETHEUS_HOST"):
        monkeypatch.delenv(name, raising=False)
    wire_metrics("http://grafana:3000/", "http://prom:9090")
    assert os.environ["RAY_GRAFANA_HOST"] == "http://grafana:3000"
    assert os.environ["RAY_GRAFANA_IFRAME_HOST"] == "http://grafana:3000"
    assert os.environ["RAY_PROMETHEUS_HOST"] == "http://prom:9090"
    with pytest.raises(TunepipeError, match="--prometheus 'prom:9090' is not a URL"):
        wire_metrics(None, "prom:9090")
    hint = login_hint("http://127.0.0.1:8265")
    assert "http://127.0.0.1:8265" in hint and "`tunepipe token`" in hint


def test_token_command_prints_the_token_only_when_asked(tmp_path):
    from tunepipe.engine.auth import ensure_token

    path = ensure_token(tmp_path / "tok")
    out = tunepipe_cli("token", "--token-file", str(path))
    assert out.returncode == 0 and out.stdout.strip() == path.read_text().strip()


def test_after_a_resume_ended_trials_keep_their_logged_reasons(tmp_path):
    import pickle

    study = StudyConfig.model_validate(study_dict())
    loc = locate(str(tmp_path), study.name)
    loc.write_json("decisions.json", {"b": {"reason": "overfitting"}})
    monitor = StudyMonitor(study, loc, n_trials=3, reasons=lambda tid: "pruned")
    restored = pickle.loads(pickle.dumps(monitor))  # as Tune restores it from tuner.pkl
    assert restored.reasons is None
    restored.metrics = False
    done = _trial("a", "TERMINATED", {"epoch": 3, "stop_reason": "diverged"})
    trials = [done, _trial("b", "TERMINATED", {"epoch": 2}), _trial("c", "RUNNING")]
    restored.on_step_end(1, trials)
    snap = json.loads((tmp_path / study.name / STATUS_FILE).read_text())
    assert snap["stop_reasons"] == {"diverged": 1, "overfitting": 1}
    assert snap["states"]["TERMINATED"] == 2 and snap["states"]["RUNNING"] == 1
    assert remaining_epochs(snap) == 3  # c: all 3 epochs of fifo's budget; a and b ended


def test_a_status_write_failure_warns_once_and_the_study_goes_on(tmp_path, capsys):
    study = StudyConfig.model_validate(study_dict())
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monitor = StudyMonitor(study, locate(str(blocker), study.name), n_trials=1, metrics=False)
    monitor.on_step_end(1, [_trial("a", "RUNNING")])
    monitor.on_experiment_end([_trial("a", "TERMINATED")])
    assert capsys.readouterr().err.count("cannot write status.json") == 1
