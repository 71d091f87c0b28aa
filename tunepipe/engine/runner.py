"""`tunepipe run`: check the study, read the data once, search with Ray Tune, write the results."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunepipe.config import StudyConfig
from tunepipe.engine.interrupt import Interrupted, graceful_signals
from tunepipe.errors import RunDirError, StudyFailed
from tunepipe.playbook.stage import sanity_stage
from tunepipe.storage import RunLocation, check_storage_reaches_every_node, locate

TUNER_STATE = "tuner.pkl"  # Ray Tune's record of how the Tuner was built; restore needs it


@dataclass
class RunOutcome:
    run_dir: str
    summary: dict[str, Any]


STUDY_FILE = "study.yaml"  # written first: it is what makes a folder a (resumable) study
RUN_FILE = "run.json"  # where the study came from, so resume finds relative data and code


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
    shared_storage: bool = False,
) -> RunOutcome:
    """Run a validated study end to end; returns the run folder and the summary.

    Raises RunDirError when the run folder already holds a study (nothing is overwritten),
    StorageError when a cluster spans hosts and the storage is a local path (`shared_storage`
    declares it an NFS-like mount every node sees), Interrupted on SIGINT/SIGTERM (the study is
    resumable) and StudyFailed when no trial produced a usable result.
    """
    updates = {
        k: v
        for k, v in {"storage": storage, "num_samples": num_samples, "seed": seed}.items()
        if v is not None
    }
    study = study.model_copy(update=updates)
    study_dir = (study_dir or Path.cwd()).resolve()
    if study.specialists:  # one ordinary study per group, combined (tunepipe.specialists)
        from tunepipe.specialists import run_specialists

        return run_specialists(study, study_dir, address=address, progress=progress)
    loc = locate(study.storage, study.name)  # outputs go where the user runs tunepipe
    if loc.exists(STUDY_FILE):  # a folder holding only a failed sanity stage's files is reused
        raise RunDirError(
            f"{loc.display} already holds a study; nothing was changed. Use another "
            "--storage, rename the study (name:), or `tunepipe resume "
            f"{loc.display}` to continue it"
        )
    t0 = time.monotonic()
    data = _load_data(study, study_dir)  # bad data stops here, before Ray starts
    paths = _user_paths(study, study_dir)  # before sanity: it builds the user's model too
    study = _init_from(study, data, study_dir, loc, progress)  # another shape stops here too
    # Ray first: its workers boot and import torch (session.PRELOAD_MODULES) during the sanity
    # stage, so the first trials start at once.
    _start_ray(paths, address, num_cpus, loc, shared_storage)
    study = _sanity(study, data, loc, progress)
    # Written before the search, not after: a study killed midway must be resumable.
    loc.write_text(STUDY_FILE, yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
    loc.write_json(RUN_FILE, {"study_dir": str(study_dir)})
    grid, scheduler = _fit(study, data, loc, progress)
    return _write_outputs(study, data, loc, grid, scheduler, time.monotonic() - t0)


def resume_study(
    run_dir: str,
    *,
    study_dir: Path | None = None,
    address: str | None = None,
    progress: bool = True,
    num_cpus: int | None = None,
    shared_storage: bool = False,
) -> RunOutcome:
    """Continue an interrupted study in its run folder and rewrite its outputs.

    Finished trials are kept, unfinished ones continue from their newest checkpoint, errored ones
    are retried. The study, its seed (hence the same data split) and its folder come from the run
    folder's study.yaml and run.json; `study_dir` overrides the folder relative paths start from.
    """
    from tunepipe.storage import locate_run_dir
    from tunepipe.study import parse_study

    loc = locate_run_dir(run_dir)
    if not loc.exists(STUDY_FILE):
        raise RunDirError(
            f"{loc.display} holds no {STUDY_FILE}, so it is not a tunepipe run folder or its "
            "study never started; give the run folder itself (<storage>/<study name>), or start "
            "the study with `tunepipe run STUDY`"
        )
    study = parse_study(
        yaml.safe_load(loc.read_text(STUDY_FILE)), source=f"{loc.display}/{STUDY_FILE}"
    )
    # The folder may have been moved since: it, not the storage recorded inside, is the truth.
    study = study.model_copy(update={"storage": loc.storage, "name": loc.name})
    if study_dir is None:
        recorded = loc.read_json(RUN_FILE).get("study_dir") if loc.exists(RUN_FILE) else None
        study_dir = Path(recorded) if recorded and Path(recorded).is_dir() else Path.cwd()
    study_dir = study_dir.resolve()
    t0 = time.monotonic()
    data = _load_data(study, study_dir)
    _start_ray(_user_paths(study, study_dir), address, num_cpus, loc, shared_storage)
    # No tuner.pkl: the driver died before Tune began, so there is nothing to keep.
    restore = loc.exists(TUNER_STATE)
    grid, scheduler = _fit(study, data, loc, progress, restore=restore)
    return _write_outputs(study, data, loc, grid, scheduler, time.monotonic() - t0)


def _start_ray(
    paths: list[str],
    address: str | None,
    num_cpus: int | None,
    loc: RunLocation,
    shared_storage: bool,
) -> None:
    from tunepipe.engine.session import init_ray

    init_ray(address, num_cpus=num_cpus, extra_pythonpath=paths)
    import ray

    # Always, not only with an address: inside a Ray job, RAY_ADDRESS joins the cluster silently.
    check_storage_reaches_every_node(loc, _node_hosts(ray.nodes()), shared_storage)


def _user_paths(study: StudyConfig, study_dir: Path) -> list[str]:
    """The study's folder and code_dir, on this process's import path (models, trainables)."""
    paths = [str(study_dir)] + (
        [str((study_dir / study.code_dir).resolve())] if study.code_dir else []
    )
    sys.path[:0] = [p for p in paths if p not in sys.path]
    return paths


def _sanity(study: StudyConfig, data: Any, loc: RunLocation, progress: bool) -> StudyConfig:
    """P1/P5: check before searching (raises SanityFailed on a failed check); resolves `lr: auto`
    and hands the measured loss before training to the divergence rule as its reference."""
    study, result = sanity_stage(study, data, loc, progress=progress)
    measured = getattr(result, "initial_loss", None)
    if measured is not None and study.stopping.initial_loss is None:
        stopping = study.stopping.model_copy(update={"initial_loss": float(measured)})
        study = study.model_copy(update={"stopping": stopping})
    return study


def _init_from(
    study: StudyConfig, data: Any, study_dir: Path, loc: RunLocation, progress: bool
) -> StudyConfig:
    from tunepipe.train.pretrained import resolve_init_from

    study, transfer = resolve_init_from(study, data, study_dir)
    if transfer is not None:
        loc.write_json("init_from.json", {"run_dir": study.init_from, **transfer.to_json()})
        if progress:
            print(f"init_from {study.init_from}: loaded {', '.join(transfer.loaded)}")
            print(f"  fresh: {', '.join(transfer.fresh) or 'none'}")
    return study


def _node_hosts(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["NodeManagerAddress"] for n in nodes if n.get("Alive")}


def _load_data(study: StudyConfig, study_dir: Path) -> Any:
    if study.trainable:
        return None
    from tunepipe.data import load_data
    from tunepipe.space import min_batch_size

    return load_data(
        study.data, study.task, study.seed, min_rows=min_batch_size(study), base_dir=study_dir
    )


def _fit(
    study: StudyConfig, data: Any, loc: RunLocation, progress: bool, restore: bool = False
) -> tuple[Any, Any]:
    # Tune forces a state snapshot whenever a trial saved num_to_keep checkpoints since the last
    # one (that is what makes resume lose nothing) and then warns each time: the warning is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray's newer console output prints a configuration box and paths even at verbose=0; the
    # progress view replaces it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from ray import tune

    from tunepipe.engine.schedule import build_scheduler
    from tunepipe.engine.session import trial_actors_on_prestarted_workers

    trainable = _trainable(study, data)
    if restore:
        tuner = tune.Tuner.restore(
            loc.display,
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=True,  # retried from their newest checkpoint
            restart_errored=False,
        )
        # The scheduler (and the progress view reading it) come back from Tune's tuner.pkl.
        scheduler = tuner._local_tuner._tune_config.scheduler  # no public accessor in 2.60
    else:
        scheduler = build_scheduler(study, data)
        tuner = _new_tuner(study, loc, trainable, scheduler, progress)
    # Tune reads the variable when fit() builds its callbacks; tunepipe passes its own (_loggers).
    with (
        graceful_signals() as received,
        trial_actors_on_prestarted_workers(),
        _env_var("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1"),
    ):
        try:
            grid = tuner.fit()
        except KeyboardInterrupt:
            if not received:
                raise
    if received:
        raise Interrupted(received[0], loc.display)
    return grid, scheduler


def _new_tuner(
    study: StudyConfig, loc: RunLocation, trainable: Any, scheduler: Any, progress: bool
) -> Any:
    from ray import tune

    from schedulers.search import ResumeFirstSearch
    from tunepipe.engine.progress import ProgressView, RuleNotice
    from tunepipe.engine.schedule import DecisionLog
    from tunepipe.engine.space import to_tune_space

    callbacks = [
        RuleNotice(getattr(scheduler, "judge", None)),
        DecisionLog(scheduler, loc),
        *_loggers(study),
    ]
    if progress:
        callbacks.append(
            ProgressView(
                study.metric,
                study.mode,
                _n_trials(study),
                reasons=lambda tid: _live_reason(scheduler, tid),
            )
        )
    return tune.Tuner(
        trainable,
        param_space=to_tune_space(study),
        tune_config=tune.TuneConfig(
            metric=study.metric,
            mode=study.mode,
            num_samples=study.num_samples,
            scheduler=scheduler,
            reuse_actors=True,
            search_alg=ResumeFirstSearch(scheduler, random_state=study.seed),
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
            failure_config=tune.FailureConfig(max_failures=study.max_failures),
        ),
    )


@contextmanager
def _env_var(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the duration; the previous value (or none) after."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _loggers(study: StudyConfig) -> list[Any]:
    """Ray's per-trial JSON and CSV logs (the results tables are read from them), and TensorBoard
    event files only when the study asks: writing and flushing those on the driver at every
    report made the 32-trial digits search about 13% slower (7.6 s against 6.6 s, median of 3
    runs of seed 1). Tune adds all three itself unless TUNE_DISABLE_AUTO_CALLBACK_LOGGERS is set
    (see _fit)."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    return [CSVLoggerCallback(), JsonLoggerCallback()] + (
        [TBXLoggerCallback()] if study.tensorboard else []
    )


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
    from tunepipe.engine.schedule import decision_dict, read_decisions

    decisions = read_decisions(loc)  # those made before a resume survive in the run folder
    decisions.update({tid: decision_dict(rec) for tid, rec in scheduler.decisions.items()})
    records = res.trial_records(grid, study, decisions)
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
