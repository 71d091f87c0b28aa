"""What a study leaves behind once its search ends: results.parquet, history.parquet,
decisions.json, summary.json, best_model/, the held-out test metrics and report.html
(docs/run-dir.md), every file telling the same story."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

from tunepipe.config import StudyConfig
from tunepipe.engine.finish import finish_overlapped
from tunepipe.engine.phases import PhaseClock
from tunepipe.errors import StudyFailed
from tunepipe.storage import RunLocation


@dataclass
class RunOutcome:
    run_dir: str
    summary: dict[str, Any]
    note: str | None = None  # said before the summary (a resume that found nothing to do)


def write_outputs(
    study: StudyConfig,
    data: Any,
    loc: RunLocation,
    grid: Any,
    scheduler: Any,
    clock: PhaseClock,
    started_ray: tuple[bool, str],
    limits: Any = None,
    kind: str = "run",
    evaluate: Any = None,
) -> RunOutcome:
    """Write the run folder's outputs; `evaluate(loc, data)` runs the test evaluation (default
    `evaluate_test`, here; the runner may pass the warm Ray's holder's)."""
    from tunepipe.engine import results as res
    from tunepipe.engine.schedule import (
        DECISIONS_FILE,
        decision_dict,
        nothing_learned,
        read_decisions,
    )
    from tunepipe.engine.sessions import read_sessions, record_session

    with clock.phase("outputs"):
        decisions = read_decisions(loc)  # those made before a resume survive in the run folder
        decisions.update({tid: decision_dict(rec) for tid, rec in scheduler.decisions.items()})
        if limits is not None:  # trials a time budget left unfinished (resumable)
            decisions.update(limits.extra_decisions())
        records = res.trial_records(grid, study, decisions)
        loc.write_json(DECISIONS_FILE, res.final_decisions(records, decisions))
        loc.write_parquet("results.parquet", res.results_table(records, study))
        loc.write_parquet("history.parquet", res.history_table(records))
        before = sum(float(s["seconds"]) for s in read_sessions(loc))  # earlier sessions
        summary = res.summary(records, study, before + clock.elapsed())
        if limits is not None and limits.ended_by():
            summary["ended_by"] = limits.ended_by()
        if data is not None:
            loc.write_json("data_stats.json", data.stats())
        unlearned = nothing_learned(
            summary, data.chance_loss() if data else study.stopping.initial_loss
        )
        if unlearned:
            summary["nothing_learned"] = unlearned
        best = next((r for r in records if r.trial_id == summary["best_trial_id"]), None)
        if unlearned:
            best = None  # a chance-level model is never saved or tested as "best"
        if best is not None and best.checkpoint:
            _save_best_model(loc, best.checkpoint)
    if best is not None and best.checkpoint and data is not None and data.test is not None:
        with clock.phase("test"):
            summary["test"] = (evaluate or evaluate_test)(loc, data)
    loc.write_json("summary.json", summary)  # the report reads it
    with clock.phase("report"):  # drawn while Ray shuts down: neither waits for the other
        apart = finish_overlapped(
            loc.path if loc.is_local else None, started_ray[0], warm=started_ray[1] == "warm"
        )
    total = record_session(loc, kind, clock.elapsed(), "finished")  # every session's wall
    summary.update(
        wall_seconds=round(total, 2),
        phases=clock.rounded(),
        phases_overlapped={**clock.beside, **apart},
        ray=started_ray[1],
    )
    loc.write_json("summary.json", summary)
    from tunepipe.engine.trackers import attach_study_outputs

    attach_study_outputs(study, loc, summary)  # after the report: it attaches report.html too
    if unlearned:
        raise StudyFailed(f"{unlearned}. Results are in {loc.display}")
    if summary["best_trial_id"] is None and not summary.get("ended_by", "").startswith("time"):
        raise StudyFailed(
            f"no trial produced a finite {study.metric}; stop reasons: "
            f"{summary['stop_reasons']}. Results are in {loc.display}"
        )
    return RunOutcome(loc.display, summary)


def _save_best_model(loc: RunLocation, checkpoint_path: str) -> None:
    import pyarrow.fs as pafs

    target = f"{loc.path}/best_model"
    if loc.is_local:
        shutil.copytree(checkpoint_path, target, dirs_exist_ok=True)
    else:
        pafs.copy_files(
            checkpoint_path, target, source_filesystem=loc.fs, destination_filesystem=loc.fs
        )


def evaluate_test(loc: RunLocation, data: Any) -> dict[str, float]:
    """P8: the held-out test split is used once, on the best model, at the very end."""
    from tunepipe.models import task_head
    from tunepipe.predict import load_model
    from tunepipe.train.loop import evaluate, to_tensors

    model = load_model(loc.display).model
    head = task_head(data.task)
    return evaluate(model, head, head.loss_fn(), *to_tensors(data)["test"], data, prefix="test")
