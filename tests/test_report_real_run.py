"""The report of a real study, section by section, against the files that study wrote.

One small digits study runs on the shared embedded Ray (sanity stage included, so every section
has real input); each test reads what the run wrote (results.parquet, summary.json, sanity.json,
run.json) and checks that the matching section of report.html says the same.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import study_dict
from tests.report_parse import captions, cards, rows, section, text
from tunepipe.playbook_rules import RULES
from tunepipe.report.checks import problems
from tunepipe.report.html import fmt

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def run_dir(ray_session, tmp_path_factory) -> Path:
    from tunepipe.engine.runner import run_study
    from tunepipe.study import parse_study

    study = parse_study(
        study_dict(
            name="real",
            num_samples=1,
            # The sanity stage trains at the middle value (0.03): 10 would fail it (P1, P5).
            search_space={"lr": {"type": "grid", "values": [10.0, 0.03]}},
            scheduler={"kind": "fifo", "max_epochs": 2},
            # Small but real: the overfit check stops as soon as it has overfit.
            playbook={"overfit_steps": 200, "lr_range_steps": 10},
        )
    )
    outcome = run_study(study, storage=str(tmp_path_factory.mktemp("real")), progress=False)
    return Path(outcome.run_dir)


@pytest.fixture(scope="module")
def html(run_dir: Path) -> str:
    return (run_dir / "report.html").read_text(encoding="utf-8")


def _results(run_dir: Path) -> list[dict]:
    return pq.read_table(run_dir / "results.parquet").to_pylist()


def _json(run_dir: Path, name: str) -> dict:
    return json.loads((run_dir / name).read_text())


def test_the_page_is_whole_and_names_the_versions_it_ran_with(run_dir: Path, html: str) -> None:
    assert problems(run_dir / "report.html") == []
    versions = _json(run_dir, "run.json")["versions"]
    import ray

    import tunepipe

    assert versions["tunepipe"] == tunepipe.__version__ and versions["ray"] == ray.__version__
    header = re.search(r'<div class="sub">(.*?)</div>', html).group(1)
    assert f"tunepipe {tunepipe.__version__}" in header and f"Ray {ray.__version__}" in header


def test_summary_and_best_config_are_the_summary_json(run_dir: Path, html: str) -> None:
    summary = _json(run_dir, "summary.json")
    shown = cards(section(html, "summary"))
    assert shown["best trial"] == summary["best_trial_id"]
    assert shown["best val_loss"] == fmt(summary["best_val_loss"])
    assert shown["trials"] == "2" == str(summary["n_trials"])
    best = rows(section(html, "best-config"))
    assert best == [[k, fmt(v)] for k, v in summary["best_config"].items()]
    assert best == [["lr", "0.03"]]  # lr 10 diverged: never the best


def test_stop_reasons_and_trials_are_the_results_table(run_dir: Path, html: str) -> None:
    results = _results(run_dir)
    stops = rows(section(html, "stop-reasons"))
    assert stops == [[r["trial_id"], r["stop_reason"], str(r["epochs"])] for r in results]
    by_lr = {r["config.lr"]: r["stop_reason"] for r in results}
    assert by_lr[10.0] == "diverged"  # P5: Adam at lr 10 explodes
    assert captions(section(html, "stop-reasons")) == ["report_stop_reasons.png"]
    trials = section(html, "trials")
    finite = sorted(
        (r for r in results if r["val_loss"] == r["val_loss"]), key=lambda r: r["val_loss"]
    )
    finite = [r["trial_id"] for r in finite]  # NaN (a diverged trial's) is not == itself
    listed = [row[0] for row in rows(trials)]
    assert sorted(listed) == sorted(r["trial_id"] for r in results)
    assert listed[: len(finite)] == finite  # best first, trials without a finite value last
    assert re.search(r'<tr class="best"><td>([^<]+)</td>', trials).group(1) == finite[0]


def test_pictures_are_drawn_from_the_history(run_dir: Path, html: str) -> None:
    for sid, png in (
        ("curves", "report_curves.png"),
        ("lr-history", "report_lr_history.png"),
        ("hyperparameters", "report_hyperparameters.png"),
        ("diagnostics", "report_diagnostics.png"),
    ):
        assert captions(section(html, sid)) == [png], sid
        assert (run_dir / png).stat().st_size > 0
    best = _json(run_dir, "summary.json")["best_trial_id"]
    assert f"the best trial {best}" in text(section(html, "diagnostics"))


def test_sanity_section_is_the_sanity_json(run_dir: Path, html: str) -> None:
    checks = _json(run_dir, "sanity.json")["checks"]
    shown = rows(section(html, "sanity"))
    assert [(r[0], r[1]) for r in shown] == [(c["status"], c["name"]) for c in checks]
    # The stage's own plots, embedded as drawn (not drawn again as report_lr_range.png).
    assert captions(section(html, "sanity")) == ["sanity_lr_range.png", "sanity_overfit.png"]
    assert not (run_dir / "report_lr_range.png").exists()


def test_a_run_folder_without_the_sanity_plots_gets_the_lr_range_test_drawn(
    run_dir: Path, tmp_path: Path
) -> None:
    from tunepipe.report.html import write_report

    older = _copy(run_dir, tmp_path / "older")
    for png in ("sanity_lr_range.png", "sanity_overfit.png"):
        (older / png).unlink()
    page = write_report(older).read_text()
    assert captions(section(page, "sanity")) == ["report_lr_range.png"]
    assert (older / "report_lr_range.png").stat().st_size > 0


def test_every_cited_rule_links_to_its_explanation(html: str) -> None:
    linked = set(re.findall(r'<a class="rule" href="#rule-(\w+)"', html))
    explained = {r[0]: r[1] for r in rows(section(html, "playbook"))}
    assert linked and set(explained) == linked
    for rule in linked:
        assert explained[rule] == RULES[rule][0]


def test_a_painter_draws_its_share_of_the_pictures_in_its_own_process(
    run_dir: Path, tmp_path: Path
) -> None:
    import os

    from tunepipe.report.html import PAINTER_SHARE, draw_pictures, write_report
    from tunepipe.report.painter import painting

    copy = _copy(run_dir, tmp_path / "painted")
    with painting(enabled=True) as painter:
        assert painter.pid() != os.getpid()
        drawn = painter.run(draw_pictures, copy, PAINTER_SHARE, 5)()
        assert set(drawn) == set(PAINTER_SHARE)
        assert all(png.stat().st_size > 0 for png in drawn.values())
        page = write_report(copy).read_text()
    for sid in ("curves", "lr-history", "hyperparameters", "diagnostics", "stop-reasons"):
        assert len(captions(section(page, sid))) == 1, sid
    assert captions(section(page, "hyperparameters")) == ["report_hyperparameters.png"]


def test_a_painter_that_died_costs_only_time(run_dir: Path, tmp_path: Path, capsys) -> None:
    import os
    import signal

    from tunepipe.report.html import write_report
    from tunepipe.report.painter import painting

    copy = _copy(run_dir, tmp_path / "unpainted")
    with painting(enabled=True) as painter:
        os.kill(painter.pid(), signal.SIGKILL)
        page = write_report(copy).read_text()
    assert captions(section(page, "curves")) == ["report_curves.png"]
    assert (copy / "report_hyperparameters.png").stat().st_size > 0
    assert "the painter process died" in capsys.readouterr().err


def _copy(run_dir: Path, dest: Path) -> Path:
    """The run folder copied without its report, so a test sees what it draws itself."""
    import shutil

    shutil.copytree(run_dir, dest)
    for old in [*dest.glob("report_*.png"), dest / "report.html"]:
        old.unlink(missing_ok=True)
    return dest
