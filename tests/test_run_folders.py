"""A study run again goes to a new folder (<name>-2, -3); a failed start never traps the user."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunepipe.engine.runner import resume_study
from tunepipe.errors import RunDirError
from tunepipe.storage import new_run_location


def started(folder: Path, reported: bool = True) -> Path:
    """A run folder whose study started; with `reported`, one trial wrote a result."""
    trial = folder / "tune_trainable_00000"
    trial.mkdir(parents=True)
    (folder / "study.yaml").write_text("name: x\n")
    (trial / "result.json").write_text('{"epoch": 1}\n' if reported else "")
    return folder


def test_each_new_run_of_a_study_gets_the_next_free_folder(tmp_path):
    assert new_run_location(str(tmp_path), "x").path == f"{tmp_path}/x"
    started(tmp_path / "x")
    assert new_run_location(str(tmp_path), "x").path == f"{tmp_path}/x-2"
    started(tmp_path / "x-2")
    assert new_run_location(str(tmp_path), "x").path == f"{tmp_path}/x-3"
    assert new_run_location(str(tmp_path), "other").path == f"{tmp_path}/other"


def test_a_study_that_stopped_before_its_first_trial_is_taken_over(tmp_path):
    run = started(tmp_path / "x", reported=False)
    (run / "tuner.pkl").write_bytes(b"stale")
    (run / "experiment_state-2026.json").write_text("{}")
    (run / "sanity.json").write_text("{}")
    loc = new_run_location(str(tmp_path), "x")
    assert loc.path == str(run)
    assert not (run / "tuner.pkl").exists() and not list(run.glob("experiment_state-*"))
    assert (run / "sanity.json").exists()  # not Ray's: left for the new run to overwrite


def test_resume_refuses_a_study_that_never_reported_instead_of_repeating_its_crash(tmp_path):
    run = started(tmp_path / "x", reported=False)
    with pytest.raises(RunDirError, match="before its first trial reported.*tunepipe run STUDY"):
        resume_study(str(run))
    with pytest.raises(RunDirError, match="holds no study.yaml"):
        resume_study(str(tmp_path / "nothing"))
