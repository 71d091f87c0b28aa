"""The run's wall clock: phases from the process start, and the report drawn during shutdown."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tunepipe.config import SchedulerConfig
from tunepipe.engine.finish import finish_overlapped
from tunepipe.engine.phases import PhaseClock, process_start
from tunepipe.study import load_study


def test_phases_start_at_the_given_start_and_add_up_to_the_wall():
    clock = PhaseClock(start=time.time() - 2.0)  # as if the interpreter took 2 s
    with clock.phase("data"):
        time.sleep(0.01)
    time.sleep(0.01)  # glue between phases
    with clock.phase("search"):
        pass
    phases = clock.seconds
    assert list(phases) == ["interpreter", "data", "other", "search"]
    assert phases["interpreter"] >= 2.0
    assert phases["data"] >= 0.01 and phases["other"] >= 0.01
    assert sum(phases.values()) == pytest.approx(clock.elapsed(), abs=0.05)


def test_a_phase_that_raises_is_still_counted():
    clock = PhaseClock()
    with pytest.raises(ValueError), clock.phase("sanity"):
        raise ValueError("failed check")
    assert "sanity" in clock.seconds


def test_process_start_is_before_now_and_not_this_test():
    started = process_start()
    assert started <= time.time()
    assert time.time() - started > 0.0


def test_beside_gives_the_result_or_raises_in_the_caller():
    from tunepipe.engine.phases import beside

    assert beside(lambda: 42, "answer")()[0] == 42

    def broken():
        raise KeyError("bad check")

    join = beside(broken, "broken")
    with pytest.raises(KeyError, match="bad check"):
        join()


def test_finish_writes_the_report_and_reports_its_seconds(tmp_path, monkeypatch):
    drawn: list[Path] = []
    monkeypatch.setattr("tunepipe.report.write_report", lambda d: drawn.append(Path(d)))
    apart = finish_overlapped(tmp_path, started_ray=False)
    assert drawn == [tmp_path]
    assert set(apart) == {"report"}  # no Ray was started, so none is shut down


def test_finish_raises_the_report_error_instead_of_losing_it(tmp_path, monkeypatch):
    def broken(_):
        raise OSError("disk full")

    monkeypatch.setattr("tunepipe.report.write_report", broken)
    with pytest.raises(OSError, match="disk full"):
        finish_overlapped(tmp_path, started_ray=False)


def test_no_report_for_a_remote_run_folder(monkeypatch):
    monkeypatch.setattr("tunepipe.report.write_report", lambda d: pytest.fail("drawn"))
    assert finish_overlapped(None, started_ray=False) == {}


def test_digits_example_uses_the_measured_asha_defaults():
    study = load_study(REPO / "examples" / "digits.yaml")
    defaults = SchedulerConfig(max_epochs=study.scheduler.max_epochs)
    raw = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    assert "grace_period" not in raw["scheduler"]  # the example takes the default
    assert study.scheduler.grace_period == defaults.grace_period == 2  # max_epochs 20 // 10
    assert study.scheduler.reduction_factor == defaults.reduction_factor
    # A tenth of the budget, at least one epoch; a given grace period is kept.
    assert [SchedulerConfig(max_epochs=n).grace_period for n in (1, 3, 19, 20, 100)] == [
        1, 1, 1, 2, 10,
    ]  # fmt: skip
    assert SchedulerConfig(max_epochs=20, grace_period=1).grace_period == 1


@pytest.mark.ray
def test_summary_records_every_phase_of_a_study(ray_session, tmp_path):
    import json

    from tests.conftest import study_dict
    from tunepipe.engine.runner import run_study
    from tunepipe.study import parse_study

    study = parse_study(study_dict(name="phases", data={"test_fraction": 0.1}))
    started = time.time() - 1.0  # the "interpreter" before run_study was called
    outcome = run_study(study, storage=str(tmp_path), progress=False, started=started)
    summary = json.loads(Path(outcome.run_dir, "summary.json").read_text())
    phases = summary["phases"]
    for name in ("interpreter", "data", "ray_start_and_sanity", "search", "outputs", "test"):
        assert phases[name] >= 0, name
    assert phases["interpreter"] >= 1.0
    assert "report" in phases
    assert {"report", "sanity"} <= set(summary["phases_overlapped"])  # each timed in its thread
    assert Path(outcome.run_dir, "sanity.json").exists()
    assert summary["wall_seconds"] == pytest.approx(sum(phases.values()), abs=0.1)
    assert Path(outcome.run_dir, "report.html").exists()
    assert ray_session.is_initialized()  # the shared session was not this run's to stop


def test_the_driver_imports_torch_only_where_it_needs_it():
    # docs/speed.md: on a warm Ray with the sanity stage reused, handing the trainable to Tune,
    # listing checkpoints and writing results must not import torch (1.6 s of the driver).
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import tunepipe.engine.runner, tunepipe.engine.tuner, tunepipe.engine.outputs\n"
        "import tunepipe.engine.results, tunepipe.train.checkpoint\n"
        "from tunepipe.train.trainable import tune_trainable, restore_point\n"
        "from tunepipe.engine.tuner import _trainable\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
