"""`tunepipe run`: check the study, read the data once, search with Ray Tune, write the results."""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunepipe.config import StudyConfig
from tunepipe.engine.storage import RunLocation, locate
from tunepipe.errors import RunDirError, StudyFailed
from tunepipe.playbook.stage import only_sanity_outputs, sanity_stage


@dataclass
class RunOutcome:
    run_dir: str
    summary: dict[str, Any]


def run_study(
    study: StudyConfig,
    *,
    study_dir: Path | None = None,
    storage: str | None = None,
    address: str | None = None,
    num_samples: int | None = None,
    seed: int | None = None,
    progress: bool = True,
    num_cpus: int | None = None,
) -> RunOutcome:
    """Run a validated study end to end; returns the run folder and the summary.

    Raises RunDirError when the run folder already holds a study (nothing is overwritten) and
    StudyFailed when no trial produced a usable result.
    """
    updates = {
        k: v
        for k, v in {"storage": storage, "num_samples": num_samples, "seed": seed}.items()
        if v is not None
    }
    study = study.model_copy(update=updates)
    study_dir = (study_dir or Path.cwd()).resolve()
    loc = locate(study.storage, study.name)  # outputs go where the user runs tunepipe
    if loc.exists() and not only_sanity_outputs(loc):
        raise RunDirError(
            f"{loc.display} already holds a study; nothing was changed. Use another "
            "--storage, rename the study (name:), or `tunepipe resume "
            f"{loc.display}` to continue it"
        )
    t0 = time.monotonic()
    data = _load_data(study, study_dir)  # bad data stops here, before Ray starts
    paths = [str(study_dir)] + (
        [str((study_dir / study.code_dir).resolve())] if study.code_dir else []
    )
    sys.path[:0] = [p for p in paths if p not in sys.path]
    # P1/P5: check before searching (stops here on a failed check); resolves `lr: auto`
    study, _ = sanity_stage(study, data, loc, progress=progress)
    from tunepipe.engine.session import init_ray

    init_ray(address, num_cpus=num_cpus, extra_pythonpath=paths)
    grid, scheduler = _fit(study, data, loc, progress)
    return _write_outputs(study, data, loc, grid, scheduler, time.monotonic() - t0)


def _load_data(study: StudyConfig, study_dir: Path) -> Any:
    if study.trainable:
        return None
    from tunepipe.data import load_data
    from tunepipe.engine.space import min_batch_size

    return load_data(
        study.data, study.task, study.seed, min_rows=min_batch_size(study), base_dir=study_dir
    )


def _fit(study: StudyConfig, data: Any, loc: RunLocation, progress: bool) -> tuple[Any, Any]:
    # Tune forces a state snapshot whenever a trial saved num_to_keep checkpoints since the last
    # one (that is what makes resume lose nothing) and then warns each time: the warning is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray's newer console output prints a configuration box and paths even at verbose=0; the
    # progress view replaces it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    from tunepipe.engine.progress import ProgressView, RuleNotice
    from tunepipe.engine.schedule import build_scheduler
    from tunepipe.engine.space import to_tune_space

    scheduler = build_scheduler(study, data)
    trainable = _trainable(study, data)
    callbacks = [RuleNotice(getattr(scheduler, "judge", None))]
    if progress:
        callbacks.append(
            ProgressView(
                study.metric,
                study.mode,
                _n_trials(study),
                reasons=lambda tid: _live_reason(scheduler, tid),
            )
        )
    tuner = tune.Tuner(
        trainable,
        param_space=to_tune_space(study),
        tune_config=tune.TuneConfig(
            metric=study.metric,
            mode=study.mode,
            num_samples=study.num_samples,
            scheduler=scheduler,
            reuse_actors=True,
            search_alg=BasicVariantGenerator(random_state=study.seed),
        ),
        run_config=tune.RunConfig(
            name=study.name,
            storage_path=loc.storage,
            verbose=0,
            callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=4 if study.scheduler.kind == "pbt" else 2,  # PBT clones checkpoints
                checkpoint_score_attribute=study.metric,
                checkpoint_score_order=study.mode,
            ),
            failure_config=tune.FailureConfig(max_failures=2),
        ),
    )
    return tuner.fit(), scheduler


def _trainable(study: StudyConfig, data: Any) -> Any:
    from ray import tune

    resources = {"cpu": study.resources.cpu, "gpu": study.resources.gpu}
    if study.trainable:
        from tunepipe.models.factory import import_object

        fn = import_object(study.trainable, "trainable")
        _ship_by_value(fn)
        return tune.with_resources(fn, resources)
    from tunepipe.train.trainable import tune_trainable

    # with_parameters puts the data in Ray's object store once; every trial reads that copy.
    return tune.with_resources(
        tune.with_parameters(tune_trainable, data=data, study=study), resources
    )


def _ship_by_value(fn: Any) -> None:
    """Pickle the user's trainable module by value, so Ray workers need not import it: they may
    have started before its folder was on their path (a Ray that was already running)."""
    import ray.cloudpickle as cloudpickle

    module = sys.modules.get(getattr(fn, "__module__", ""))
    if module is not None and not module.__name__.startswith(("ray.", "tunepipe.")):
        cloudpickle.register_pickle_by_value(module)


def _n_trials(study: StudyConfig) -> int:
    grid = 1
    for v in study.search_space.values():
        if getattr(v, "type", None) == "grid":
            grid *= len(v.values)
    return study.num_samples * grid


def _live_reason(scheduler: Any, trial_id: str) -> str:
    from tunepipe.engine.schedule import decision_dict

    return decision_dict(scheduler.decisions.get(trial_id)).get("reason", "completed")


def _write_outputs(
    study: StudyConfig, data: Any, loc: RunLocation, grid: Any, scheduler: Any, wall: float
) -> RunOutcome:
    from tunepipe.engine import results as res
    from tunepipe.engine.schedule import decision_dict

    decisions = {tid: decision_dict(rec) for tid, rec in scheduler.decisions.items()}
    records = res.trial_records(grid, study, decisions)
    loc.write_text("study.yaml", yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
    loc.write_parquet("results.parquet", res.results_table(records, study))
    loc.write_parquet("history.parquet", res.history_table(records))
    summary = res.summary(records, study, wall)
    if data is not None:
        loc.write_json("data_stats.json", data.stats())
    if summary["best_trial_id"] is not None:
        best = next(r for r in records if r.trial_id == summary["best_trial_id"])
        if best.checkpoint:
            _save_best_model(loc, best.checkpoint)
            if data is not None and data.test is not None:
                summary["test"] = _evaluate_test(loc, data)
    loc.write_json("summary.json", summary)
    if loc.is_local:  # the report reads the run folder back; URIs get it via `tunepipe report`
        from tunepipe.report import write_report

        write_report(loc.path)
    if summary["best_trial_id"] is None:
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


def _evaluate_test(loc: RunLocation, data: Any) -> dict[str, float]:
    """P8: the held-out test split is used once, on the best model, at the very end."""
    from tunepipe.models import task_head
    from tunepipe.predict import load_model
    from tunepipe.train.loop import evaluate, to_tensors

    model = load_model(loc.display).model
    head = task_head(data.task)
    return evaluate(model, head, head.loss_fn(), *to_tensors(data)["test"], data, prefix="test")
