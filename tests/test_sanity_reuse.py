"""A passed sanity stage is reused when the study's content is unchanged (playbook/reuse.py)."""

from __future__ import annotations

import pickle

import pytest

from tests.conftest import study_dict
from tunepipe.data import load_data
from tunepipe.playbook import stage
from tunepipe.storage import locate
from tunepipe.study import parse_study


@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = stage.run_sanity

    def run(study, data):
        calls.append(study.name)
        return real(study, data)

    monkeypatch.setattr(stage, "run_sanity", run)
    return calls


def check(tmp_path, name: str, **over):
    study = parse_study(study_dict(name=name, **over))
    data = load_data(study.data, study.task, study.seed)
    loc = locate(str(tmp_path), name)
    return stage.sanity_stage(study, data, loc, progress=False)[1], loc


def test_the_same_content_reuses_the_stage_and_its_files(tmp_path, counted):
    first, _ = check(tmp_path, "a")
    assert first.passed and counted == ["a"]
    # Another name, trial count, time budget and monitoring: what the checks do not read.
    again, loc = check(
        tmp_path, "b", num_samples=7, budget={"time": "1h"}, monitoring={"metrics": False}
    )
    assert counted == ["a"]
    assert any("reused" in n for n in again.notes)
    assert [c.to_json() for c in again.checks] == [c.to_json() for c in first.checks]
    assert again.initial_loss == first.initial_loss
    assert loc.exists("sanity.json") and loc.exists("sanity_lr_range.png")


@pytest.mark.parametrize(
    "change",
    [
        {"model": {"hidden_width": 16}},
        {"seed": 1},  # another split: other rows
        {"data": {"val_fraction": 0.3}},
        {"train": {"lr": 0.01}},
    ],
    ids=["model", "seed", "split", "train"],
)
def test_a_change_the_checks_read_runs_the_stage_again(tmp_path, counted, change):
    check(tmp_path, "a")
    check(tmp_path, "b", **change)
    assert counted == ["a", "b"]


def test_a_failed_stage_is_never_reused(tmp_path, counted, monkeypatch):
    from tunepipe.errors import SanityFailed
    from tunepipe.playbook.result import Check, SanityResult

    monkeypatch.setattr(
        stage, "run_sanity", lambda s, d: counted.append(s.name) or SanityResult(
            [Check("initial loss", "fail", "broken on purpose")]
        )
    )  # fmt: skip
    for name in ("a", "b"):
        with pytest.raises(SanityFailed):
            check(tmp_path, name)
    assert counted == ["a", "b"]


def test_own_model_code_is_always_checked_again():
    from tunepipe.playbook.reuse import content_key

    raw = study_dict()
    raw["model"] = {"kind": "custom", "factory": "m:f"}
    assert content_key(parse_study(raw), object()) is None
    raw = study_dict(trainable="m:objective")
    del raw["model"], raw["data"]
    assert content_key(parse_study(raw), None) is None


def test_a_passed_stage_can_write_its_files_later(tmp_path, counted):
    # tunepipe run draws the plots beside the search (engine/runner.py): the stage hands over
    # the writing, and nothing is written or kept until it runs.
    study = parse_study(study_dict(name="later"))
    data = load_data(study.data, study.task, study.seed)
    loc = locate(str(tmp_path), "later")
    deferred = []
    _, result = stage.sanity_stage(
        study, data, loc, progress=False, defer=lambda fn, *args: deferred.append((fn, args))
    )
    assert result.passed and len(deferred) == 1
    assert not loc.exists("sanity.json") and not loc.exists("sanity_lr_range.png")
    fn, args = pickle.loads(pickle.dumps(deferred[0]))  # as the painter process receives it
    fn(*args)
    assert loc.exists("sanity.json") and loc.exists("sanity_lr_range.png")
    again, _ = check(tmp_path, "b")  # kept once written: the next run reuses it
    assert counted == ["later"] and any("reused" in n for n in again.notes)
