"""Building and running Ray Tune's Tuner for a study: the trainable, the scheduler, the search
algorithm, the callbacks, and a graceful stop on SIGINT/SIGTERM (engine/interrupt.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tunepipe.config import StudyConfig
from tunepipe.engine.interrupt import Interrupted, graceful_signals
from tunepipe.storage import RunLocation


def fit(
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
    from tunepipe.engine.ray_private import (
        callback_usage_without_imports,
        restored_callbacks,
        restored_scheduler,
        restored_stop,
    )
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
        callback_usage_without_imports(),
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


def _search_alg(study: StudyConfig, scheduler: Any) -> Any:
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
            search_alg=_search_alg(study, scheduler),
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
