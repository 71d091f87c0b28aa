"""`tunepipe run`: check the study, read the data once, search with Ray Tune, write the results."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunepipe.config import StudyConfig
from tunepipe.engine.finish import finish_overlapped
from tunepipe.engine.interrupt import Interrupted, graceful_signals
from tunepipe.engine.phases import PhaseClock, beside
from tunepipe.engine.trackers import check_trackers
from tunepipe.errors import RunDirError, StudyFailed
from tunepipe.playbook.stage import sanity_stage
from tunepipe.storage import (
    STUDY_FILE,
    RunLocation,
    check_storage_reaches_every_node,
    has_trials,
    new_run_location,
)
from tunepipe.versions import versions

TUNER_STATE = "tuner.pkl"  # Ray Tune's record of how the Tuner was built; restore needs it


@dataclass
class RunOutcome:
    run_dir: str
    summary: dict[str, Any]
    note: str | None = None  # said before the summary (a resume that found nothing to do)


# Where the study came from (so resume finds relative data and code) and the versions it ran with.
RUN_FILE = "run.json"


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
    started: float | None = None,
    fresh: bool = False,
) -> RunOutcome:
    """Run a validated study end to end; returns the run folder and the summary.

    The run folder is new (`storage.new_run_location`): a study that already ran keeps its
    folder. Raises StorageError when a cluster spans hosts and the storage is a local path
    (`shared_storage` declares it an NFS-like mount every node sees), Interrupted on
    SIGINT/SIGTERM (the study is resumable) and StudyFailed when no trial produced a usable
    result. `started` (a time.time() value, e.g. the process's start) is where summary.json's
    wall and phases begin; default now. Without `address`, the warm Ray of `tunepipe up` is used
    when one is up, unless `fresh`.
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
    # <storage>/<name>, else <name>-2, -3, ...: a second run never touches the first's results.
    loc = new_run_location(study.storage, study.name)
    print(f"run folder: {loc.display}", file=sys.stderr)
    if study.metric.endswith("_acc"):
        print(
            f"note: selecting on {study.metric}; the playbook's rules read losses (P3)",
            file=sys.stderr,
        )
    from tunepipe.engine.sessions import run_record

    check_trackers(study)  # a missing package or W&B account stops here, not after sanity
    clock = PhaseClock(started)
    with clock.phase("data"):
        data = _load_data(study, study_dir)  # bad data stops here, before Ray starts
    paths = _user_paths(study, study_dir)  # before sanity: it builds the user's model too
    study = _init_from(study, data, study_dir, loc, progress)  # another shape stops here too
    # The sanity stage (and its torch import) runs beside Ray's start, which mostly waits for
    # Ray's processes; Ray's workers boot and import torch (session.PRELOAD_MODULES) meanwhile,
    # so the first trials start at once. A failed check is raised once Ray is up.
    with clock.phase("ray_start_and_sanity"):
        sanity = beside(lambda: _sanity(study, data, loc, progress), "sanity")
        started_ray = _start_ray(paths, address, num_cpus, loc, shared_storage, fresh)
        study, clock.beside["sanity"] = sanity()
        _check_resources(study)  # a GPU study never runs silently on CPUs
    # Written before the search, not after: a study killed midway must be resumable.
    loc.write_text(STUDY_FILE, yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
    loc.write_json(RUN_FILE, {**run_record(study_dir), "versions": versions()})
    return _search(study, data, loc, progress, clock, started_ray, "run")


def resume_study(
    run_dir: str,
    *,
    study_dir: Path | None = None,
    address: str | None = None,
    progress: bool = True,
    num_cpus: int | None = None,
    shared_storage: bool = False,
    time_budget: float | None = None,
    started: float | None = None,
) -> RunOutcome:
    """Continue an interrupted study in its run folder and rewrite its outputs.

    `time_budget` (seconds; 0: none) replaces the study's budget.time for this session.

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
    from tunepipe.engine.sessions import finished_note, recorded_study_dir

    note = finished_note(loc)
    if note is not None:  # a finished study: nothing to resume, nothing changed
        return RunOutcome(loc.display, loc.read_json("summary.json"), note=note)
    study_dir = (study_dir or recorded_study_dir(loc, RUN_FILE)).resolve()
    if not has_trials(loc):  # resuming would repeat whatever stopped it
        raise RunDirError(
            f"{loc.display}: the study stopped before its first trial reported, so there is "
            "nothing to resume; correct the study file and start it with `tunepipe run STUDY` "
            "(it takes this folder over)"
        )
    study = parse_study(
        yaml.safe_load(loc.read_text(STUDY_FILE)), source=f"{loc.display}/{STUDY_FILE}"
    )
    # The folder may have been moved since: it, not the storage recorded inside, is the truth.
    study = study.model_copy(update={"storage": loc.storage, "name": loc.name})
    clock = PhaseClock(started)
    with clock.phase("data"):
        data = _load_data(study, study_dir)
    with clock.phase("ray_start"):
        paths = _user_paths(study, study_dir)
        started_ray = _start_ray(paths, address, num_cpus, loc, shared_storage)
        _check_resources(study)
    # No tuner.pkl: the driver died before Tune began, so there is nothing to keep.
    restore = loc.exists(TUNER_STATE)
    return _search(
        study, data, loc, progress, clock, started_ray, "resume", restore, budget=time_budget
    )


def _search(
    study: StudyConfig,
    data: Any,
    loc: RunLocation,
    progress: bool,
    clock: PhaseClock,
    started_ray: tuple[bool, str],
    kind: str,
    restore: bool = False,
    budget: float | None = None,
) -> RunOutcome:
    """Search, then write the outputs; each session's time is recorded (wall_seconds sums them)."""
    from tunepipe.engine.sessions import record_session

    try:
        with clock.phase("search"):
            grid, scheduler, limits = _fit(
                study, data, loc, progress, restore=restore, budget=budget
            )
    except Interrupted as exc:
        record_session(loc, kind, clock.elapsed(), signal.Signals(exc.signum).name)
        raise
    return _write_outputs(study, data, loc, grid, scheduler, clock, started_ray, limits, kind)


def _start_ray(
    paths: list[str],
    address: str | None,
    num_cpus: int | None,
    loc: RunLocation,
    shared_storage: bool,
    fresh: bool = False,
) -> tuple[bool, str]:
    """Start or join Ray: the cluster at `address`, else the warm Ray of `tunepipe up` unless
    `fresh`, else an embedded one. Returns (whether this call connected, so the run disconnects
    at its end; False in a test's shared session) and which Ray it is."""
    import ray

    from tunepipe.engine.session import init_ray
    from tunepipe.engine.warm import current

    connected = ray.is_initialized()
    warm = None if (address or fresh or connected) else current()
    if warm is not None:
        print(
            f"using the warm Ray of `tunepipe up` at {warm.address} (dashboard {warm.dashboard});"
            " --fresh starts a Ray of its own",
            file=sys.stderr,
        )
    init_ray(
        warm.address if warm else address,
        num_cpus=num_cpus,
        extra_pythonpath=paths,
        warm=warm is not None,
    )
    # Always, not only with an address: inside a Ray job, RAY_ADDRESS joins the cluster silently.
    check_storage_reaches_every_node(loc, _node_hosts(ray.nodes()), shared_storage)
    kind = (
        "warm" if warm else ("cluster" if address or os.environ.get("RAY_ADDRESS") else "embedded")
    )
    return not connected, kind


def _check_resources(study: StudyConfig) -> None:
    from tunepipe.engine.gpu_check import check_gpu_request, gpu_batch_notes

    check_gpu_request(study)
    for note in gpu_batch_notes(study):
        print(note, file=sys.stderr)


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
    if result is None or data is None or study.stopping.initial_loss is not None:
        return study  # P5's reference: the study's, else expected_initial_loss (schedule.py)
    reference, words = result.divergence_reference(data.chance_loss())
    if progress:
        print(f"divergence rule's reference: {words}", file=sys.stderr)
    stopping = study.stopping.model_copy(update={"initial_loss": reference})
    return study.model_copy(update={"stopping": stopping})


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
    study: StudyConfig,
    data: Any,
    loc: RunLocation,
    progress: bool,
    restore: bool = False,
    budget: float | None = None,
) -> tuple[Any, Any, Any]:
    # Tune forces a state snapshot whenever a trial saved num_to_keep checkpoints since the last
    # one (that is what makes resume lose nothing) and then warns each time: the warning is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray's newer console output prints a configuration box and paths even at verbose=0; the
    # progress view replaces it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from ray import tune

    from tunepipe.engine.progress import reconnect_progress
    from tunepipe.engine.quiet import quiet_ray
    from tunepipe.engine.ray_private import restored_callbacks, restored_scheduler, restored_stop
    from tunepipe.engine.schedule import build_scheduler
    from tunepipe.engine.session import trial_actors_on_prestarted_workers

    quiet_ray()  # Ray's resume hint and per-trial metric warnings are not the user's business

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
        scheduler = restored_scheduler(tuner)
        reconnect_progress(restored_callbacks(tuner), scheduler)
        limits = restored_stop(tuner)  # budget/target (or None)
        if limits is not None and budget is not None:
            limits.time_budget = budget or None
    else:
        scheduler = build_scheduler(study, data)
        limits = _limits(study, scheduler)
        tuner = _new_tuner(study, loc, trainable, scheduler, progress, limits)
    # Tune reads the variable when fit() builds its callbacks; tunepipe passes its own
    # (engine/trackers.py).
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
    return grid, scheduler, limits


def _limits(study: StudyConfig, scheduler: Any) -> Any:
    """The study's time budget and target as one Tune callback + stopper, or None."""
    if study.budget.time is None and not study.target:
        return None
    from tunepipe.engine.limits import StudyLimits

    return StudyLimits(study.budget.time, study.target, scheduler)


def _search(study: StudyConfig, scheduler: Any) -> Any:
    from tunepipe.engine.search import build_search

    warm: list = []
    if study.warm_start:
        from tunepipe.engine.warm_start import warm_points

        warm, said = warm_points(study, study.warm_start)
        print(said, file=sys.stderr)
    return build_search(study, scheduler, warm)


def _new_tuner(
    study: StudyConfig,
    loc: RunLocation,
    trainable: Any,
    scheduler: Any,
    progress: bool,
    limits: Any = None,
) -> Any:
    from ray import tune

    from tunepipe.engine.progress import ProgressView, RuleNotice, live_reason
    from tunepipe.engine.schedule import DecisionLog
    from tunepipe.engine.space import to_tune_space
    from tunepipe.engine.trackers import TrialOutcome, tracker_callbacks
    from tunepipe.monitoring.metrics import study_monitor
    from tunepipe.space import trial_count

    callbacks = [
        RuleNotice(getattr(scheduler, "judge", None)),
        DecisionLog(scheduler, loc),
        *tracker_callbacks(study, loc, TrialOutcome(study, scheduler)),
        *([limits] if limits is not None else []),
        # Prometheus gauges (monitoring.metrics) and status.json for `tunepipe status`
        study_monitor(study, loc, trial_count(study), lambda tid: _live_reason(scheduler, tid)),
    ]
    if progress:
        callbacks.append(
            ProgressView(
                study.metric,
                study.mode,
                trial_count(study),
                reasons=lambda trial: live_reason(scheduler, trial),
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
            search_alg=_search(study, scheduler),
        ),
        run_config=tune.RunConfig(
            name=loc.name,  # <name>-2 for a second run: the folder chosen, not the study name
            storage_path=loc.storage,
            verbose=0,
            stop=limits,
            callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(
                # PBT clones the checkpoint a donor saved at its last perturbation, however old:
                # with any retention Ray deleted some first, and those exploits errored.
                num_to_keep=None if study.scheduler.kind == "pbt" else 2,
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


def _live_reason(scheduler: Any, trial_id: str) -> str:
    from tunepipe.engine.schedule import decision_dict

    return decision_dict(scheduler.decisions.get(trial_id)).get("reason", "completed")


def _write_outputs(
    study: StudyConfig,
    data: Any,
    loc: RunLocation,
    grid: Any,
    scheduler: Any,
    clock: PhaseClock,
    started_ray: tuple[bool, str],
    limits: Any = None,
    kind: str = "run",
) -> RunOutcome:
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
            summary["test"] = _evaluate_test(loc, data)
    loc.write_json("summary.json", summary)  # the report reads it
    with clock.phase("report"):  # drawn while Ray shuts down: neither waits for the other
        apart = finish_overlapped(loc.path if loc.is_local else None, started_ray[0])
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


def _evaluate_test(loc: RunLocation, data: Any) -> dict[str, float]:
    """P8: the held-out test split is used once, on the best model, at the very end."""
    from tunepipe.models import task_head
    from tunepipe.predict import load_model
    from tunepipe.train.loop import evaluate, to_tensors

    model = load_model(loc.display).model
    head = task_head(data.task)
    return evaluate(model, head, head.loss_fn(), *to_tensors(data)["test"], data, prefix="test")
