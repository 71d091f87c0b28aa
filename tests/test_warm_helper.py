"""The warm Ray's torch helper (engine/warm_helper.py), in this process: no Ray is started."""

from __future__ import annotations

import dataclasses
import os
import stat
from types import SimpleNamespace

import pytest

from tunepipe.data import load_data
from tunepipe.engine import warm_helper
from tunepipe.engine.outputs import evaluate_test
from tunepipe.errors import TunepipeError
from tunepipe.playbook.sanity import run_sanity
from tunepipe.storage import locate_run_dir
from tunepipe.study import parse_study


@pytest.fixture(scope="module")
def helper():
    h = warm_helper.Helper()
    yield h
    h.close()


@pytest.fixture(scope="module")
def digits():
    study = parse_study(
        {
            "name": "h",
            "task": "classification",
            "data": {"source": "digits", "label": "label"},
            "model": {"kind": "mlp", "depth": 1},
            "search_space": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1}},
            "scheduler": {"max_epochs": 2},
        }
    )
    return study, load_data(study.data, study.task, study.seed)


def _warm(h, key=None):
    return SimpleNamespace(helper=h.address, key=(key or h.key).hex())


def test_the_holders_sanity_checks_are_the_ones_this_process_computes(helper, digits):
    study, data = digits
    there = warm_helper.call(_warm(helper), "sanity", study, data)
    here = run_sanity(study, data)
    assert there.passed and [c.name for c in there.checks] == [c.name for c in here.checks]
    assert there.initial_loss == pytest.approx(here.initial_loss)
    assert there.lr_range.suggested_range == pytest.approx(here.lr_range.suggested_range)
    # Its socket sits in a folder only this user can enter.
    assert stat.S_IMODE(os.stat(helper.folder).st_mode) == 0o700


def test_an_error_in_the_holder_is_raised_in_the_caller(helper, digits, tmp_path):
    study, data = digits
    empty = locate_run_dir(str(tmp_path))  # no best_model/ in it
    with pytest.raises(TunepipeError) as there:
        warm_helper.call(_warm(helper), "test", empty, data)
    with pytest.raises(TunepipeError) as here:
        evaluate_test(empty, data)
    assert str(there.value) == str(here.value)


def test_a_helper_out_of_reach_or_a_wrong_key_runs_the_step_here(helper, digits, capsys):
    study, data = digits
    with pytest.raises(warm_helper.HelperGone):
        warm_helper.call(_warm(helper, key=b"x" * 32), "sanity", study, data)
    gone = SimpleNamespace(helper=helper.folder + "/nothing.sock", key=helper.key.hex())
    result = warm_helper.calling(gone, "sanity", run_sanity)(study, data)
    assert result.passed
    assert "helper is gone" in capsys.readouterr().err


def test_only_studies_without_user_code_gpu_or_large_data_use_it(digits):
    study, data = digits
    warm = SimpleNamespace(helper="/tmp/x.sock", key="00")
    assert warm_helper.usable(warm, study, data, [])
    assert not warm_helper.usable(None, study, data, [])
    assert not warm_helper.usable(SimpleNamespace(helper=None, key=None), study, data, [])
    assert not warm_helper.usable(warm, study, data, ["/home/me/study"])  # the user's code
    assert not warm_helper.usable(warm, study, None, [])  # an own trainable
    gpu = study.model_copy(update={"resources": study.resources.model_copy(update={"gpu": 1})})
    assert not warm_helper.usable(warm, gpu, data, [])
    big = SimpleNamespace(
        x=SimpleNamespace(nbytes=warm_helper.DATA_LIMIT), y=SimpleNamespace(nbytes=1)
    )
    assert not warm_helper.usable(warm, study, dataclasses.replace(data, train=big), [])


def test_the_run_says_which_work_goes_to_the_holder(digits, capsys):
    from tunepipe.engine.runner import _helper

    study, data = digits
    warm = SimpleNamespace(helper="/tmp/x.sock", key="00")
    holder = "the warm Ray's holder"
    assert _helper(warm, study, data, []).where == holder  # a run: its checks, no test split
    assert capsys.readouterr().err.startswith("sanity checks: in the warm Ray's holder")
    assert _helper(warm, study, data, [], sanity=False) is None  # a resume: nothing to send
    with_test = dataclasses.replace(data, test=data.val)
    assert _helper(warm, study, with_test, [], sanity=False).where == holder
    assert capsys.readouterr().err.startswith("test evaluation: in the warm Ray's holder")


def test_a_forked_painter_does_the_torch_work_of_a_cold_run(digits, capsys, monkeypatch):
    from tunepipe.engine import runner
    from tunepipe.report import painter as p
    from tunepipe.report.painter import import_torch_work

    class FakePainter:
        def __init__(self, torch_work: bool) -> None:
            self.torch_work, self.calls = torch_work, []

        def run(self, fn, *args, background=False):
            self.calls.append((fn, background))
            return lambda: fn(*args) if fn is not import_torch_work else None

    study, data = digits
    with_test = dataclasses.replace(data, test=data.val)
    forked = FakePainter(torch_work=True)
    monkeypatch.setattr(p, "_current", forked)
    work = runner._helper(None, study, with_test, [])
    assert work.where == "a helper process"
    assert capsys.readouterr().err.startswith(
        "sanity checks and test evaluation: in a helper process"
    )
    assert forked.calls == [(import_torch_work, True)]  # torch imported at once, in the background
    result = work.sanity(study, with_test)  # the checks: in the background too
    assert forked.calls[-1][1] is True and result.passed
    # Nothing to do (a resume without a test split): nothing imported in the painter.
    idle = FakePainter(torch_work=True)
    monkeypatch.setattr(p, "_current", idle)
    assert runner._helper(None, study, data, [], sanity=False) is None and idle.calls == []
    # Code of the user's (their folders), a GPU, a spawned painter: here, as before.
    assert runner._helper(None, study, with_test, ["/some/folder"]) is None
    monkeypatch.setattr(p, "_current", FakePainter(torch_work=False))
    assert runner._helper(None, study, with_test, []) is None
