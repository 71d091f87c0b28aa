"""The sanity stage on a healthy study (digits), its outputs, --apply, lr: auto, the runner hook."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import yaml

from tunepipe.config import LogUniform
from tunepipe.errors import SanityFailed, StudyFileError
from tunepipe.playbook import LRRange, SanityResult
from tunepipe.playbook.sanity import resolve_auto_lr, run_sanity
from tunepipe.playbook.stage import check_study, load_study_data, sanity_stage
from tunepipe.study import load_study, parse_study

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DIGITS = EXAMPLES / "digits.yaml"


def cli(*args: str) -> int:
    """Run `tunepipe ARGS` in-process through the console entry point; its exit code."""
    from tunepipe.cli import main

    argv = sys.argv
    sys.argv = ["tunepipe", *args]
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = argv
    return 0


@pytest.fixture(scope="module")
def digits():
    study = load_study(DIGITS)
    return study, load_study_data(study, EXAMPLES)


@pytest.fixture(scope="module")
def digits_result(digits):
    t0 = time.monotonic()
    result = run_sanity(*digits)
    print(f"\ndigits sanity stage: {time.monotonic() - t0:.1f} s")
    return result


def test_digits_passes_every_check_quickly(digits_result):
    statuses = {c.name: c.status for c in digits_result.checks}
    assert digits_result.passed
    assert set(statuses.values()) == {"pass"}, statuses  # a healthy study: no false alarms
    assert {"initial loss", "overfit tiny subset", "lr range test", "split leakage"} <= set(
        statuses
    )
    assert digits_result.seconds < 60


def test_digits_lr_range_is_sane(digits_result):
    r = digits_result.lr_range
    lo, hi = r.suggested_range
    assert lo < r.suggested_lr < hi
    assert 1e-4 < r.suggested_lr < 1e-1  # Adam on a small MLP: L1's usual values
    assert len(r.lrs) == len(r.losses) == len(r.smoothed) <= 100
    assert r.lrs == sorted(r.lrs)


def test_digits_initial_loss_is_near_ln_c(digits_result):
    assert digits_result.initial_loss == pytest.approx(2.3026, rel=0.5)


def test_cli_writes_schema_plots_and_apply(tmp_path, capsys):
    out, applied = tmp_path / "out", tmp_path / "other" / "tuned.yaml"
    applied.parent.mkdir()
    code = cli("sanity", str(DIGITS), "--out", str(out), "--apply", str(applied))
    assert code == 0, capsys.readouterr().err
    doc = json.loads((out / "sanity.json").read_text())
    assert set(doc) >= {"passed", "checks", "lr_range", "seconds"} and doc["passed"] is True
    assert all(set(c) >= {"name", "status", "detail"} for c in doc["checks"])
    assert set(doc["lr_range"]) >= {"lrs", "losses", "smoothed", "suggested_lr", "suggested_range"}
    for png in ("sanity_lr_range.png", "sanity_overfit.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tuned = load_study(applied)
    lo, hi = doc["lr_range"]["suggested_range"]
    assert isinstance(tuned.search_space["lr"], LogUniform)
    assert tuned.search_space["lr"].low == pytest.approx(lo, rel=0.01)
    assert tuned.search_space["lr"].high == pytest.approx(hi, rel=0.01)
    assert tuned.search_space["hidden_width"] == load_study(DIGITS).search_space["hidden_width"]


def test_apply_rebases_a_relative_data_path(tmp_path, digits_result):
    from tunepipe.data.io import BUILTIN_DIR
    from tunepipe.playbook.stage import apply_lr_range

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "d.parquet").write_bytes((BUILTIN_DIR / "digits.parquet").read_bytes())
    study = tmp_path / "a" / "s.yaml"
    study.write_text("name: s\ndata: {source: d.parquet, label: label}\nmodel: {kind: mlp}\n")
    out = apply_lr_range(study, digits_result, tmp_path / "s2.yaml")
    raw = yaml.safe_load(out.read_text())
    assert raw["data"]["source"] == "a/d.parquet"
    assert load_study_data(load_study(out), out.parent).train.x.shape[1] == 64


def test_resolve_auto_lr_substitutes_the_suggested_range():
    raw = yaml.safe_load(DIGITS.read_text())
    raw["search_space"]["lr"] = "auto"
    study = parse_study(raw)
    result = SanityResult([], lr_range=LRRange([], [], [], 3e-3, (3.14159e-4, 0.0512)))
    resolved = resolve_auto_lr(study, result)
    assert resolved.search_space["lr"] == LogUniform(type="loguniform", low=3.14e-4, high=0.0512)
    assert study.search_space["lr"] == "auto"  # the given study is not changed
    assert resolve_auto_lr(load_study(DIGITS), result).search_space["lr"].low == 1e-4
    with pytest.raises(SanityFailed, match="found no rate"):
        resolve_auto_lr(study, SanityResult([], lr_range=None))


def test_lr_auto_is_refused_where_it_cannot_work():
    raw = yaml.safe_load(DIGITS.read_text())
    raw["search_space"]["lr"] = "auto"
    raw["playbook"] = {"sanity": False}
    refused = r"auto needs the sanity stage \(playbook.sanity: true\)"
    with pytest.raises(StudyFileError, match=refused):
        parse_study(raw)
    raw["search_space"]["lr"] = "fast"
    raw["playbook"] = {}
    with pytest.raises(StudyFileError, match="search_space.lr"):
        parse_study(raw)
    raw["search_space"]["lr"] = "auto"
    raw["playbook"] = {"sanity": True}
    assert parse_study(raw).search_space["lr"] == "auto"


def test_stage_resolves_auto_and_writes_into_the_run_folder(tmp_path, digits):
    from tunepipe.storage import locate

    study, data = digits
    auto = study.model_copy(update={"search_space": {**study.search_space, "lr": "auto"}})
    loc = locate(str(tmp_path), "run")
    resolved, result = sanity_stage(auto, data, loc, progress=False)
    assert resolved.search_space["lr"].type == "loguniform"
    assert resolved.search_space["lr"].low < result.lr_range.suggested_lr
    assert (tmp_path / "run" / "sanity.json").is_file()
    off = study.model_copy(update={"playbook": study.playbook.model_copy(update={"sanity": False})})
    assert sanity_stage(off, data, locate(str(tmp_path), "off"), progress=False) == (off, None)
    assert not (tmp_path / "off").exists()


def test_own_trainable_gets_only_the_checks_that_apply():
    study = parse_study(
        {
            "name": "own",
            "trainable": "mymod:train",
            "search_space": {"lr": {"type": "uniform", "low": 1e-5, "high": 1e-1}},
        }
    )
    result = run_sanity(study, None)
    assert [c.name for c in result.checks] == ["search space"]
    assert result.checks[0].status == "warn" and "loguniform" in result.checks[0].causes[0]
    assert result.passed and result.lr_range is None
    assert "own trainable" in result.notes[0] and "skipped" in result.notes[0]


@pytest.mark.ray  # run_study starts Ray before the sanity stage; the shared session is reused
def test_failed_stage_leaves_a_run_folder_a_rerun_may_reuse(ray_session, tmp_path):
    from tunepipe.engine.runner import run_study

    raw = yaml.safe_load(DIGITS.read_text())
    raw["search_space"]["lr"] = 1e-8
    raw["playbook"] = {"overfit_steps": 20, "lr_range_steps": 20}
    study = parse_study(raw)
    for _ in range(2):  # the second run must not refuse: the folder holds only sanity files
        with pytest.raises(SanityFailed, match="learning rate too low"):
            run_study(study, study_dir=EXAMPLES, storage=str(tmp_path), progress=False)
    assert sorted(p.name for p in (tmp_path / "digits-mlp").iterdir()) == [
        "sanity.json",
        "sanity_lr_range.png",
        "sanity_overfit.png",
    ]


def test_check_study_raises_with_exit_code_1(tmp_path):
    raw = yaml.safe_load(DIGITS.read_text())
    raw["search_space"]["lr"] = 1e-8
    raw["playbook"] = {"overfit_steps": 20, "lr_range_steps": 20}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SanityFailed) as info:
        check_study(path, out=str(tmp_path / "out"))
    assert info.value.exit_code == 1
    assert json.loads((tmp_path / "out" / "sanity.json").read_text())["passed"] is False
